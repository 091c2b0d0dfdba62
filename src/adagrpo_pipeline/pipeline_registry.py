"""Project pipelines.

Each folder under `pipelines/` is registered under its own name by `find_pipelines`. Kedro
1.7 loads pipelines lazily by folder name (`kedro run --pipeline=ingest` imports only
`pipelines/ingest`), so a folder's name is its registered name; the chained main job lives in
its own folder, `pipelines/train_adagrpo`.
"""

from __future__ import annotations

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline


def register_pipelines() -> dict[str, Pipeline]:
    """Every stage; `__default__` (plain `kedro run`) is `train_adagrpo`."""
    pipelines = find_pipelines(raise_errors=True)
    if "train_adagrpo" in pipelines:
        pipelines["__default__"] = pipelines["train_adagrpo"]
    return pipelines
