"""Shared plumbing of the project's versioned, fsspec-backed datasets."""

from __future__ import annotations

from copy import deepcopy
from pathlib import PurePosixPath
from typing import Any, Generic, TypeVar

import fsspec
from kedro.io.core import AbstractVersionedDataset, DatasetError, Version, get_filepath_str, get_protocol_and_path

T = TypeVar("T")


class FsspecVersionedDataset(AbstractVersionedDataset[T, T], Generic[T]):
    """Versioned dataset on any fsspec filesystem. Subclasses implement `load`/`save` with
    `self._fs`, `self._load_root()` and `self._save_root()`; `_exists` checks `_marker`."""

    _marker: str = ""  # file under the root whose presence means "saved" ("" = the root itself)

    def __init__(
        self,
        *,
        filepath: str,
        version: Version | None = None,
        credentials: dict[str, Any] | None = None,
        fs_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        protocol, path = get_protocol_and_path(filepath, version)
        fs_args = deepcopy(fs_args) or {}
        if protocol == "file":
            fs_args.setdefault("auto_mkdir", True)
        self._protocol = protocol
        self._fs = fsspec.filesystem(protocol, **(credentials or {}), **fs_args)
        self.metadata = metadata
        super().__init__(filepath=PurePosixPath(path), version=version, exists_function=self._fs.exists,
                         glob_function=self._fs.glob)

    def _load_root(self) -> str:
        return get_filepath_str(self._get_load_path(), self._protocol)

    def _save_root(self) -> str:
        return get_filepath_str(self._get_save_path(), self._protocol)

    def _with_marker(self, root: str) -> str:
        return f"{root}/{self._marker}" if self._marker else root

    def _release(self) -> None:
        super()._release()
        self._invalidate_cache()

    def _invalidate_cache(self) -> None:
        self._fs.invalidate_cache(get_filepath_str(self._filepath, self._protocol))

    def _exists(self) -> bool:
        try:
            root = self._load_root()
        except DatasetError:
            return False
        return self._fs.exists(self._with_marker(root))

    def _describe(self) -> dict[str, Any]:
        return {"filepath": self._filepath, "protocol": self._protocol, "version": self._version}
