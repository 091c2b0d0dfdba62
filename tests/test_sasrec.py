"""The `sasrec` reference retriever: windows cover every training transition once, training is
deterministic per seed and learns, metrics equal a hand-computed ranking, and the checkpoint
round-trips without unpickling."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from adagrpo_pipeline.datasets import CheckpointDataset
from adagrpo_pipeline.metrics import evaluate_scores, retrieval_metrics
from adagrpo_pipeline.sasrec.config import SasrecParams
from adagrpo_pipeline.sasrec.model import BOS, OFFSET, PAD, catalog_scores, load_sasrec, sasrec_checkpoint
from adagrpo_pipeline.sasrec.retrieval import KIND, train_sasrec, training_windows, window_batch

N_ITEMS = 30


@pytest.fixture(scope="module")
def data():
    """Each user walks i -> i + 1 (mod 30) from a random start: the next item is learnable."""
    rng = np.random.default_rng(0)
    rows, valid = [], []
    for u in range(60):
        seq = (rng.integers(N_ITEMS) + np.arange(12)) % N_ITEMS
        rows += [(u, int(i), t) for t, i in enumerate(seq[:10])]  # training events
        valid.append((u, seq[:10], int(seq[10])))
    events = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    valid = pd.DataFrame(valid, columns=["user_id", "history", "target"])
    seen = [set(h.tolist()) for h in valid["history"]]
    return events, valid, seen


def _params(**kw) -> SasrecParams:
    base = dict(model={"d_model": 16, "num_layers": 1, "num_heads": 2, "d_ff": 32, "dropout": 0.1}, max_history=4,
                batch_size=32, lr=5e-3, max_steps=60, eval_every=20, patience=10, state_dir=None, device="cpu")
    return SasrecParams.model_validate({**base, **kw})


def test_windows_cover_every_transition_once_and_end_at_the_last_event() -> None:
    events = pd.DataFrame({"user_id": [0] * 7 + [1] * 2, "item_id": [10, 11, 12, 13, 14, 15, 16, 20, 21]})
    w = training_windows(events, max_history=3)
    assert w.tolist() == [[13, 14, 15, 16], [10, 11, 12, 13], [20, 21, -1, -1]]
    tokens, targets = window_batch(w)
    assert tokens.tolist()[0] == [BOS, 13 + OFFSET, 14 + OFFSET, 15 + OFFSET]
    assert tokens.tolist()[2] == [BOS, 20 + OFFSET, 21 + OFFSET, PAD]
    assert targets.tolist() == [[-1, 14, 15, 16], [-1, 11, 12, 13], [-1, 21, -1, -1]]
    learned = sorted(t for row in targets.tolist() for t in row if t >= 0)
    assert learned == [11, 12, 13, 14, 15, 16, 21]  # every event but each user's first, once


def test_same_seed_same_model_another_seed_differs_and_it_learns(data) -> None:
    events, valid, seen = data
    a, b, c = (train_sasrec(N_ITEMS, events, valid, seen, _params(seed=s)) for s in (1, 1, 2))
    pd.testing.assert_frame_equal(a.history, b.history)
    assert all(torch.equal(v, b.model.state_dict()[k]) for k, v in a.model.state_dict().items())
    assert not all(torch.equal(v, c.model.state_dict()[k]) for k, v in a.model.state_dict().items())
    # a random list of 10 of 30 items (history removed: 20 left) hits 1 time in 2
    assert a.history["valid_hr@10_filtered"].max() > 0.8
    assert a.best_step == int(a.history.loc[a.history["valid_ndcg@10_filtered"].idxmax(), "step"])


def test_metrics_equal_a_hand_computed_ranking() -> None:
    scores = torch.tensor([[0.9, 0.1, 0.5, 0.3], [0.2, 0.8, 0.7, 0.1], [0.0, 0.1, 0.2, 0.3]])
    samples = pd.DataFrame({"user_id": [7, 8, 9], "history": [np.array([0]), np.array([]), np.array([3, 2])],
                            "target": [2, 2, 0]})
    seen = [{0}, set(), {3, 2}]
    m = retrieval_metrics(scores, samples["target"].to_numpy(), seen, ks=[1, 2])
    # as scored: [0, 2 | ...], [1, 2 | ...], [3, 2 | ...] -> target 2 at rank 2, rank 2, target 0 absent
    assert m["hr@1"] == 0 and m["hr@2"] == pytest.approx(2 / 3)
    assert m["ndcg@2"] == pytest.approx((2 / np.log2(3)) / 3)
    # history removed: [2, 3], [1, 2], [1, 0] -> rank 1, rank 2, rank 2
    assert m["hr@1_filtered"] == pytest.approx(1 / 3) and m["hr@2_filtered"] == 1.0
    assert m["ndcg@2_filtered"] == pytest.approx((1 + 2 / np.log2(3)) / 3)
    _, hits = evaluate_scores(scores, samples, seen, ks=[1, 2])
    assert hits["user_id"].tolist() == [7, 8, 9] and hits["hit@10_filtered"].tolist() == [1.0, 1.0, 1.0]


def test_checkpoint_round_trips_without_unpickling(data, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    events, valid, seen = data
    res = train_sasrec(N_ITEMS, events, valid, seen, _params(max_steps=20))
    ds = CheckpointDataset(filepath=str(tmp_path / "sasrec"))
    ds.save(sasrec_checkpoint(res.model, KIND, best_step=res.best_step))

    def refuse(*args, **kwargs):
        raise AssertionError("unpickling attempted")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, refuse)
    monkeypatch.setattr(torch, "load", refuse)
    loaded = load_sasrec(ds.load(), KIND)
    histories = valid["history"].to_list()
    assert torch.equal(catalog_scores(loaded, histories, 16), catalog_scores(res.model, histories, 16))
    with pytest.raises(ValueError, match="not a sasrec_ranker checkpoint"):
        load_sasrec(ds.load(), "sasrec_ranker")
