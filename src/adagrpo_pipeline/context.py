"""The project's Kedro context. It makes the plan of RL runs (variants × seeds) come from the
configuration of the run itself, `--env` and `--params` included:

- every `KedroSession` builds one context from that configuration; on creation it becomes the
  active one and Kedro's pipeline registry is reset, so `register_pipelines` builds the
  pipelines from this context's plan (`active_run_plan`);
- its parameters gain a derived block `runs` = {namespace: RunSpec}, from which each run's
  nodes read `params:runs.<namespace>` (variant, α, seed): visible in the catalog, in
  `kedro viz` and, as node inputs, in MLflow.

`runs` is derived from `adagrpo.mix_alphas`, `adagrpo.seeds` and `adagrpo.seed` (and the
controlled study's runs from `study`): setting it in the configuration or with `--params` is an
error, so no value of the plan is silently ignored. Likewise `study_settings`, the study's
stage parameters per setting (`adagrpo_pipeline.study.config`).
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
from adagrpo_pipeline.study.config import StudyParams, StudyPlan

REGISTRY_MODULE = "adagrpo_pipeline.pipeline_registry"
MAIN_JOB = "train_adagrpo"  # the default pipeline: plain `kedro run`
RUNS = "runs"
STUDY_SETTINGS = "study_settings"

_active: ProjectContext | None = None


class RunPlanError(ValueError):
    """The configuration cannot give a plan of runs."""


def plan_from_parameters(parameters: dict[str, Any]) -> RunPlan:
    """The plan of the raw parameters of a run (config files merged with `--params`)."""
    if RUNS in parameters:
        raise RunPlanError(f"the parameter '{RUNS}' is derived from adagrpo.mix_alphas, adagrpo.seeds and adagrpo.seed: "
                           f"set those instead (got {RUNS} = {parameters[RUNS]!r})")
    if STUDY_SETTINGS in parameters:
        raise RunPlanError(f"the parameter '{STUDY_SETTINGS}' is derived from `study` and the stage parameters: "
                           "set those instead")
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

    @cached_property
    def study_plan(self) -> StudyPlan | None:
        return study_from_parameters(self.config_loader["parameters"])

    @cached_property
    def study_settings(self) -> dict[str, Any] | None:
        """The derived `study_settings` block (None without a study), built once per context."""
        if self.study_plan is None:
            return None
        try:
            return self.study_plan.stage_settings(self.config_loader["parameters"])
        except ValueError as err:
            raise RunPlanError(str(err)) from err

    @property
    def params(self) -> dict[str, Any]:
        params = super().params
        study = self.study_plan
        if study is None:
            return {**params, RUNS: self.run_plan.parameters()}
        return {**params, RUNS: {**self.run_plan.parameters(), **study.run_parameters()},
                STUDY_SETTINGS: self.study_settings}


def study_from_parameters(parameters: dict[str, Any]) -> StudyPlan | None:
    """The controlled study's plan, None where the configuration has no `study` block."""
    if "study" not in parameters:
        return None
    try:
        return StudyPlan.from_params(StudyParams.model_validate(parameters["study"]))
    except ValidationError as err:
        raise RunPlanError(f"params:study does not validate, so the study's plan cannot be built:\n{err}") from err


def _loaded_parameters() -> dict[str, Any]:
    from kedro.framework.project import settings

    conf = Path.cwd() / settings.CONF_SOURCE
    loader = settings.CONFIG_LOADER_CLASS(conf_source=str(conf), env=os.environ.get("KEDRO_ENV"),
                                          **settings.CONFIG_LOADER_ARGS)
    return loader["parameters"]


def active_study_plan() -> StudyPlan | None:
    """The study plan of the active context (else of the project's configuration)."""
    if _active is not None:
        return _active.study_plan
    return study_from_parameters(_loaded_parameters())


def active_run_plan() -> RunPlan:
    """The plan of the active context. Without one (e.g. `kedro registry list`, which runs
    nothing), the plan of the project's configuration in the default environment."""
    if _active is not None:
        return _active.run_plan
    return plan_from_parameters(_loaded_parameters())
