"""`CheckpointDataset`: a versioned model checkpoint = a folder holding `model.safetensors`
(the weights) and `config.json` (what the model is and how to rebuild it). Loading parses
JSON and safetensors only: nothing is ever unpickled. Any fsspec filesystem works."""

from __future__ import annotations

import json

from kedro.io.core import DatasetError
from safetensors.torch import load as load_bytes
from safetensors.torch import save as save_bytes

from adagrpo_pipeline.policy.checkpoint import Checkpoint

from ._base import FsspecVersionedDataset

WEIGHTS, CONFIG = "model.safetensors", "config.json"


class CheckpointDataset(FsspecVersionedDataset[Checkpoint]):
    """Example catalog entry::

        sft_policy:
          type: adagrpo_pipeline.datasets.CheckpointDataset
          filepath: data/06_models/sft_policy
          versioned: true
    """

    _marker = CONFIG

    def load(self) -> Checkpoint:
        root = self._load_root()
        with self._fs.open(f"{root}/{CONFIG}", "r") as fh:
            config = json.load(fh)
        with self._fs.open(f"{root}/{WEIGHTS}", "rb") as fh:
            tensors = load_bytes(fh.read())
        return Checkpoint(config=config, tensors=tensors)

    def save(self, data: Checkpoint) -> None:
        if not isinstance(data, Checkpoint):
            raise DatasetError(f"{type(self).__name__} saves a Checkpoint, got {type(data).__name__}")
        root = self._save_root()
        self._fs.makedirs(root, exist_ok=True)
        with self._fs.open(f"{root}/{WEIGHTS}", "wb") as fh:
            fh.write(save_bytes({k: v.detach().cpu().contiguous() for k, v in data.tensors.items()}))
        with self._fs.open(f"{root}/{CONFIG}", "w") as fh:  # written last: a complete folder has it
            json.dump(data.config, fh, indent=2, sort_keys=True)
        self._invalidate_cache()
