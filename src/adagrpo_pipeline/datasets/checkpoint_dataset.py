"""`CheckpointDataset`: a versioned model checkpoint = a folder holding `model.safetensors`
(the weights) and `config.json` (what the model is and how to rebuild it).
`CheckpointSeriesDataset`: a versioned series of such checkpoints (e.g. every N training
steps), one sub-folder per name; its weights are read only when used, and checkpoints whose
weights are a stored file are copied byte for byte, so a long series never sits in memory.
Loading parses JSON and safetensors only: nothing is ever unpickled. Any fsspec filesystem
works."""

from __future__ import annotations

import json
import shutil

from kedro.io.core import DatasetError
from safetensors.torch import save as save_bytes

from adagrpo_pipeline.training.checkpoint import Checkpoint, StoredWeights

from ._base import FsspecVersionedDataset

WEIGHTS, CONFIG = "model.safetensors", "config.json"


def _read(fs, root: str, lazy: bool) -> Checkpoint:
    with fs.open(f"{root}/{CONFIG}", "r") as fh:
        config = json.load(fh)
    weights = StoredWeights(f"{root}/{WEIGHTS}", fs)
    return Checkpoint(config, weights if lazy else weights.load())


def _write(fs, root: str, data: Checkpoint, owner: str) -> None:
    if not isinstance(data, Checkpoint):
        raise DatasetError(f"{owner} saves a Checkpoint, got {type(data).__name__}")
    fs.makedirs(root, exist_ok=True)
    with fs.open(f"{root}/{WEIGHTS}", "wb") as fh:
        if isinstance(data.weights, StoredWeights):  # stream the file written by the training loop
            with data.weights.open() as src:
                shutil.copyfileobj(src, fh, 1 << 22)
        else:
            fh.write(save_bytes({k: v.detach().cpu().contiguous() for k, v in data.weights.items()}))
    with fs.open(f"{root}/{CONFIG}", "w") as fh:  # written last: a complete folder has it
        json.dump(data.config, fh, indent=2, sort_keys=True)


class CheckpointDataset(FsspecVersionedDataset[Checkpoint]):
    """Example catalog entry::

        sft_policy:
          type: adagrpo_pipeline.datasets.CheckpointDataset
          filepath: data/06_models/sft_policy
          versioned: true
    """

    _marker = CONFIG

    def load(self) -> Checkpoint:
        return _read(self._fs, self._load_root(), lazy=False)

    def save(self, data: Checkpoint) -> None:
        _write(self._fs, self._save_root(), data, type(self).__name__)
        self._invalidate_cache()


class CheckpointSeriesDataset(FsspecVersionedDataset[dict[str, Checkpoint]]):
    """{name: Checkpoint} saved as `<filepath>/<version>/<basename>/<name>/`; loads every
    config, sorted by name (zero-padded step names sort by step), with weights read on use."""

    _marker = ""

    def load(self) -> dict[str, Checkpoint]:
        root = self._load_root()
        names = sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in self._fs.ls(root, detail=False) if self._fs.isdir(p))
        return {n: _read(self._fs, f"{root}/{n}", lazy=True) for n in names if self._fs.exists(f"{root}/{n}/{CONFIG}")}

    def save(self, data: dict[str, Checkpoint]) -> None:
        if not isinstance(data, dict) or not data:
            raise DatasetError(f"{type(self).__name__} saves a non-empty dict of Checkpoints")
        root = self._save_root()
        for name, ckpt in data.items():
            if "/" in name or not name:
                raise DatasetError(f"checkpoint name {name!r} must be a plain folder name")
            _write(self._fs, f"{root}/{name}", ckpt, type(self).__name__)
        self._invalidate_cache()
