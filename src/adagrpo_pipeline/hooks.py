"""Project hooks."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import mlflow
from kedro.framework.hooks import hook_impl
from kedro.io import MemoryDataset
from kedro.pipeline import Pipeline
from pydantic import BaseModel

from .context import MAIN_JOB
from .kedro_versions import versioned
from .publication import Publication, StageTracker
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


class AtomicPublicationHook:
    """Make each stage's versioned outputs visible together or not at all: Kedro's hook specs applied to
    the rules of `publication` (`StageTracker`, `Publication`) through `kedro_versions`.

    A stage is a namespace of the pipeline being run (`sft`, `adagrpo`, a study setting, ...), or a node
    without one. When the last node of a stage has run and every one of its outputs is saved, the stage's
    manifest is written. Loads take the run's own saved version, else the newest committed one, checked
    against its manifest; versions pinned with `--load-versions` are checked too but never replaced.
    Needs the sequential or thread runner (the parallel runner saves in other processes).
    """

    def __init__(self) -> None:
        self._catalog, self._project, self._stages = None, Path.cwd(), StageTracker({})

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        self._project = Path(context.project_path)

    @hook_impl
    def after_catalog_created(self, catalog: Any, parameters: dict[str, Any], save_version: str) -> None:
        self._catalog = catalog  # `parameters` is the catalog feed: {"parameters": all, "params:<key>": value, ...}
        self._publication = Publication.of(parameters.get("params:artifacts") or {}, self._project, save_version)
        self._publication.open_latest({name: versioned(catalog.get(name)) for name in catalog.keys()})

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Pipeline) -> None:
        self._stages = StageTracker({n.name: (n.namespace or n.name, set(n.outputs)) for n in pipeline.nodes})
        self._info = {"pipelines": run_params.get("pipeline_names") or ["__default__"],
                      "run_id": run_params.get("run_id") or run_params.get("session_id")}

    @hook_impl
    def after_node_run(self, node: Any) -> None:
        self._commit(self._stages.node_ran(node.name))

    @hook_impl
    def after_dataset_saved(self, dataset_name: str, node: Any) -> None:
        self._publication.saved.add(dataset_name)
        self._commit(self._stages.output_saved(node.name, dataset_name))

    @hook_impl
    def on_pipeline_error(self) -> None:
        self._stages.run_failed()

    @hook_impl
    def before_dataset_loaded(self, dataset_name: str) -> None:
        if self._catalog is not None and (versions := versioned(self._catalog.get(dataset_name))) is not None:
            self._publication.before_load(dataset_name, versions)

    def _commit(self, stage: str | None) -> None:
        if stage is not None:
            outputs = {name: versioned(self._catalog.get(name)) for name in self._stages.outputs(stage)}
            self._publication.commit(stage, outputs, **self._info)
