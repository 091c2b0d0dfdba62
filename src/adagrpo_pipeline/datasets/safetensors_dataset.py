"""`SafetensorsDataset`: a versioned `dict[str, torch.Tensor]` in one .safetensors file.

Loading parses the safetensors header and raw buffers only: nothing is ever unpickled.
Any fsspec filesystem works (local paths, s3://, gs://, ...).
"""

from __future__ import annotations

from copy import deepcopy
from pathlib import PurePosixPath
from typing import Any

import fsspec
import torch
from kedro.io.core import AbstractVersionedDataset, DatasetError, Version, get_filepath_str, get_protocol_and_path
from safetensors.torch import load as load_bytes
from safetensors.torch import save as save_bytes


class SafetensorsDataset(AbstractVersionedDataset[dict[str, torch.Tensor], dict[str, torch.Tensor]]):
    """Example catalog entry::

        sid_trie:
          type: adagrpo_pipeline.datasets.SafetensorsDataset
          filepath: data/04_feature/sid_trie.safetensors
          versioned: true
    """

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

    def load(self) -> dict[str, torch.Tensor]:
        path = get_filepath_str(self._get_load_path(), self._protocol)
        with self._fs.open(path, "rb") as fh:
            return load_bytes(fh.read())

    def save(self, data: dict[str, torch.Tensor]) -> None:
        if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
            raise DatasetError(f"{type(self).__name__} saves a dict of torch tensors, got {type(data).__name__}")
        path = get_filepath_str(self._get_save_path(), self._protocol)
        payload = save_bytes({k: v.detach().cpu().contiguous() for k, v in data.items()})
        with self._fs.open(path, "wb") as fh:
            fh.write(payload)
        self._invalidate_cache()

    def _release(self) -> None:
        super()._release()
        self._invalidate_cache()

    def _invalidate_cache(self) -> None:
        """Drop the filesystem's cached listing so a new version is seen."""
        self._fs.invalidate_cache(get_filepath_str(self._filepath, self._protocol))

    def _exists(self) -> bool:
        try:
            path = get_filepath_str(self._get_load_path(), self._protocol)
        except DatasetError:
            return False
        return self._fs.exists(path)

    def _describe(self) -> dict[str, Any]:
        return {"filepath": self._filepath, "protocol": self._protocol, "version": self._version}
