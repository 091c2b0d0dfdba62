"""Project pipelines.

Each folder under `pipelines/` is registered under its own name by `find_pipelines`. Kedro
1.7 loads pipelines lazily by folder name (`kedro run --pipeline=ingest` imports only
`pipelines/ingest`), so a folder's name is its registered name.
"""

from __future__ import annotations

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline

# The main job, in order: every stage built so far.
MAIN_JOB = ("ingest", "tokenize")


def register_pipelines() -> dict[str, Pipeline]:
    """Every stage; `__default__` (plain `kedro run`) is the main job: ingest → tokenize."""
    pipelines = find_pipelines(raise_errors=True)
    if all(name in pipelines for name in MAIN_JOB):
        pipelines["__default__"] = sum((pipelines[name] for name in MAIN_JOB), Pipeline([]))
    return pipelines
