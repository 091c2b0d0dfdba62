"""The private attributes of Kedro and kedro-datasets that atomic publication reads, all behind
`adagrpo_pipeline.kedro_versions` (checked against kedro 1.7.0, kedro-datasets 9.6.0), exercised on
real versioned datasets: `_version` (and its `load`), `_cached_load_version`, `_get_versioned_path`,
`_protocol` and `_fs`. Each test fails when a release renames or changes what one of them means."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import torch
from fsspec.implementations.local import LocalFileSystem
from fsspec.implementations.memory import MemoryFileSystem
from kedro.io import MemoryDataset
from kedro.io.core import Version
from kedro_datasets.pandas import ParquetDataset

from adagrpo_pipeline.datasets import CheckpointDataset
from adagrpo_pipeline.kedro_versions import KedroVersions, versioned
from adagrpo_pipeline.training.checkpoint import Checkpoint

OLD, NEW, NEXT = "2026-01-01T00.00.00.000Z", "2026-01-02T00.00.00.000Z", "2026-01-03T00.00.00.000Z"


def _frame(n: int) -> pd.DataFrame:
    return pd.DataFrame({"user_id": range(n)})


def _two_versions(tmp_path: Path) -> str:
    path = str(tmp_path / "users.parquet")
    for version, n in ((OLD, 2), (NEW, 3)):
        ParquetDataset(filepath=path, version=Version(None, version)).save(_frame(n))
    return path


def test_only_a_versioned_catalog_entry_has_versions(tmp_path: Path) -> None:
    path = _two_versions(tmp_path)
    assert isinstance(versioned(ParquetDataset(filepath=path, version=Version(None, None))), KedroVersions)
    assert versioned(ParquetDataset(filepath=str(tmp_path / "plain.parquet"))) is None  # `_version` is None
    assert versioned(MemoryDataset(_frame(1))) is None and versioned(None) is None


def test_a_pinned_load_version_is_read_and_an_unpinned_one_is_none(tmp_path: Path) -> None:
    path = _two_versions(tmp_path)
    assert versioned(ParquetDataset(filepath=path, version=Version(OLD, None))).pinned == OLD  # `_version.load`
    assert versioned(ParquetDataset(filepath=path, version=Version(None, NEXT))).pinned is None


def test_versions_on_disk_newest_first_and_the_save_version_of_the_run(tmp_path: Path) -> None:
    versions = versioned(ParquetDataset(filepath=_two_versions(tmp_path), version=Version(None, NEXT)))
    assert versions.on_disk() == [NEW, OLD]
    assert versions.save_version() == NEXT


def test_use_makes_an_unpinned_load_take_that_version(tmp_path: Path) -> None:
    dataset = ParquetDataset(filepath=_two_versions(tmp_path), version=Version(None, NEXT))
    assert len(dataset.load()) == 3  # Kedro's own choice: the newest on disk
    KedroVersions(dataset).use(OLD)  # `_cached_load_version`
    assert dataset.resolve_load_version() == OLD
    pd.testing.assert_frame_equal(dataset.load(), _frame(2))
    dataset.save(_frame(4))  # a save forgets it (Kedro clears its version cache)
    assert dataset.resolve_load_version() == NEXT


def test_the_location_of_a_version_is_kedros_layout_on_the_datasets_filesystem(tmp_path: Path) -> None:
    path = _two_versions(tmp_path)
    fs, where = versioned(ParquetDataset(filepath=path, version=Version(None, None))).location(OLD)
    assert isinstance(fs, LocalFileSystem) and where == f"{path}/{OLD}/users.parquet"  # `_get_versioned_path`
    assert fs.cat_file(where) == (tmp_path / "users.parquet" / OLD / "users.parquet").read_bytes()


def test_the_location_uses_the_datasets_own_filesystem_and_protocol() -> None:
    memory = ParquetDataset(filepath="memory:///kedro-versions-drill/users.parquet", version=Version(None, NEXT))
    memory.save(_frame(5))
    fs, where = versioned(memory).location(NEXT)  # `_fs`: the in-memory filesystem, not the local one
    assert isinstance(fs, MemoryFileSystem) and where == f"/kedro-versions-drill/users.parquet/{NEXT}/users.parquet"
    with fs.open(where, "rb") as fh:
        pd.testing.assert_frame_equal(pd.read_parquet(fh), _frame(5))
    fs.rm("/kedro-versions-drill", recursive=True)
    # `_protocol`, which `location` reads with "file" as its default: a rename would go unnoticed there
    # (for a versioned dataset only the http(s) protocols, which Kedro cannot version, change the path)
    assert memory._protocol == "memory" and ParquetDataset(filepath="users.parquet")._protocol == "file"

def test_the_location_of_a_project_checkpoint_is_its_folder(tmp_path: Path) -> None:
    path = str(tmp_path / "sft_policy")
    CheckpointDataset(filepath=path, version=Version(None, OLD)).save(Checkpoint({"seed": 0}, {"w": torch.ones(2)}))
    fs, where = versioned(CheckpointDataset(filepath=path, version=Version(None, None))).location(OLD)
    assert where == f"{path}/{OLD}/sft_policy" and sorted(p.rsplit("/", 1)[-1] for p in fs.find(where)) == [
        "config.json", "model.safetensors"]
    weights = (tmp_path / "sft_policy" / OLD / "sft_policy" / "model.safetensors").read_bytes()
    assert hashlib.sha256(fs.cat_file(f"{where}/model.safetensors")).hexdigest() == hashlib.sha256(weights).hexdigest()
