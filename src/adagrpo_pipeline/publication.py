"""All-or-nothing publication of a stage's versioned outputs (commit manifests).

A run writes every versioned output under its save version as usual; nothing of a stage is
visible to later loads until the stage's last output is saved and one manifest is written for
it, atomically (a temporary file renamed into place): `<commits_dir>/<save version>__<stage>.json`,
listing each dataset of the stage with its version and the sha256 and size of each of its files.
Loading takes, per dataset, the newest version that a manifest lists (and, within a run, the
version the run itself has just saved), and checks its files against the manifest. So a run
that fails or is killed half-way through a stage leaves the previous versions as the latest, and
the latest of two datasets never comes from two runs of one stage.

This module is the Kedro-free part: manifests, hashing, verification, which stage a saved
output completes (`StageTracker`) and which version a load takes (`Publication`). It sees a
versioned dataset only through `Versions`; the Kedro hook that applies it to a run is
`adagrpo_pipeline.hooks.AtomicPublicationHook`, and `adagrpo_pipeline.kedro_versions` adapts
Kedro's versioned datasets to `Versions`.
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
from typing import Any, Protocol

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


class Versions(Protocol):
    """One versioned dataset, as publication sees it."""

    @property
    def pinned(self) -> str | None:
        """The load version the run pinned (`--load-versions`), None where it pinned none."""

    def on_disk(self) -> list[str]:
        """Every version on disk, newest first."""

    def save_version(self) -> str:
        """The version this run saves."""

    def location(self, version: str) -> tuple[Any, str]:
        """(fsspec filesystem, path) of one version."""

    def use(self, version: str) -> None:
        """Make an unpinned load take `version`."""


class StageTracker:
    """Which stage each node of a run belongs to, and when a stage is complete: every one of its
    nodes has run and has saved every one of its outputs."""

    def __init__(self, nodes: dict[str, tuple[str, set[str]]]) -> None:
        """`nodes`: {node name: (stage, output names)}."""
        self._outputs = {name: set(outputs) for name, (_, outputs) in nodes.items()}
        self._stage_of = {name: stage for name, (stage, _) in nodes.items()}
        self.stages: dict[str, set[str]] = {}
        for name, stage in self._stage_of.items():
            self.stages.setdefault(stage, set()).add(name)
        self._ran: set[str] = set()
        self._saved_by: dict[str, set[str]] = {}
        self._done: set[str] = set()
        self.committed: set[str] = set()

    def node_ran(self, node: str) -> str | None:
        self._ran.add(node)
        return self._completed(node)

    def output_saved(self, node: str, dataset: str) -> str | None:
        self._saved_by.setdefault(node, set()).add(dataset)
        return self._completed(node)

    def _completed(self, node: str) -> str | None:
        """The stage that `node` has just completed (counted committed from now on), else None."""
        if node not in self._outputs or node not in self._ran:
            return None
        if not self._outputs[node] <= self._saved_by.get(node, set()):
            return None
        self._done.add(node)
        stage = self._stage_of[node]
        if stage in self.committed or not self.stages[stage] <= self._done:
            return None
        self.committed.add(stage)
        return stage

    def outputs(self, stage: str) -> list[str]:
        """Every output of the stage's nodes, sorted."""
        return sorted({o for n in self.stages[stage] for o in self._outputs[n]})

    def uncommitted(self) -> list[str]:
        return sorted(s for s in self.stages if s not in self.committed)

    def run_failed(self) -> None:
        """Log which stages a failed run leaves uncommitted."""
        if left := self.uncommitted():
            log.warning("the run failed: stage(s) %s were not committed; any version they wrote stays invisible to "
                        "later loads (the previous committed versions remain the latest)", left)


