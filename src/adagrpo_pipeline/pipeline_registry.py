"""Project pipelines, built from the plan of runs of the run's own configuration.

The plan (`adagrpo_pipeline.adagrpo.runs.RunPlan`) comes from the active Kedro context
(`adagrpo_pipeline.context`), so `--env` and `--params adagrpo.seeds=[...]` shape the
`compare` pipeline of that very run. Each stage is a modular pipeline (one box in `kedro viz`);
each RL run is the namespace `<variant>.seed_<seed>` (`adagrpo` for the main job's run) that
holds its training and the evaluation of its checkpoints.
"""

from __future__ import annotations

from kedro.pipeline import Pipeline

from adagrpo_pipeline.context import MAIN_JOB, active_run_plan, active_study_plan
from adagrpo_pipeline.pipelines import (
    adagrpo,
    compare,
    evaluate,
    ingest,
    reward,
    sft,
    study,
    tokenize,
    tune,
)


def register_pipelines() -> dict[str, Pipeline]:
    """Every stage; `train_adagrpo` chains them (ingest → tokenize → sft → reward → adagrpo →
    evaluate) and is `__default__` (plain `kedro run`); `tune` searches every variant's knobs on
    valid with the same budget; `compare` runs every variant × seed with the tuned settings; `study`
    is the controlled study on the simulator (`params:study`)."""
    plan = active_run_plan()
    stages = {
        "ingest": ingest.create_pipeline(),
        "tokenize": tokenize.create_pipeline(),
        "sft": sft.create_pipeline(),
        "reward": reward.create_pipeline(),
        "adagrpo": adagrpo.create_pipeline([plan.main]),
        "evaluate": evaluate.create_pipeline([plan.main]),
    }
    main = sum(stages.values(), Pipeline([]))
    return {**stages, "tune": tune.create_pipeline(plan.tune),
            "compare": compare.create_pipeline(plan.compare, plan.references), "study": study.create_pipeline(active_study_plan()),
            MAIN_JOB: main, "__default__": main}
