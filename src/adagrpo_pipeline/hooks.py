"""Project hooks."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import fsspec
import mlflow
from kedro.framework.hooks import hook_impl
from kedro.io import MemoryDataset
from kedro.io.core import AbstractVersionedDataset, get_filepath_str
from kedro.pipeline import Pipeline
from pydantic import BaseModel

from .context import MAIN_JOB
from .publication import ArtifactIntegrityError, ArtifactsParams, Manifests, check_digests, file_digests
from .tracking import flatten

log = logging.getLogger(__name__)


class MlflowTypedParamsHook:
    """Name the MLflow run after the pipeline and log every field of its typed parameters.

    kedro-mlflow names a plain `kedro run` "__default__": the run is renamed after the
    pipeline that is the default (`train_adagrpo`). Kedro validates `params:<stage>` into the
    Pydantic model that the node annotates, and kedro-mlflow logs such an input as one opaque
    string; this hook also logs each field (`ingest.synthetic.seed`, `runs.grpo.seed_1.seed`,
    ...), so runs can be compared and filtered on any setting in the MLflow UI. It runs after
    kedro-mlflow has started the run, and does nothing when tracking is off.
    """

    @hook_impl(trylast=True)
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Pipeline, catalog: Any) -> None:
        if mlflow.active_run() is None:
            return
        names = [MAIN_JOB if n == "__default__" else n for n in run_params.get("pipeline_names") or ["__default__"]]
        mlflow.set_tag("mlflow.runName", "+".join(names))
        params: dict[str, str] = {}
        for name in sorted(pipeline.inputs()):
            if name.startswith("params:"):
                value = catalog.load(name)
                if isinstance(value, BaseModel):
                    params.update(flatten(name.removeprefix("params:"), value.model_dump(mode="json")))
        if params:
            mlflow.log_params(params)


class RankZeroWritesHook:
    """Under `accelerate launch -m kedro run` every process runs the pipeline and the training
    loops share the work (`training.distributed`); only global rank 0 writes. On the other
    ranks every output of the pipeline becomes an in-memory dataset (later nodes there read what
    that process computed, the same values), so nothing is written twice, no version or
    manifest is made, and kedro-mlflow is off there (settings.py)."""

    def __init__(self, rank: int) -> None:
        self.rank = rank

    @hook_impl(tryfirst=True)
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Pipeline, catalog: Any) -> None:
        if self.rank == 0:
            return
        for name in sorted(pipeline.all_outputs()):
            catalog[name] = MemoryDataset(copy_mode="assign")
        log.info("rank %d: %d outputs kept in memory, rank 0 writes them", self.rank, len(pipeline.all_outputs()))


def _is_versioned(dataset: Any) -> bool:
    return isinstance(dataset, AbstractVersionedDataset) and dataset._version is not None


def _location(dataset: AbstractVersionedDataset, version: str) -> tuple[Any, str]:
    """(fsspec filesystem, path) of one version of a versioned dataset (Kedro's own layout
    `<filepath>/<version>/<basename>`)."""
    protocol = getattr(dataset, "_protocol", "file")
    fs = getattr(dataset, "_fs", None) or fsspec.filesystem("file")
    return fs, get_filepath_str(dataset._get_versioned_path(version), protocol)


class AtomicPublicationHook:
    """Make each stage's versioned outputs visible together or not at all (`publication`).

    A stage is a namespace of the pipeline being run (`ingest`, `tokenize`, `sft`, `reward`,
    `adagrpo`, `evaluate`, a study setting), or a node without one. When the last node of a stage
    has run and every one of its outputs is saved, the stage's manifest is written. Loads in a run
    take the run's own freshly saved version, else the newest committed one, checked against its
    manifest. Versions pinned with `--load-versions` are checked too but never replaced. Needs
    the sequential or thread runner (the parallel runner saves in other processes).
    """

    def __init__(self) -> None:
        self._catalog: Any = None
        self._project = Path.cwd()
        self._units: dict[str, set[str]] = {}

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        self._project = Path(context.project_path)

    @hook_impl
    def after_catalog_created(self, catalog: Any, parameters: dict[str, Any], save_version: str,
                              load_versions: dict[str, str]) -> None:
        self._catalog, self._save_version = catalog, save_version
        # `parameters` is the catalog feed: {"parameters": all, "params:<key>": value, ...}
        self._params = ArtifactsParams.model_validate(parameters.get("params:artifacts") or {})
        root = Path(self._params.commits_dir)
        self._manifests = Manifests(root if root.is_absolute() else self._project / root)
        self._saved: set[str] = set()
        self._checked: dict[tuple[str, str], list[str]] = {}
        self._warned: set[str] = set()
        for name in catalog.keys():  # interactive loads (notebooks, `catalog.load`) see committed versions too
            dataset = catalog.get(name)
            if _is_versioned(dataset) and dataset._version.load is None:
                try:
                    version = self._resolve(name, dataset, verify=False)
                except ArtifactIntegrityError:
                    continue
                if version is not None:
                    dataset._cached_load_version = version

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Pipeline, catalog: Any) -> None:
        self._units = {}
        self._outputs = {n.name: set(n.outputs) for n in pipeline.nodes}
        self._unit_of = {n.name: n.namespace or n.name for n in pipeline.nodes}
        for n in pipeline.nodes:
            self._units.setdefault(self._unit_of[n.name], set()).add(n.name)
        self._ran: set[str] = set()
        self._saved_by: dict[str, set[str]] = {}
        self._done: set[str] = set()
        self._committed_units: set[str] = set()
        self._info = {"pipelines": run_params.get("pipeline_names") or ["__default__"], "run_id": run_params.get("run_id") or run_params.get("session_id")}

    @hook_impl
    def after_node_run(self, node: Any) -> None:
        self._ran.add(node.name)
        self._maybe_commit(node)

    @hook_impl
    def after_dataset_saved(self, dataset_name: str, node: Any) -> None:
        self._saved.add(dataset_name)
        self._saved_by.setdefault(node.name, set()).add(dataset_name)
        self._maybe_commit(node)

    @hook_impl
    def on_pipeline_error(self, error: Exception) -> None:
        left = sorted(u for u in self._units if u not in self._committed_units)
        if left:
            log.warning("the run failed: stage(s) %s were not committed; any version they wrote stays invisible to "
                        "later loads (the previous committed versions remain the latest)", left)

    @hook_impl
    def before_dataset_loaded(self, dataset_name: str) -> None:
        dataset = self._catalog.get(dataset_name) if self._catalog is not None else None
        if not _is_versioned(dataset):
            return
        if dataset._version.load is not None:  # pinned by --load-versions: checked, never replaced
            entry = self._manifests.committed(dataset_name).get(dataset._version.load)
            if entry is not None and self._params.verify_on_load:
                problems = self._check(dataset_name, dataset, dataset._version.load, entry)
                if problems:
                    raise ArtifactIntegrityError(f"the pinned version {dataset._version.load} of '{dataset_name}' is "
                                                 f"damaged: {'; '.join(problems)}")
            return
        if dataset_name in self._saved:  # this run's own output
            dataset._cached_load_version = self._save_version
            return
        version = self._resolve(dataset_name, dataset, verify=True)
        if version is not None:
            dataset._cached_load_version = version

    # ------------------------------------------------------------------ helpers
    def _maybe_commit(self, node: Any) -> None:
        if node.name not in self._outputs or node.name not in self._ran:
            return
        if not self._outputs[node.name] <= self._saved_by.get(node.name, set()):
            return
        self._done.add(node.name)
        unit = self._unit_of[node.name]
        if unit in self._committed_units or not self._units[unit] <= self._done:
            return
        self._committed_units.add(unit)
        entries = {}
        for name in sorted({o for n in self._units[unit] for o in self._outputs[n]}):
            dataset = self._catalog.get(name)
            if _is_versioned(dataset):
                version = dataset.resolve_save_version()
                fs, path = _location(dataset, version)
                entries[name] = {"version": version, "path": path, "files": file_digests(fs, path)}
        if entries:
            self._manifests.commit(self._save_version, unit, entries, **self._info)

    def _check(self, name: str, dataset: Any, version: str, entry: dict[str, Any]) -> list[str]:
        key = (name, version)
        if key not in self._checked:
            fs, path = _location(dataset, version)
            self._checked[key] = check_digests(fs, path, entry.get("files", {}))
        return self._checked[key]

    def _warn_once(self, key: str, message: str, *args: Any) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(message, *args)

    def _resolve(self, name: str, dataset: Any, verify: bool) -> str | None:
        """The version of `name` to load: the newest committed one (that passes its check when
        `verify`); None leaves Kedro's own choice (no manifest has ever listed `name`)."""
        on_disk = dataset.list_versions(full_path=False)
        committed = self._manifests.committed(name)
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
            if not (verify and self._params.verify_on_load):
                return version
            problems = self._check(name, dataset, version, committed[version])
            if not problems:
                return version
            if not self._params.fallback_to_last_complete:
                older = [v for v in candidates if v != version]
                raise ArtifactIntegrityError(
                    f"version {version} of '{name}' is damaged: {'; '.join(problems)}. Fix: re-run the stage that writes "
                    f"it; or load the newest intact committed version with `--params artifacts.fallback_to_last_complete=true`"
                    + (f"; or pin one with `--load-versions {name}:{older[0]}` (committed: {', '.join(older)})" if older else ""))
            log.warning("version %s of '%s' is damaged (%s): falling back to an older committed version, as "
                        "artifacts.fallback_to_last_complete asks", version, name, "; ".join(problems))
        raise ArtifactIntegrityError(f"every committed version of '{name}' is damaged ({', '.join(candidates)}). "
                                     "Fix: re-run the stage that writes it")
