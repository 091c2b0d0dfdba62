"""Project settings (https://docs.kedro.org/en/stable/configure/configuration_basics/).

Parameters: Kedro validates each `params:<stage>` block into the Pydantic model that its
nodes annotate (e.g. `IngestParams`) before any node runs. Parameter files merge softly, so
an environment (`conf/gpu`, `conf/local`) lists only the keys it changes. The project context
builds the plan of RL runs from the run's own configuration (`adagrpo_pipeline.context`).
kedro-mlflow registers its own hooks through its plugin entry point.

Under `accelerate launch -m kedro run` (README, "Several processes") every process runs the
pipeline; only global rank 0 writes outputs and tracks the run in MLflow: the other ranks keep
their outputs in memory (`RankZeroWritesHook`) and run without the hooks of kedro-mlflow and kedro-viz.
"""

import warnings

from adagrpo_pipeline.context import ProjectContext
from adagrpo_pipeline.hooks import AtomicPublicationHook, MlflowTypedParamsHook, RankZeroWritesHook
from adagrpo_pipeline.training.distributed import launched_rank

RANK = launched_rank()

HOOKS = (MlflowTypedParamsHook(), AtomicPublicationHook(), RankZeroWritesHook(RANK))

if RANK > 0:
    DISABLE_HOOKS_FOR_PLUGINS = ("kedro_mlflow", "kedro-viz")  # distribution names

CONTEXT_CLASS = ProjectContext

CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    "merge_strategy": {"parameters": "soft"},
}

# Deprecation notices that third-party plugins raise on every run, not actionable here.
warnings.filterwarnings("ignore", message=r".*register_new_resolver\(\) is deprecated", category=UserWarning)
warnings.filterwarnings("ignore", message=r".*Add type hints to the `predict` method", category=UserWarning)
