"""`compare`: every run of the plan's `compare` list (each variant of `adagrpo.mix_alphas` for
every seed of `adagrpo.seeds`), with the same data, steps and parameters, each in its own
namespace `<variant>.seed_<seed>`: its training, the evaluation of every checkpoint, then the
references and one report with mean ± std over seeds. It starts from the saved SFT policy and
ranker (run `train_adagrpo`, or `sft` and `reward`, first)."""

from __future__ import annotations

from collections.abc import Sequence

from kedro.pipeline import Pipeline

from adagrpo_pipeline.adagrpo.runs import RunSpec
from adagrpo_pipeline.pipelines import adagrpo, evaluate


def create_pipeline(runs: Sequence[RunSpec]) -> Pipeline:
    return (adagrpo.create_pipeline(runs) + evaluate.create_pipeline(runs)).tag("compare")
