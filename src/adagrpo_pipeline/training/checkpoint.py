"""Model checkpoints as safetensors weights + a JSON config, never a pickle.

The weights of a `Checkpoint` are either in memory or a stored safetensors file that is read
only when `tensors` is asked for (`StoredWeights`): a training loop writes each checkpoint
file once, and the catalog copies those bytes into its versioned folder, so a series of
checkpoints never has to be held in memory at once."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import fsspec
import torch
from safetensors.torch import load as load_bytes


@dataclass(frozen=True)
class StoredWeights:
    """A safetensors file on an fsspec filesystem (local by default), read on demand."""

    path: str
    fs: Any = field(default_factory=lambda: fsspec.filesystem("file"), compare=False, repr=False)

    def open(self) -> IO[bytes]:
        return self.fs.open(self.path, "rb")

    def load(self) -> dict[str, torch.Tensor]:
        with self.open() as fh:
            return load_bytes(fh.read())


@dataclass
class Checkpoint:
    """`config`: JSON-able description (model kind, its config, metadata); `weights`: the state
    dict, or the file that holds it."""

    config: dict[str, Any]
    weights: dict[str, torch.Tensor] | StoredWeights = field(repr=False)

    @property
    def tensors(self) -> dict[str, torch.Tensor]:
        """The state dict (read from its file each time when stored)."""
        return self.weights.load() if isinstance(self.weights, StoredWeights) else self.weights

    @classmethod
    def from_file(cls, config: dict[str, Any], path: Path | str) -> Checkpoint:
        return cls(config, StoredWeights(str(path)))
