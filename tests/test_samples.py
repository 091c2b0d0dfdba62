"""Training samples streamed from parquet: the block-shuffled schedule, what is held in memory,
and that a small file trains exactly as the same DataFrame does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from test_sft import _params, sft_data

from adagrpo_pipeline.datasets import SamplesDataset
from adagrpo_pipeline.policy.model import build_policy
from adagrpo_pipeline.policy.sft import sft_fingerprint, train_sft
from adagrpo_pipeline.training import batch_indices
from adagrpo_pipeline.training.samples import FrameSamples, ParquetSamples


def _frame(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"user_id": np.arange(n) // 3, "history": [rng.integers(0, 50, rng.integers(1, 6)) for _ in range(n)],
                         "target": rng.integers(0, 50, n)})


def _write(frame: pd.DataFrame, path: Path, row_group: int) -> Path:
    frame.to_parquet(path, row_group_size=row_group)
    return path


def test_one_epoch_of_windows_visits_every_batch_row_once(tmp_path: Path) -> None:
    samples = ParquetSamples(str(_write(_frame(1000), tmp_path / "s.parquet", 64)), window_rows=200)
    assert len(samples) == 1000 and len(samples.group_rows) == 16
    windows = samples.windows(0, seed=3)
    assert len(windows) > 1 and all(sum(samples.group_rows[g] for g in w.groups) <= 200 for w in windows)
    per_epoch = 1000 // 30
    rows = np.concatenate([samples.rows(s, 30, 3) for s in range(per_epoch)])
    assert len(rows) == len(set(rows.tolist())) == per_epoch * 30  # no row twice, the remainder dropped
    again = ParquetSamples(samples.path, window_rows=200)
    assert all(np.array_equal(samples.rows(s, 30, 3), again.rows(s, 30, 3)) for s in (0, 7, per_epoch + 2))
    assert not np.array_equal(samples.rows(per_epoch, 30, 3), samples.rows(0, 30, 3))  # a new epoch, a new order
    assert not np.array_equal(samples.rows(0, 30, 4), samples.rows(0, 30, 3))
    # a batch draws from at most two windows, and only their row groups are held
    for s in range(per_epoch):
        samples.fetch(samples.rows(s, 30, 3))
        assert sum(samples.group_rows[g] for g in samples._groups) <= 2 * 200 + 64


def test_a_file_that_fits_one_window_has_the_in_memory_order_and_data(tmp_path: Path) -> None:
    frame = _frame(300)
    samples = ParquetSamples(str(_write(frame, tmp_path / "s.parquet", 64)), window_rows=10_000)
    memory = FrameSamples(frame)
    for step in (0, 5, 11):
        assert np.array_equal(samples.rows(step, 25, 1), batch_indices(step, 300, 25, 1))
        a, b = samples.fetch(samples.rows(step, 25, 1)), memory.fetch(memory.rows(step, 25, 1))
        assert np.array_equal(a.users, b.users) and np.array_equal(a.targets, b.targets)
        assert all(np.array_equal(x, y) for x, y in zip(a.histories, b.histories))
    pd.testing.assert_frame_equal(samples.to_pandas().assign(history=lambda d: d["history"].map(list)),
                                  frame.assign(history=lambda d: d["history"].map(list)), check_dtype=False)


def test_sft_on_a_streamed_file_equals_sft_on_the_frame(tmp_path: Path) -> None:
    data = sft_data()
    _, trie, layout, encoder, train, valid = data
    path = _write(train, tmp_path / "train.parquet", 100)
    p = _params(tmp_path / "a", max_steps=12, eval_every=6, checkpoint_every=6)
    streamed = ParquetSamples(str(path), window_rows=10_000)
    assert sft_fingerprint(p, encoder, streamed) == sft_fingerprint(p, encoder, FrameSamples(train))
    a = train_sft(build_policy(layout, p.model, 0), encoder, train, valid, trie, p)
    b = train_sft(build_policy(layout, p.model, 0), encoder, streamed, valid, trie,
                  p.model_copy(update={"state_dir": str(tmp_path / "b")}))
    for k, v in a.model.state_dict().items():
        assert torch.equal(v, b.model.state_dict()[k]), k
    # several windows: another order, the same training otherwise (it runs and learns from every row group)
    c = train_sft(build_policy(layout, p.model, 0), encoder, ParquetSamples(str(path), window_rows=150), valid, trie,
                  p.model_copy(update={"state_dir": str(tmp_path / "c")}))
    assert c.history["train_loss"].iloc[-1] < c.history["train_loss"].iloc[0]


def test_samples_dataset_saves_row_groups_and_loads_a_stream(tmp_path: Path) -> None:
    frame = _frame(250)
    ds = SamplesDataset(filepath=str(tmp_path / "train.parquet"), save_args={"row_group_size": 100},
                        load_args={"window_rows": 150})
    ds.save(frame)
    loaded = ds.load()
    assert isinstance(loaded, ParquetSamples) and list(loaded.group_rows) == [100, 100, 50]
    assert loaded.window_rows == 150 and len(loaded) == 250
    with pytest.raises(ValueError, match="lacks column.*target"):
        frame.drop(columns="target").to_parquet(tmp_path / "bad.parquet")
        ParquetSamples(str(tmp_path / "bad.parquet"))
