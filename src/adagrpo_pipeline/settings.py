"""Project settings (https://docs.kedro.org/en/stable/configure/configuration_basics/)."""

from adagrpo_pipeline.hooks import TypedParamsHook

# kedro-mlflow registers its own hooks through its plugin entry point.
HOOKS = (TypedParamsHook(),)

CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
}

# Deprecation notices that third-party plugins raise on every run, not actionable here.
import warnings  # noqa: E402

warnings.filterwarnings("ignore", message=r".*register_new_resolver\(\) is deprecated", category=UserWarning)
warnings.filterwarnings("ignore", message=r".*Add type hints to the `predict` method", category=UserWarning)
