"""`CheckpointDataset`: a versioned model checkpoint = a folder holding `model.safetensors`
(the weights) and `config.json` (what the model is and how to rebuild it).
`CheckpointSeriesDataset`: a versioned series of such checkpoints (e.g. every N training
steps), one sub-folder per name; its weights are read only when used, and checkpoints whose
weights are a stored file are copied byte for byte, so a long series never sits in memory.
Loading parses JSON and safetensors only: nothing is ever unpickled. Any fsspec filesystem
works."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from typing import Any

from kedro.io.core import DatasetError
from safetensors.torch import load as load_bytes
from safetensors.torch import save as save_bytes

from adagrpo_pipeline.publication import sha256_file
from adagrpo_pipeline.training.checkpoint import Checkpoint, StoredWeights

from ._base import FsspecVersionedDataset

log = logging.getLogger(__name__)

WEIGHTS, CONFIG, SERIES = "model.safetensors", "config.json", "series.json"
INTEGRITY = "integrity"  # config.json key: {"weights_sha256", "weights_bytes"} of model.safetensors


class _HashingWriter:
    """Write-through file wrapper that hashes what passes through it."""

    def __init__(self, fh: Any) -> None:
        self.fh, self.sha, self.size = fh, hashlib.sha256(), 0

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        self.size += len(data)
        return self.fh.write(data)


def _damaged(root: str, problem: str) -> DatasetError:
    return DatasetError(f"checkpoint '{root}' is incomplete or corrupt: {problem}. Fix: re-run the stage that writes it, or "
                        "load an intact version (`--load-versions <dataset>:<version>` or "
                        "`--params artifacts.fallback_to_last_complete=true`)")


def _read(fs, root: str, lazy: bool) -> Checkpoint:
    """Read `config.json`, check `model.safetensors` against the sha256 it records (streamed when
    `lazy`, the weights then read again on use) and return the checkpoint."""
    if not fs.exists(f"{root}/{CONFIG}"):
        raise _damaged(root, f"no {CONFIG} (a save that was interrupted before its last file)")
    try:
        with fs.open(f"{root}/{CONFIG}", "r") as fh:
            config = json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise _damaged(root, f"{CONFIG} is not valid JSON ({err})") from err
    integrity = config.pop(INTEGRITY, None)
    path = f"{root}/{WEIGHTS}"
    if not fs.exists(path):
        raise _damaged(root, f"no {WEIGHTS}")
    if integrity is None:
        log.warning("checkpoint '%s' records no sha256 of its weights (written before checksums): not verified", root)
    if lazy:
        if integrity is not None:
            digest, size = sha256_file(fs, path)
            _compare(root, integrity, digest, size)
        return Checkpoint(config, StoredWeights(path, fs))
    with fs.open(path, "rb") as fh:
        payload = fh.read()
    if integrity is not None:
        _compare(root, integrity, hashlib.sha256(payload).hexdigest(), len(payload))
    try:
        return Checkpoint(config, load_bytes(payload))
    except Exception as err:  # safetensors raises its own error types on a bad header
        raise _damaged(root, f"{WEIGHTS} is not a readable safetensors file ({err})") from err


def _compare(root: str, integrity: dict[str, Any], digest: str, size: int) -> None:
    if size != integrity["weights_bytes"]:
        raise _damaged(root, f"{WEIGHTS} has {size} bytes, {CONFIG} records {integrity['weights_bytes']} (truncated)")
    if digest != integrity["weights_sha256"]:
        raise _damaged(root, f"{WEIGHTS} has sha256 {digest[:16]}…, {CONFIG} records {integrity['weights_sha256'][:16]}… "
                       "(the bytes changed after the save)")


def _write(fs, root: str, data: Checkpoint, owner: str) -> None:
    if not isinstance(data, Checkpoint):
        raise DatasetError(f"{owner} saves a Checkpoint, got {type(data).__name__}")
    if INTEGRITY in data.config:
        raise DatasetError(f"{owner}: the config key '{INTEGRITY}' is reserved for the weights' checksum")
    fs.makedirs(root, exist_ok=True)
    with fs.open(f"{root}/{WEIGHTS}", "wb") as fh:
        out = _HashingWriter(fh)
        if isinstance(data.weights, StoredWeights):  # stream the file written by the training loop
            with data.weights.open() as src:
                shutil.copyfileobj(src, out, 1 << 22)
        else:
            out.write(save_bytes({k: v.detach().cpu().contiguous() for k, v in data.weights.items()}))
    config = {**data.config, INTEGRITY: {"weights_sha256": out.sha.hexdigest(), "weights_bytes": out.size}}
    with fs.open(f"{root}/{CONFIG}", "w") as fh:  # written last: a complete folder has it
        json.dump(config, fh, indent=2, sort_keys=True)


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
        if self._fs.exists(f"{root}/{SERIES}"):
            with self._fs.open(f"{root}/{SERIES}", "r") as fh:
                names = json.load(fh)["names"]
        else:  # written before the series kept its list: every sub-folder is a member
            log.warning("checkpoint series '%s' has no %s (written before it was kept): members not checked", root, SERIES)
            names = sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in self._fs.ls(root, detail=False) if self._fs.isdir(p))
        missing = [n for n in names if not self._fs.exists(f"{root}/{n}/{CONFIG}") or not self._fs.exists(f"{root}/{n}/{WEIGHTS}")]
        if missing:
            raise DatasetError(f"checkpoint series '{root}' is incomplete: {len(missing)} of {len(names)} checkpoints are "
                               f"missing or partial: {', '.join(missing)}. Fix: re-run the stage that writes it, or load an "
                               "intact version (`--load-versions` / `--params artifacts.fallback_to_last_complete=true`)")
        return {n: _read(self._fs, f"{root}/{n}", lazy=True) for n in sorted(names)}

    def save(self, data: dict[str, Checkpoint]) -> None:
        if not isinstance(data, dict) or not data:
            raise DatasetError(f"{type(self).__name__} saves a non-empty dict of Checkpoints")
        root = self._save_root()
        for name, ckpt in data.items():
            if "/" in name or not name or name == SERIES:
                raise DatasetError(f"checkpoint name {name!r} must be a plain folder name")
            _write(self._fs, f"{root}/{name}", ckpt, type(self).__name__)
        with self._fs.open(f"{root}/{SERIES}", "w") as fh:  # written last: the members a complete series has
            json.dump({"names": sorted(data)}, fh, indent=2)
        self._invalidate_cache()
