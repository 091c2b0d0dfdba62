"""The variant and seed lists that shape the `compare` pipeline. Kedro builds pipelines before
it reads `--params`, so they come from the configuration files (`adagrpo.mix_alphas`,
`adagrpo.seeds` in conf/base or conf/<KEDRO_ENV>); the rest of `params:adagrpo` is read at
run time as usual."""

from __future__ import annotations

import os
from pathlib import Path

from adagrpo_pipeline.adagrpo.config import AdaGrpoParams, Variant, variants


def compare_params(project_path: Path | None = None) -> AdaGrpoParams:
    from kedro.framework.project import settings

    conf = (project_path or Path.cwd()) / settings.CONF_SOURCE
    if not conf.is_dir():
        return AdaGrpoParams()
    loader = settings.CONFIG_LOADER_CLASS(conf_source=str(conf), env=os.environ.get("KEDRO_ENV"), **settings.CONFIG_LOADER_ARGS)
    return AdaGrpoParams(**loader["parameters"].get("adagrpo", {}))


def runs(params: AdaGrpoParams) -> list[tuple[Variant, int, str]]:
    """(variant, seed, namespace) of every compared run; namespace = <variant>.seed_<seed>."""
    return [(v, s, f"{v.name}.seed_{s}") for s in params.seeds for v in variants(params.mix_alphas)]