class Publication:
    """The commit manifests of one catalog's session: what a stage commits, which version a load
    takes and whether its files pass their check (each version checked at most once)."""

    def __init__(self, params: ArtifactsParams, manifests: Manifests, save_version: str) -> None:
        self.params, self.manifests, self.save_version = params, manifests, save_version
        self.saved: set[str] = set()  # outputs this session has saved (under `save_version`)
        self._checked: dict[tuple[str, str], list[str]] = {}
        self._warned: set[str] = set()

    @classmethod
    def of(cls, artifacts: dict[str, Any], project: Path, save_version: str) -> Publication:
        """From the `artifacts` parameters; a relative `commits_dir` is under the project's folder."""
        params = ArtifactsParams.model_validate(artifacts)
        root = Path(params.commits_dir)
        return cls(params, Manifests(root if root.is_absolute() else project / root), save_version)

    def commit(self, stage: str, outputs: dict[str, Versions | None], **info: Any) -> None:
        """Write the stage's manifest, listing each of its `outputs` that is versioned (not None), in
        the order given; no manifest where none is."""
        entries = {}
        for name, versions in outputs.items():
            if versions is None:
                continue
            version = versions.save_version()
            fs, path = versions.location(version)
            entries[name] = {"version": version, "path": path, "files": file_digests(fs, path)}
        if entries:
            self.manifests.commit(self.save_version, stage, entries, **info)

    def open_latest(self, datasets: dict[str, Versions | None]) -> None:
        """Point each unpinned versioned dataset (not None) at its newest committed version, unchecked,
        so that loads outside a run (notebooks, `catalog.load`) see committed versions too."""
        for name, versions in datasets.items():
            if versions is None or versions.pinned is not None:
                continue
            try:
                version = self._resolve(name, versions, verify=False)
            except ArtifactIntegrityError:
                continue
            if version is not None:
                versions.use(version)

    def before_load(self, name: str, versions: Versions) -> None:
        """Check a pinned version (never replaced); else take this session's own saved version, else
        the newest committed one that passes its check."""
        pinned = versions.pinned
        if pinned is not None:
            entry = self.manifests.committed(name).get(pinned)
            if entry is not None and self.params.verify_on_load:
                problems = self._check(name, versions, pinned, entry)
                if problems:
                    raise ArtifactIntegrityError(f"the pinned version {pinned} of '{name}' is "
                                                 f"damaged: {'; '.join(problems)}")
            return
        if name in self.saved:  # this run's own output
            versions.use(self.save_version)
            return
        version = self._resolve(name, versions, verify=True)
        if version is not None:
            versions.use(version)

    def _check(self, name: str, versions: Versions, version: str, entry: dict[str, Any]) -> list[str]:
        key = (name, version)
        if key not in self._checked:
            fs, path = versions.location(version)
            self._checked[key] = check_digests(fs, path, entry.get("files", {}))
        return self._checked[key]

    def _warn_once(self, key: str, message: str, *args: Any) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(message, *args)

    def _resolve(self, name: str, versions: Versions, verify: bool) -> str | None:
        """The version of `name` to load: the newest committed one (that passes its check when
        `verify`); None leaves Kedro's own choice (no manifest has ever listed `name`)."""
        on_disk = versions.on_disk()
        committed = self.manifests.committed(name)
        if not committed:
            if on_disk:
                self._warn_once(f"legacy:{name}", "no commit manifest lists '%s': its versions predate atomic publication; "
                                "loading the newest on disk (%s)", name, on_disk[0])
            return None
        candidates = [v for v in on_disk if v in committed]
        newer = [v for v in on_disk if v not in committed and (not candidates or v > candidates[0])]
        if newer:
            self._warn_once(f"skip:{name}", "'%s': skipping version(s) %s, never committed (written by a run that failed or "
                            "was stopped before its stage finished)", name, ", ".join(newer))
        if not candidates:
            raise ArtifactIntegrityError(
                f"no committed version of '{name}' is on disk (committed: {sorted(committed)}; on disk: {on_disk}). "
                "Fix: re-run the stage that writes it")
        for version in candidates:
            if not (verify and self.params.verify_on_load):
                return version
            problems = self._check(name, versions, version, committed[version])
            if not problems:
                return version
            if not self.params.fallback_to_last_complete:
                older = [v for v in candidates if v != version]
                raise ArtifactIntegrityError(
                    f"version {version} of '{name}' is damaged: {'; '.join(problems)}. Fix: re-run the stage that writes "
                    f"it; or load the newest intact committed version with `--params artifacts.fallback_to_last_complete=true`"
                    + (f"; or pin one with `--load-versions {name}:{older[0]}` (committed: {', '.join(older)})" if older else ""))
            log.warning("version %s of '%s' is damaged (%s): falling back to an older committed version, as "
                        "artifacts.fallback_to_last_complete asks", version, name, "; ".join(problems))
        raise ArtifactIntegrityError(f"every committed version of '{name}' is damaged ({', '.join(candidates)}). "
                                     "Fix: re-run the stage that writes it")
