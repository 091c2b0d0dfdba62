"""The project's Kedro context. It makes the plan of RL runs (variants × seeds) come from the
configuration of the run itself, `--env` and `--params` included:

- every `KedroSession` builds one context from that configuration; on creation it becomes the
  active one and Kedro's pipeline registry is reset, so `register_pipelines` builds the
  pipelines from this context's plan (`active_run_plan`);
- its parameters gain a derived block `runs` = {namespace: RunSpec}, from which each run's
  nodes read `params:runs.<namespace>` (variant, α, seed): visible in the catalog, in
  `kedro viz` and, as node inputs, in MLflow.

`runs` is derived from `adagrpo.mix_alphas`, `adagrpo.seeds` and `adagrpo.seed`: setting it
in the configuration or with `--params` is an error, so no value of the plan is silently
ignored.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Any

from attrs import define
from kedro.framework.context import KedroContext
from pydantic import ValidationError

from adagrpo_pipeline.adagrpo.config import AdaGrpoParams
from adagrpo_pipeline.adagrpo.runs import RunPlan

REGISTRY_MODULE = "adagrpo_pipeline.pipeline_registry"
MAIN_JOB = "train_adagrpo"  # the default pipeline: plain `kedro run`
RUNS = "runs"

_active: ProjectContext | None = None


class RunPlanError(ValueError):
    """The configuration cannot give a plan of runs."""


def plan_from_parameters(parameters: dict[str, Any]) -> RunPlan:
    """The plan of the raw parameters of a run (config files merged with `--params`)."""
    if RUNS in parameters:
        raise RunPlanError(f"the parameter '{RUNS}' is derived from adagrpo.mix_alphas, adagrpo.seeds and adagrpo.seed: "
                           f"set those instead (got {RUNS} = {parameters[RUNS]!r})")
    try:
        return RunPlan.from_params(AdaGrpoParams.model_validate(parameters.get("adagrpo", {})))
    except ValidationError as err:
        raise RunPlanError(f"params:adagrpo does not validate, so the plan of runs cannot be built:\n{err}") from err


@define(slots=False)
class ProjectContext(KedroContext):
    def __attrs_post_init__(self) -> None:
        global _active
        _active = self
        from kedro.framework.project import pipelines

        pipelines.configure(REGISTRY_MODULE)  # rebuilt from this context's plan on next access

    @cached_property
    def run_plan(self) -> RunPlan:
        return plan_from_parameters(self.config_loader["parameters"])

    @property
    def params(self) -> dict[str, Any]:
        return {**super().params, RUNS: self.run_plan.parameters()}


def active_run_plan() -> RunPlan:
    """The plan of the active context. Without one (e.g. `kedro registry list`, which runs
    nothing), the plan of the project's configuration in the default environment."""
    if _active is not None:
        return _active.run_plan
    from kedro.framework.project import settings

    conf = Path.cwd() / settings.CONF_SOURCE
    loader = settings.CONFIG_LOADER_CLASS(conf_source=str(conf), env=os.environ.get("KEDRO_ENV"),
                                          **settings.CONFIG_LOADER_ARGS)
    return plan_from_parameters(loader["parameters"])
