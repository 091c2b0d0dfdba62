"""The project's datasets: versioned save/load, no overwrite of a version, and checkpoint
series streamed from the files a training loop wrote (never unpickled, never all in memory)."""

from __future__ import annotations

import hashlib
import json
import shutil
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


def _saved_checkpoint(tmp_path: Path, version: str = "v1", seed: int = 0) -> Path:
    CheckpointDataset(filepath=str(tmp_path / "policy"), version=Version(None, version)).save(
        Checkpoint({"seed": seed}, _tensors(seed)))
    return tmp_path / "policy" / version / "policy"


def test_a_checkpoint_records_the_sha256_of_its_weights_and_a_flipped_byte_is_named(tmp_path: Path) -> None:
    root = _saved_checkpoint(tmp_path)
    weights = (root / "model.safetensors").read_bytes()
    integrity = json.loads((root / "config.json").read_text())["integrity"]
    assert integrity == {"weights_sha256": hashlib.sha256(weights).hexdigest(), "weights_bytes": len(weights)}
    assert CheckpointDataset(filepath=str(tmp_path / "policy"), version=Version("v1", None)).load().config == {"seed": 0}
    flipped = bytearray(weights)
    flipped[-3] ^= 0x01  # one bit of one tensor value: still a valid safetensors file
    (root / "model.safetensors").write_bytes(bytes(flipped))
    with pytest.raises(DatasetError, match=rf"checkpoint '{root}' is incomplete or corrupt: model.safetensors has "
                                           r"sha256 \w+…, config.json records \w+… \(the bytes changed after the save\)"):
        CheckpointDataset(filepath=str(tmp_path / "policy"), version=Version("v1", None)).load()


def test_an_incomplete_newest_checkpoint_names_its_version(tmp_path: Path) -> None:
    _saved_checkpoint(tmp_path, "v1")
    root = _saved_checkpoint(tmp_path, "v2", seed=1)
    (root / "config.json").unlink()  # a save killed before its last file
    with pytest.raises(DatasetError, match=r"policy/v2/policy' is incomplete or corrupt: no config.json \(a save that "
                                           r"was interrupted"):
        CheckpointDataset(filepath=str(tmp_path / "policy"), version=Version("v2", None)).load()
    (root / "config.json").write_text('{"seed": 1, "integr')
    with pytest.raises(DatasetError, match=r"v2/policy' is incomplete or corrupt: config.json is not valid JSON"):
        CheckpointDataset(filepath=str(tmp_path / "policy"), version=Version("v2", None)).load()
    truncated = _saved_checkpoint(tmp_path, "v3", seed=2)
    data = (truncated / "model.safetensors").read_bytes()
    (truncated / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match=rf"{len(data) // 2} bytes, config.json records {len(data)} \(truncated\)"):
        CheckpointDataset(filepath=str(tmp_path / "policy"), version=Version("v3", None)).load()


def test_a_series_with_a_missing_step_is_an_error_listing_the_steps(tmp_path: Path) -> None:
    series = {f"step-{s:06d}": Checkpoint({"step": s}, _tensors(s)) for s in (3, 6, 9)}
    CheckpointSeriesDataset(filepath=str(tmp_path / "checkpoints"), version=Version(None, "v1")).save(series)
    root = tmp_path / "checkpoints" / "v1" / "checkpoints"
    (root / "step-000003" / "config.json").unlink()
    shutil.rmtree(root / "step-000009")
    with pytest.raises(DatasetError, match=r"checkpoint series '.*v1/checkpoints' is incomplete: 2 of 3 checkpoints are "
                                           r"missing or partial: step-000003, step-000009"):
        CheckpointSeriesDataset(filepath=str(tmp_path / "checkpoints"), version=Version("v1", None)).load()
    (root / "step-000006" / "model.safetensors").write_bytes(b"\0" * 10)
    (root / "series.json").write_text('{"names": ["step-000006"]}')
    with pytest.raises(DatasetError, match=r"step-000006' is incomplete or corrupt: model.safetensors has 10 bytes"):
        CheckpointSeriesDataset(filepath=str(tmp_path / "checkpoints"), version=Version("v1", None)).load()
