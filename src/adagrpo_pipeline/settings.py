"""Project settings (https://docs.kedro.org/en/stable/configure/configuration_basics/).

Parameters: Kedro validates each `params:<stage>` block into the Pydantic model that its
nodes annotate (e.g. `IngestParams`) before any node runs. Parameter files merge softly, so
an environment (`conf/gpu`, `conf/local`) lists only the keys it changes. The project context
builds the plan of RL runs from the run's own configuration (`adagrpo_pipeline.context`).
kedro-mlflow registers its own hooks through its plugin entry point.
"""

import warnings

from adagrpo_pipeline.context import ProjectContext
from adagrpo_pipeline.hooks import AtomicPublicationHook, MlflowTypedParamsHook

HOOKS = (MlflowTypedParamsHook(), AtomicPublicationHook())

CONTEXT_CLASS = ProjectContext

CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    "merge_strategy": {"parameters": "soft"},
}

# Deprecation notices that third-party plugins raise on every run, not actionable here.
warnings.filterwarnings("ignore", message=r".*register_new_resolver\(\) is deprecated", category=UserWarning)
warnings.filterwarnings("ignore", message=r".*Add type hints to the `predict` method", category=UserWarning)
