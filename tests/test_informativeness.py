"""The reward-informativeness figures on hand-made cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from adagrpo_pipeline.adagrpo.informativeness import (
    InformativenessSettings,
    _distinct,
    _pairwise_auc,
    _popularity_rho,
    _random_draw_std,
    reward_informativeness,
)


def test_pairwise_auc_counts_rollouts_below_the_target_ties_half() -> None:
    target = torch.tensor([0.5, 0.5, 0.5])
    values = torch.tensor([[0.1, 0.9, 0.5], [0.1, 0.2, 0.3], [0.9, 0.9, 0.9]])
    use = torch.tensor([[True, True, True], [True, False, True], [False, False, False]])
    zeros = torch.zeros(3)
    auc = _pairwise_auc(target, values, zeros, torch.zeros_like(values), use)
    assert auc[0] == pytest.approx((1 + 0 + 0.5) / 3) and auc[1] == 1.0 and np.isnan(auc[2])
    # a tie in value is broken by the tie-break key
    auc = _pairwise_auc(target[:1], values[:1], torch.tensor([1.0]), torch.tensor([[0.0, 0.0, 2.0]]), use[:1])
    assert auc[0] == pytest.approx(1 / 3)


def test_distinct_marks_first_occurrences() -> None:
    assert _distinct(torch.tensor([[3, 1, 3, -1, -1]])).tolist() == [[True, True, False, True, False]]


def test_random_pass_rate_spread_is_the_binomial_one() -> None:
    p = np.full(400, 0.25)
    assert _random_draw_std(p) == pytest.approx(np.sqrt(0.25 * 0.75 / 400))
    assert _random_draw_std(np.array([0.0, 1.0])) == 0.0


def test_popularity_rho_only_where_the_correlation_is_defined() -> None:
    items = torch.tensor([[0, 1, 2, 3], [0, 1, 2, 3], [0, 1, 2, 3], [0, 0, 1, 1]])
    raw = torch.tensor([[0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1], [0.5, 0.5, 0.5, 0.5], [0.1, 0.2, 0.3, 0.4]])
    scored = torch.tensor([[True, True, True, False], [True, True, True, True], [True, True, True, True],
                           [True, True, True, True]])
    pop = torch.tensor([1.0, 2.0, 3.0, 4.0])
    rho = _popularity_rho(items, raw, scored, pop)
    # row 0: 3 scored rollouts, same order as popularity; row 1: the reverse; row 2: one raw score
    # only (skipped); row 3: popularity 1, 1, 2, 2 against raw 0.1..0.4
    assert rho == pytest.approx([1.0, -1.0, np.sqrt(0.8)])
    assert _popularity_rho(items[:1], raw[:1], torch.tensor([[True, True, False, False]]), pop) == []


N_ITEMS = 40


def _tiny_informativeness(rollout: dict, seed: int):
    from adagrpo_pipeline.adagrpo.config import RolloutParams
    from adagrpo_pipeline.policy.model import HistoryEncoder, PolicyLayout, PolicySize, build_policy
    from adagrpo_pipeline.reward.reward import RewardModel
    from adagrpo_pipeline.sasrec.config import SASRecSize
    from adagrpo_pipeline.sasrec.model import SASRec
    from adagrpo_pipeline.semantic_ids.quantize import add_dedup_level
    from adagrpo_pipeline.semantic_ids.trie import SidTrie
    from adagrpo_pipeline.semantic_ids.vocab import SidVocab

    rng = np.random.default_rng(0)
    vocab = SidVocab((5, 5, 4))
    tokens = vocab.encode(add_dedup_level(rng.integers(0, 5, size=(N_ITEMS, 2)), 4))
    starts = rng.integers(N_ITEMS, size=16)
    samples = pd.DataFrame({"user_id": np.arange(16), "history": [(s + np.arange(4)) % N_ITEMS for s in starts],
                            "target": (starts + 4) % N_ITEMS})
    layout = PolicyLayout(vocab, max_items=4)
    model = build_policy(layout, PolicySize(d_model=32, d_kv=8, d_ff=64, num_layers=1, num_decoder_layers=1, num_heads=4,
                                            dropout_rate=0.0), 0)
    torch.manual_seed(0)
    ranker = SASRec(N_ITEMS, 4, SASRecSize(d_model=16, num_layers=1, num_heads=2, d_ff=32, dropout=0.0))
    reward = RewardModel(ranker, {"method": "platt", "a": 1.3, "b": -0.2}, invalid_reward=0.0, batch_size=32)
    popularity = np.bincount(np.concatenate(samples["history"].to_list()), minlength=N_ITEMS)
    seen = [set(h.tolist()) for h in samples["history"]]
    settings = InformativenessSettings(k_rew=2, seed=seed, batch_size=8, random_draws=6, resamples=200)
    return reward_informativeness(model, HistoryEncoder(layout, tokens), samples, SidTrie.build(tokens, np.arange(N_ITEMS),
                                  vocab.size), reward, RolloutParams(**rollout), popularity, seen, settings,
                                  torch.device("cpu"))


def test_reward_informativeness_on_a_tiny_policy_is_seeded_and_consistent() -> None:
    rollout = {"group_size": 6, "constrained": True}
    figures, per_sample = _tiny_informativeness(rollout, seed=1)
    again, per_sample_again = _tiny_informativeness(rollout, seed=1)
    pd.testing.assert_frame_equal(per_sample, per_sample_again)
    assert figures.keys() == again.keys() and all(
        a == b or (np.isnan(a) and np.isnan(b)) for a, b in zip(figures.values(), again.values(), strict=True))
    assert figures["samples"] == len(per_sample) == 16 and figures["rollouts_per_sample"] == 6
    assert list(per_sample.columns) == ["user_id", "auc", "auc_unseen", "d_rew", "pass_rew", "random_pass_rate",
                                        "valid_rollouts", "history_rollouts"]
    assert per_sample["user_id"].tolist() == list(range(16))  # batches of 8 concatenated in order
    assert (per_sample["valid_rollouts"] == 6).all()  # constrained: every rollout is an item
    assert (per_sample["history_rollouts"] <= per_sample["valid_rollouts"]).all()
    assert (per_sample["pass_rew"] == (per_sample["d_rew"] <= 2)).all()
    assert per_sample["auc"].dropna().between(0, 1).all() and per_sample["random_pass_rate"].between(0, 1).all()
    assert figures["auc_target_vs_rollouts"] == pytest.approx(per_sample["auc"].mean())
    assert figures["auc_target_vs_rollouts_ci_low"] <= figures["auc_target_vs_rollouts"] <= figures["auc_target_vs_rollouts_ci_high"]
    assert figures["pass_rate_reward"] == pytest.approx(per_sample["pass_rew"].mean())
    assert figures["pass_rate_random_mean"] == pytest.approx(per_sample["random_pass_rate"].mean())
    assert figures["history_rollout_share"] == pytest.approx(per_sample["history_rollouts"].sum() / (6 * 16))
    assert 0 <= figures["retriever_hr@10_filtered"] <= 1 and 0 <= figures["popularity_hr@10_filtered"] <= 1
