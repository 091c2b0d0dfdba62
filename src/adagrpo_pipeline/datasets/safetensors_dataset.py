"""`SafetensorsDataset`: a versioned `dict[str, torch.Tensor]` in one .safetensors file.

Loading parses the safetensors header and raw buffers only: nothing is ever unpickled.
Any fsspec filesystem works (local paths, s3://, gs://, ...).
"""

from __future__ import annotations

import torch
from kedro.io.core import DatasetError
from safetensors.torch import load as load_bytes
from safetensors.torch import save as save_bytes

from ._base import FsspecVersionedDataset


class SafetensorsDataset(FsspecVersionedDataset[dict[str, torch.Tensor]]):
    """Example catalog entry::

        sid_trie:
          type: adagrpo_pipeline.datasets.SafetensorsDataset
          filepath: data/04_feature/sid_trie.safetensors
          versioned: true
    """

    def load(self) -> dict[str, torch.Tensor]:
        with self._fs.open(self._load_root(), "rb") as fh:
            return load_bytes(fh.read())

    def save(self, data: dict[str, torch.Tensor]) -> None:
        if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
            raise DatasetError(f"{type(self).__name__} saves a dict of torch tensors, got {type(data).__name__}")
        payload = save_bytes({k: v.detach().cpu().contiguous() for k, v in data.items()})
        with self._fs.open(self._save_root(), "wb") as fh:
            fh.write(payload)
        self._invalidate_cache()
