"""`train_adagrpo` (and `__default__`): ingest → tokenize → sft → reward → adagrpo → evaluate.

It has its own folder so that Kedro's lazy `find_pipelines` can load it by name."""

from __future__ import annotations

from kedro.pipeline import Pipeline

from adagrpo_pipeline.pipelines import adagrpo, evaluate, ingest, reward, sft, tokenize

STAGES = (ingest, tokenize, sft, reward, adagrpo, evaluate)


def create_pipeline(**kwargs) -> Pipeline:
    return sum((stage.create_pipeline() for stage in STAGES), Pipeline([]))
