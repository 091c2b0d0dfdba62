"""Kedro's versioned datasets as `publication.Versions`: the one place in the project that reads
private attributes of Kedro (and of kedro-datasets) for atomic publication.

Each private access below names the attribute and the release it was checked against (kedro 1.7.0,
kedro-datasets 9.6.0); tests/test_kedro_versions.py exercises every one of them on real versioned
datasets and fails when a release renames or changes one. Everything else goes through public APIs:
`list_versions(full_path=False)`, `resolve_save_version()`, `kedro.io.core.get_filepath_str`.
"""

from __future__ import annotations

from typing import Any

import fsspec
from kedro.io.core import AbstractVersionedDataset, get_filepath_str


class KedroVersions:
    """One versioned Kedro dataset (`publication.Versions`)."""

    def __init__(self, dataset: AbstractVersionedDataset) -> None:
        self.dataset = dataset

    @property
    def pinned(self) -> str | None:
        # private `AbstractVersionedDataset._version.load`: the version given by `--load-versions`
        # (Kedro has no public reader of it); checked against kedro 1.7.0
        return self.dataset._version.load

    def on_disk(self) -> list[str]:
        return self.dataset.list_versions(full_path=False)

    def save_version(self) -> str:
        return self.dataset.resolve_save_version()

    def location(self, version: str) -> tuple[Any, str]:
        """(fsspec filesystem, path) of one version: Kedro's own layout `<filepath>/<version>/<basename>`."""
        # private `_protocol` and `_fs`: the fsspec protocol and filesystem of kedro-datasets' datasets
        # (and of `datasets._base.FsspecVersionedDataset`), local files where a dataset has none;
        # checked against kedro-datasets 9.6.0
        protocol = getattr(self.dataset, "_protocol", "file")
        fs = getattr(self.dataset, "_fs", None) or fsspec.filesystem("file")
        # private `AbstractVersionedDataset._get_versioned_path(version)`; checked against kedro 1.7.0
        return fs, get_filepath_str(self.dataset._get_versioned_path(version), protocol)

    def use(self, version: str) -> None:
        # private `AbstractVersionedDataset._cached_load_version`: what `resolve_load_version()` returns
        # for an unpinned load until the dataset is saved or released; checked against kedro 1.7.0
        self.dataset._cached_load_version = version


def versioned(dataset: Any) -> KedroVersions | None:
    """`dataset` as `Versions` when it is a versioned Kedro dataset, else None."""
    # private `AbstractVersionedDataset._version`: None where the catalog entry is not versioned;
    # checked against kedro 1.7.0
    if isinstance(dataset, AbstractVersionedDataset) and dataset._version is not None:
        return KedroVersions(dataset)
    return None
