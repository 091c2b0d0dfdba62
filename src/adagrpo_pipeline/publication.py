"""All-or-nothing publication of a stage's versioned outputs (commit manifests).

A run writes every versioned output under its save version as usual; nothing of a stage is
visible to later loads until the stage's last output is saved and one manifest is written for
it, atomically (a temporary file renamed into place): `<commits_dir>/<save version>__<stage>.json`,
listing each dataset of the stage with its version and the sha256 and size of each of its files.
Loading takes, per dataset, the newest version that a manifest lists (and, within a run, the
version the run itself has just saved), and checks its files against the manifest. So a run
that fails or is killed half-way through a stage leaves the previous versions as the latest, and
the latest of two datasets never comes from two runs of one stage.

This module is the Kedro-free part (manifests, hashing, verification); the Kedro hook that
applies it to a run is `adagrpo_pipeline.hooks.AtomicPublicationHook`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

log = logging.getLogger(__name__)

_CHUNK = 1 << 22


class ArtifactsParams(BaseModel):
    """`params:artifacts`: where commit manifests live and how loads are checked."""

    model_config = ConfigDict(extra="forbid")
    commits_dir: str = Field("data/09_commits", description="one manifest per (run, stage); a local folder")
    verify_on_load: bool = Field(True, description="check a version's files against its manifest (sha256) before loading")
    fallback_to_last_complete: bool = Field(
        False, description="when the newest committed version of a dataset fails its check, load the newest one that "
        "passes (with a warning) instead of stopping")


class ArtifactIntegrityError(RuntimeError):
    """A committed version's files differ from its manifest, or no usable version exists."""


def sha256_file(fs: Any, path: str) -> tuple[str, int]:
    """(hex sha256, size in bytes) of one file on an fsspec filesystem, read in chunks."""
    h, size = hashlib.sha256(), 0
    with fs.open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def file_digests(fs: Any, path: str) -> dict[str, dict[str, Any]]:
    """{relative path: {sha256, bytes}} of a file or of every file under a folder."""
    if not fs.exists(path):
        return {}
    if fs.isdir(path):
        files = sorted(p for p in fs.find(path) if not fs.isdir(p))
        base = path.rstrip("/") + "/"
        rel = {p: p[len(base):] if p.startswith(base) else p.rsplit("/", 1)[-1] for p in files}
    else:
        rel = {path: "."}
    out = {}
    for full, name in rel.items():
        digest, size = sha256_file(fs, full)
        out[name] = {"sha256": digest, "bytes": size}
    return out


def check_digests(fs: Any, path: str, expected: dict[str, dict[str, Any]]) -> list[str]:
    """What differs between the files at `path` and their recorded digests (empty: intact)."""
    problems = []
    base = path.rstrip("/")
    for name, want in sorted(expected.items()):
        full = base if name == "." else f"{base}/{name}"
        if not fs.exists(full):
            problems.append(f"'{full}' is missing")
            continue
        digest, size = sha256_file(fs, full)
        if size != want["bytes"]:
            problems.append(f"'{full}' has {size} bytes, the manifest records {want['bytes']} (truncated or rewritten)")
        elif digest != want["sha256"]:
            problems.append(f"'{full}' has sha256 {digest[:16]}…, the manifest records {want['sha256'][:16]}… (corrupt)")
    return problems


def _safe(unit: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", unit) or "_"


@dataclass
class Manifests:
    """The commit manifests of one project (a local folder)."""

    root: Path
    _cache: dict[str, dict[str, Any]] | None = field(default=None, repr=False)

    def commit(self, save_version: str, unit: str, datasets: dict[str, dict[str, Any]], **info: Any) -> Path:
        """Write the manifest of one stage of one run, atomically; returns its path."""
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / f"{save_version}__{_safe(unit)}.json"
        body = {"save_version": save_version, "stage": unit, "committed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                **info, "datasets": datasets}
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(body, fh, indent=1, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        self._cache = None
        log.info("committed stage '%s' of run %s: %d dataset(s)", unit, save_version, len(datasets))
        return path

    def _all(self) -> dict[str, dict[str, Any]]:
        if self._cache is None:
            self._cache = {}
            for path in sorted(self.root.glob("*__*.json")) if self.root.exists() else []:
                try:
                    self._cache[path.name] = json.loads(path.read_text(encoding="utf-8"))
                except (OSError, json.JSONDecodeError) as err:  # never half-written (renamed into place): damaged later
                    log.warning("commit manifest %s is unreadable (%s): its versions count as uncommitted", path, err)
        return self._cache

    def committed(self, dataset: str) -> dict[str, dict[str, Any]]:
        """{version: manifest entry} of every committed version of `dataset`."""
        out = {}
        for body in self._all().values():
            entry = body.get("datasets", {}).get(dataset)
            if entry is not None:
                out[entry["version"]] = entry
        return out
