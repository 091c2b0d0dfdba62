"""Project hooks."""

from __future__ import annotations

from typing import Any

import mlflow
from kedro.framework.hooks import hook_impl
from kedro.pipeline import Pipeline
from pydantic import BaseModel

from .context import MAIN_JOB
from .tracking import flatten


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
