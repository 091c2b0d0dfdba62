"""The RL training loop on tiny data: determinism, exact resume, the gate's bookkeeping, and
that GRPO moves the policy toward higher reward."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from adagrpo_pipeline.adagrpo.config import AdaGrpoParams, Variant
from adagrpo_pipeline.adagrpo.runs import RunSpec
from adagrpo_pipeline.adagrpo.train import train_rl
from adagrpo_pipeline.policy.model import (
    HistoryEncoder,
    PolicyLayout,
    PolicySize,
    build_policy,
)
from adagrpo_pipeline.reward.reward import RewardModel
from adagrpo_pipeline.sasrec.config import SASRecSize
from adagrpo_pipeline.sasrec.model import SASRec
from adagrpo_pipeline.semantic_ids.quantize import add_dedup_level
from adagrpo_pipeline.semantic_ids.trie import SidTrie
from adagrpo_pipeline.semantic_ids.vocab import SidVocab

N_ITEMS = 40
SIZE = PolicySize(d_model=32, d_kv=8, d_ff=64, num_layers=1, num_decoder_layers=1, num_heads=4, dropout_rate=0.1)


def rl_data():
    rng = np.random.default_rng(0)
    vocab = SidVocab((5, 5, 4))
    tokens = vocab.encode(add_dedup_level(rng.integers(0, 5, size=(N_ITEMS, 2)), 4))
    rows = []
    for u in range(50):
        seq = (rng.integers(N_ITEMS) + np.arange(6)) % N_ITEMS
        rows += [(u, seq[max(0, t - 4):t], seq[t]) for t in range(1, 6)]
    df = pd.DataFrame(rows, columns=["user_id", "history", "target"])
    last = df.groupby("user_id").tail(1).index
    layout = PolicyLayout(vocab, max_items=4)
    return (SidTrie.build(tokens, np.arange(N_ITEMS), vocab.size), layout, HistoryEncoder(layout, tokens),
            df.drop(index=last).reset_index(drop=True), df.loc[last].reset_index(drop=True))


@pytest.fixture(scope="module")
def data():
    return rl_data()


def _reward() -> RewardModel:
    torch.manual_seed(0)
    ranker = SASRec(N_ITEMS, 4, SASRecSize(d_model=16, num_layers=1, num_heads=2, d_ff=32, dropout=0.0))
    return RewardModel(ranker, {"method": "platt", "a": 1.0, "b": 0.0}, invalid_reward=0.0)


class LikesSeven(RewardModel):
    """Reward 0.95 for item 7, 0.05 for any other item (0 for invalid)."""

    def raw_scores(self, histories, candidate_item_ids, users=None):
        cand = torch.as_tensor(candidate_item_ids)
        return torch.where(cand == 7, 3.0, -3.0)


def _params(tmp: Path, **kw) -> AdaGrpoParams:
    base = dict(batch_size=16, lr=1e-3, warmup_steps=0, lr_schedule="constant", max_steps=3, checkpoint_every=1,
                eval_every=3, eval_users=10, eval_beams=10,
                device="cpu", seed=0, state_dir=str(tmp), rollout={"group_size": 4})
    return AdaGrpoParams(**{**base, **kw})


ADAGRPO = Variant("adagrpo")


def _run(data, tmp: Path, variant: Variant = ADAGRPO, reward: RewardModel | None = None, log_fn=None, seed: int = 0,
         **kw):
    trie, layout, encoder, train, valid = data
    run = RunSpec.of(variant, seed, variant.name)
    return train_rl(build_policy(layout, SIZE, 0), encoder, train, valid, trie, reward or _reward(), run,
                    _params(tmp, **kw), tmp, log_fn=log_fn)


LOSS_COLUMNS = ["loss", "nll", "grpo_loss", "kl", "reward_mean", "admitted", "invalid_share"]


@pytest.mark.parametrize("variant", [Variant("adagrpo"), Variant("grpo"), Variant("mix", 0.5), Variant("random_gate"),
                                     Variant("mix_matched")])
def test_same_seed_identical_losses_over_three_steps(data, tmp_path: Path, variant: Variant) -> None:
    a = _run(data, tmp_path / "a", variant)
    b = _run(data, tmp_path / "b", variant)
    c = _run(data, tmp_path / "c", variant, seed=1)
    ha, hb, hc = (r.history[r.history["step"] > 0].reset_index(drop=True) for r in (a, b, c))
    assert list(ha["step"]) == [1, 2, 3]
    pd.testing.assert_frame_equal(ha[LOSS_COLUMNS], hb[LOSS_COLUMNS])
    assert not np.allclose(ha["loss"], hc["loss"])
    for k, v in a.model.state_dict().items():
        assert torch.equal(v, b.model.state_dict()[k]), k
    assert sorted(a.checkpoints) == [0, 1, 2, 3]  # step 0 = the starting (SFT) policy
    last = load_file(a.checkpoints[3])  # the step-3 file holds the final weights
    assert all(torch.equal(v, last[k]) for k, v in a.model.state_dict().items())
    start = build_policy(data[1], SIZE, 0).state_dict()
    assert all(torch.equal(v, start[k]) for k, v in load_file(a.checkpoints[0]).items())


def test_warm_up_then_cosine_decay_and_dropout_in_the_updates(data, tmp_path: Path) -> None:
    res = _run(data, tmp_path / "cos", Variant("sft_continue"), max_steps=6, warmup_steps=3, lr_schedule="cosine",
               checkpoint_every=6, eval_every=6)
    lr = res.history.loc[res.history["step"] > 0, "lr"].to_numpy()  # after each step's update
    assert lr[:3] == pytest.approx([1e-3 / 3, 2e-3 / 3, 1e-3]) and lr[-1] == pytest.approx(0.0, abs=1e-12)
    assert (np.diff(lr[2:]) < 0).all()
    # dropout changes the updates, never the rollouts' diagnostics of the first step
    on = _run(data, tmp_path / "on", Variant("adagrpo"), max_steps=1, dropout=True, checkpoint_every=1, eval_every=1)
    off = _run(data, tmp_path / "off", Variant("adagrpo"), max_steps=1, dropout=False, checkpoint_every=1, eval_every=1)
    h_on, h_off = on.history.iloc[1], off.history.iloc[1]
    assert h_on["admitted"] == h_off["admitted"] and h_on["reward_mean"] == h_off["reward_mean"]
    assert h_on["nll"] != h_off["nll"]


def test_interrupted_run_resumes_exactly(data, tmp_path: Path) -> None:
    full = _run(data, tmp_path / "full", max_steps=4, checkpoint_every=2, eval_every=2)

    class Interrupt(Exception):
        pass

    def stop_at_3(metrics, step):
        if step == 3:
            raise Interrupt

    with pytest.raises(Interrupt):
        _run(data, tmp_path / "cut", log_fn=stop_at_3, max_steps=4, checkpoint_every=2, eval_every=2)
    resumed = _run(data, tmp_path / "cut", max_steps=4, checkpoint_every=2, eval_every=2)
    assert resumed.resumed_from == 2
    for k, v in full.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k
    cols = LOSS_COLUMNS + ["valid_hr@10"]
    pd.testing.assert_frame_equal(full.history.loc[full.history["step"] > 0, cols].reset_index(drop=True),
                                  resumed.history.loc[resumed.history["step"] > 0, cols].reset_index(drop=True))
    changed = _run(data, tmp_path / "cut", max_steps=4, checkpoint_every=2, eval_every=2, lr=5e-4)
    assert changed.resumed_from == 0  # another configuration starts afresh


def test_a_k_pol_no_rank_can_exceed_makes_adagrpo_exactly_sft_continue(data, tmp_path: Path) -> None:
    # d_pol is a rank among at most G + 1 distinct candidates: with k_pol = G + 1 the gate never
    # admits a sample, so AdaGRPO must be NLL only, step for step and weight for weight
    ada = _run(data, tmp_path / "ada", Variant("adagrpo"), k_pol=5)
    nll = _run(data, tmp_path / "nll", Variant("sft_continue"), k_pol=5)
    ha, hn = (r.history[r.history["step"] > 0].reset_index(drop=True) for r in (ada, nll))
    assert (ha["admitted"] == 0).all()
    pd.testing.assert_frame_equal(ha[LOSS_COLUMNS], hn[LOSS_COLUMNS])
    for k, v in ada.model.state_dict().items():
        assert torch.equal(v, nll.model.state_dict()[k]), k
    # while the default k_pol admits samples and so moves the weights elsewhere
    gated = _run(data, tmp_path / "gated", Variant("adagrpo"), k_rew=5)
    assert gated.history["admitted"].iloc[1:].gt(0).any()
    assert any(not torch.equal(v, nll.model.state_dict()[k]) for k, v in gated.model.state_dict().items())


def test_each_diagnostic_alone_decides_the_gate_when_the_other_always_passes(data, tmp_path: Path) -> None:
    rows = _run(data, tmp_path / "pol", max_steps=2, k_rew=5).history.iloc[1:]  # d_rew <= G + 1 always passes
    assert (rows["pass_rew"] == 1).all() and (rows["admitted"] == rows["pass_pol"]).all()
    rows = _run(data, tmp_path / "rew", max_steps=2, k_pol=0).history.iloc[1:]  # d_pol >= 1 always passes
    assert (rows["pass_pol"] == 1).all() and (rows["admitted"] == rows["pass_rew"]).all()
    assert rows["kl"].iloc[0] == pytest.approx(0.0, abs=1e-6)  # π_θ = π_ref before the first update
    assert rows["kl"].iloc[1] > 0


def test_grpo_raises_the_reward_it_is_given(data, tmp_path: Path) -> None:
    # constrained rollouts: the untrained policy's free rollouts are mostly invalid (reward 0) and
    # whether one of them ever names item 7 is a matter of luck (3 of seeds 0-5 pass); inside the
    # trie item 7 is drawn from the first steps on (seeds 0-5: mean reward ~0.4 -> ~0.94)
    reward = LikesSeven(_reward().ranker, {"method": "platt", "a": 1.0, "b": 0.0})
    res = _run(data, tmp_path, Variant("grpo"), reward=reward, max_steps=40, lr=3e-3, beta=0.0, checkpoint_every=40,
               eval_every=40, rollout={"group_size": 8, "constrained": True})
    h = res.history[res.history["step"] > 0]
    assert h["reward_mean"].tail(5).mean() > h["reward_mean"].head(5).mean() + 0.2


class Indifferent(RewardModel):
    """The same score for every item: y* ties with every rollout, and ties favour y* (d_rew = 1)."""

    def raw_scores(self, histories, candidate_item_ids, users=None):
        return torch.zeros(torch.as_tensor(candidate_item_ids).shape)


def test_oracle_gate_takes_d_rew_from_its_gate_reward_and_the_grpo_reward_from_the_ranker(data, tmp_path: Path) -> None:
    trie, layout, encoder, train, valid = data
    gate = Indifferent(_reward().ranker, None)

    def run(variant: Variant, gate_reward=None, path: str = "x"):
        return train_rl(build_policy(layout, SIZE, 0), encoder, train, valid, trie, _reward(),
                        RunSpec.of(variant, 0, variant.name), _params(tmp_path / path, max_steps=2, k_rew=1, rollout={"group_size": 4, "constrained": True}), tmp_path / path,
                        gate_reward=gate_reward).history.iloc[1:].reset_index(drop=True)

    oracle_gate = run(Variant("oracle_gate"), gate, "oracle_gate")
    adagrpo = run(Variant("adagrpo"), None, "adagrpo")
    # k_rew = 1 and rollouts inside the trie: y* must rank first among valid items. The gate reward ranks it first on every sample, so pass_rew = 1
    # and the gate is the policy diagnostic alone
    assert (oracle_gate["pass_rew"] == 1).all() and (oracle_gate["admitted"] == oracle_gate["pass_pol"]).all()
    assert (adagrpo["pass_rew"] < 1).any()  # the ranker does not
    # same policy, seed and rollouts at step 1: the rewards GRPO sees are the ranker's in both runs
    assert oracle_gate["reward_mean"].iloc[0] == pytest.approx(adagrpo["reward_mean"].iloc[0])
    assert oracle_gate["pass_pol"].iloc[0] == adagrpo["pass_pol"].iloc[0]
    with pytest.raises(ValueError, match="oracle_gate variant needs the oracle reward"):
        run(Variant("oracle_gate"), None, "missing")


def test_uniform_is_the_adagrpo_loss_with_every_sample_admitted(data, tmp_path: Path) -> None:
    # k_pol = 0 and k_rew = G + 1: every diagnostic passes, so the gate admits everything
    ada = _run(data, tmp_path / "ada", Variant("adagrpo"), k_pol=0, k_rew=5)
    uni = _run(data, tmp_path / "uni", Variant("uniform"))
    ha, hu = (r.history[r.history["step"] > 0].reset_index(drop=True) for r in (ada, uni))
    assert (ha["admitted"] == 1).all()
    pd.testing.assert_frame_equal(ha[LOSS_COLUMNS], hu[LOSS_COLUMNS])
    assert Variant("uniform").weights(0.7) == (1.0, 0.7)
