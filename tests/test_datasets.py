"""The project's datasets: versioned save/load, no overwrite of a version, and checkpoint
series streamed from the files a training loop wrote (never unpickled, never all in memory)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from kedro.io.core import DatasetError, Version
from safetensors.torch import save_file

from adagrpo_pipeline.datasets import (
    CheckpointDataset,
    CheckpointSeriesDataset,
    SafetensorsDataset,
)
from adagrpo_pipeline.training.checkpoint import Checkpoint, StoredWeights


def _tensors(seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"w": torch.randn(3, 4, generator=g), "b": torch.randn(4, generator=g)}


def test_each_version_loads_what_was_saved_and_a_version_is_never_overwritten(tmp_path: Path) -> None:
    path = str(tmp_path / "policy")
    for version, seed in (("2026-01-01T00.00.00.000Z", 0), ("2026-01-02T00.00.00.000Z", 1)):
        CheckpointDataset(filepath=path, version=Version(None, version)).save(Checkpoint({"seed": seed}, _tensors(seed)))
    old = CheckpointDataset(filepath=path, version=Version("2026-01-01T00.00.00.000Z", None)).load()
    latest = CheckpointDataset(filepath=path, version=Version(None, None)).load()
    assert old.config == {"seed": 0} and latest.config == {"seed": 1}
    assert torch.equal(old.tensors["w"], _tensors(0)["w"]) and torch.equal(latest.tensors["w"], _tensors(1)["w"])
    with pytest.raises(DatasetError, match="must not exist if versioning is enabled"):
        CheckpointDataset(filepath=path, version=Version(None, "2026-01-01T00.00.00.000Z")).save(Checkpoint({}, _tensors(2)))
    ds = SafetensorsDataset(filepath=str(tmp_path / "trie.safetensors"), version=Version(None, "v1"))
    ds.save(_tensors(3))
    assert torch.equal(SafetensorsDataset(filepath=str(tmp_path / "trie.safetensors"),
                                          version=Version("v1", None)).load()["b"], _tensors(3)["b"])


def test_a_series_of_stored_checkpoints_is_copied_byte_for_byte_and_loaded_lazily(tmp_path: Path) -> None:
    files = {}
    for step in (3, 6):
        files[step] = tmp_path / "state" / f"step-{step:06d}.safetensors"
        files[step].parent.mkdir(exist_ok=True)
        save_file(_tensors(step), files[step])
    series = {f"step-{s:06d}": Checkpoint.from_file({"step": s}, f) for s, f in files.items()}
    ds = CheckpointSeriesDataset(filepath=str(tmp_path / "checkpoints"), version=Version(None, "v1"))
    ds.save(series)
    root = tmp_path / "checkpoints" / "v1" / "checkpoints"
    for step, f in files.items():
        assert (root / f"step-{step:06d}" / "model.safetensors").read_bytes() == f.read_bytes()
    loaded = CheckpointSeriesDataset(filepath=str(tmp_path / "checkpoints"), version=Version("v1", None)).load()
    assert list(loaded) == ["step-000003", "step-000006"]
    assert all(isinstance(c.weights, StoredWeights) for c in loaded.values())  # nothing read yet
    assert loaded["step-000006"].config == {"step": 6}
    assert all(torch.equal(v, _tensors(6)[k]) for k, v in loaded["step-000006"].tensors.items())
    with pytest.raises(DatasetError, match="non-empty dict"):
        CheckpointSeriesDataset(filepath=str(tmp_path / "other")).save({})
