"""SFT training loop: it learns, it resumes exactly, checkpoints round-trip without pickle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from adagrpo_pipeline.datasets import CheckpointDataset
from adagrpo_pipeline.metrics import drop_seen, hr_ndcg, popularity_ranking
from adagrpo_pipeline.policy.checkpoint import load_policy, policy_checkpoint
from adagrpo_pipeline.policy.config import SftParams
from adagrpo_pipeline.policy.model import (
    HistoryEncoder,
    PolicyLayout,
    PolicySize,
    build_policy,
)
from adagrpo_pipeline.policy.sft import train_sft
from adagrpo_pipeline.semantic_ids.quantize import add_dedup_level
from adagrpo_pipeline.semantic_ids.trie import SidTrie
from adagrpo_pipeline.semantic_ids.vocab import SidVocab
from adagrpo_pipeline.training.checkpoint import Checkpoint

TINY = {"d_model": 32, "d_kv": 8, "d_ff": 64, "num_layers": 1, "num_decoder_layers": 1, "num_heads": 4, "dropout_rate": 0.1}


def sft_data():
    """Items 0..59; each user walks a cycle i -> i + 1 (mod 60), so the next item is learnable."""
    rng = np.random.default_rng(0)
    vocab = SidVocab((6, 6, 4))
    tokens = vocab.encode(add_dedup_level(rng.integers(0, 6, size=(60, 2)), 4))
    rows = []
    for u in range(80):
        start = rng.integers(60)
        seq = (start + np.arange(8)) % 60
        for t in range(1, 8):
            rows.append((u, seq[max(0, t - 4):t], seq[t]))
    df = pd.DataFrame(rows, columns=["user_id", "history", "target"])
    last = df.groupby("user_id").tail(1).index
    valid, train = df.loc[last].reset_index(drop=True), df.drop(index=last).reset_index(drop=True)
    layout = PolicyLayout(vocab, max_items=4)
    return vocab, SidTrie.build(tokens, np.arange(60), vocab.size), layout, HistoryEncoder(layout, tokens), train, valid


@pytest.fixture(scope="module")
def data():
    return sft_data()


def _params(tmp: Path, **kw) -> SftParams:
    base = dict(model=TINY, max_items=4, batch_size=32, lr=5e-3, warmup_steps=5, max_steps=60, eval_every=20,
                eval_beams=10, patience=5, checkpoint_every=20, device="cpu", seed=0, state_dir=str(tmp))
    return SftParams(**{**base, **kw})


def test_sft_learns_a_learnable_sequence(data, tmp_path: Path) -> None:
    vocab, trie, layout, encoder, train, valid = data
    p = _params(tmp_path, max_steps=150, eval_every=50, checkpoint_every=50)
    res = train_sft(build_policy(layout, p.model, p.seed), encoder, train, valid, trie, p)
    assert list(res.history["step"]) == [50, 100, 150]
    assert res.history["train_loss"].iloc[-1] < 0.75 * res.history["train_loss"].iloc[0]
    assert res.history["valid_hr@10"].max() > 0.5  # a random list of 10 of 60 items hits 1/6 of the time
    assert res.best_step == int(res.history.loc[res.history["valid_ndcg@10"].idxmax(), "step"])


def test_interrupted_sft_resumes_from_the_last_checkpoint_exactly(data, tmp_path: Path) -> None:
    vocab, trie, layout, encoder, train, valid = data
    straight = train_sft(build_policy(layout, _params(tmp_path / "a").model, 0), encoder, train, valid, trie,
                         _params(tmp_path / "a"))

    def crash_at_40(metrics: dict, step: int) -> None:
        if step == 40:
            raise KeyboardInterrupt("simulated interruption")

    p = _params(tmp_path / "b")
    with pytest.raises(KeyboardInterrupt):
        train_sft(build_policy(layout, p.model, 0), encoder, train, valid, trie, p, log_fn=crash_at_40)
    assert (tmp_path / "b" / "state.json").exists()
    resumed = train_sft(build_policy(layout, p.model, 0), encoder, train, valid, trie, p)
    assert resumed.resumed_from == 20  # the step-40 checkpoint was never written
    pd.testing.assert_frame_equal(resumed.history, straight.history)
    for (name, a), (_, b) in zip(straight.model.state_dict().items(), resumed.model.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    # a finished run resumes at its end and trains no further
    again = train_sft(build_policy(layout, p.model, 0), encoder, train, valid, trie, p)
    assert again.resumed_from == 60 and len(again.history) == len(straight.history)


def test_changed_configuration_starts_afresh(data, tmp_path: Path) -> None:
    vocab, trie, layout, encoder, train, valid = data
    p = _params(tmp_path, max_steps=20)
    train_sft(build_policy(layout, p.model, 0), encoder, train, valid, trie, p)
    other = p.model_copy(update={"lr": 1e-3})
    assert train_sft(build_policy(layout, other.model, 0), encoder, train, valid, trie, other).resumed_from == 0
    # same parameters, but the items got other semantic IDs (e.g. tokenize re-ran): no resume either
    train_sft(build_policy(layout, p.model, 0), encoder, train, valid, trie, p)
    assert train_sft(build_policy(layout, p.model, 0), encoder, train, valid, trie, p).resumed_from == 20
    shuffled = HistoryEncoder(layout, encoder.item_tokens[::-1].copy())
    assert train_sft(build_policy(layout, p.model, 0), shuffled, train, valid, trie, p).resumed_from == 0


def test_checkpoint_dataset_roundtrip_without_pickle(data, tmp_path: Path) -> None:
    vocab, trie, layout, encoder, train, valid = data
    model = build_policy(layout, PolicySize(**TINY), seed=4).eval()
    ds = CheckpointDataset(filepath=str(tmp_path / "sft_policy"))
    ds.save(policy_checkpoint(model, layout, stage="sft"))
    assert sorted(p.name for p in (tmp_path / "sft_policy").iterdir()) == ["config.json", "model.safetensors"]
    loaded, loaded_layout = load_policy(ds.load())
    assert loaded_layout == layout
    x, mask = encoder(valid["history"].to_list()[:5], valid["user_id"].to_numpy()[:5])
    labels = encoder.targets(valid["target"].to_numpy()[:5])
    torch.testing.assert_close(loaded(input_ids=x, attention_mask=mask, labels=labels).logits,
                               model(input_ids=x, attention_mask=mask, labels=labels).logits)
    with pytest.raises(ValueError, match="not a policy checkpoint"):
        load_policy(Checkpoint({"kind": "ranker"}, {}))


def test_ranking_metrics() -> None:
    ranked = np.array([[3, 1, 2], [1, 2, 3], [-1, 5, 6]])
    m = hr_ndcg(ranked, np.array([1, 9, 6]), [1, 3])
    assert m["hr@1"] == 0 and m["hr@3"] == pytest.approx(2 / 3)
    assert m["ndcg@3"] == pytest.approx((1 / np.log2(3) + 1 / np.log2(4)) / 3)
    assert drop_seen(ranked, [{3}, set(), {5}], 2).tolist() == [[1, 2], [1, 2], [6, -1]]
    assert popularity_ranking(np.array([1.0, 5.0, 5.0, 0.0]), 2, 3).tolist() == [[1, 2, 0], [1, 2, 0]]


def test_evaluation_refuses_other_semantic_ids(data) -> None:
    from adagrpo_pipeline.policy.data import check_same_semantic_ids, tokens_digest

    tokens = data[3].item_tokens
    check_same_semantic_ids({"item_tokens_sha256": tokens_digest(tokens)}, tokens)
    with pytest.raises(ValueError, match="trained on other semantic IDs"):
        check_same_semantic_ids({"item_tokens_sha256": tokens_digest(tokens)}, tokens[::-1])
