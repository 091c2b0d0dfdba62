"""MLflow helpers shared by the nodes and hooks (kept out of the Kedro-free library)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import mlflow

_UNSAFE = re.compile(r"[^0-9A-Za-z_\-. :/]")


def metric_name(name: str) -> str:
    """An MLflow-valid metric name: '@' becomes '_at_' (hr@10 -> hr_at_10), other characters
    MLflow refuses become '_'."""
    return _UNSAFE.sub("_", name.replace("@", "_at_"))


def metrics_payload(metrics: dict[str, float], step: int = 0, prefix: str = "") -> dict[str, dict[str, Any]]:
    """`MlflowMetricsHistoryDataset` input from a flat dict; NaN values are left out."""
    return {metric_name(prefix + k): {"value": float(v), "step": step} for k, v in metrics.items() if v == v}


def flatten(prefix: str, value: Any) -> dict[str, str]:
    """{"a": {"b": 1}} under prefix "p" -> {"p.a.b": "1"}; empty containers stay as one value."""
    if isinstance(value, dict) and value:
        out: dict[str, str] = {}
        for key, sub in value.items():
            out.update(flatten(f"{prefix}.{key}", sub))
        return out
    return {prefix: str(value)}


def mlflow_logger(prefix: str) -> Callable[[dict[str, float], int], None]:
    """A training loop's `log_fn`: each value as the MLflow metric `<prefix>.<name>` at `step`
    (NaN left out), when a run is active (kedro-mlflow starts one per `kedro run`)."""

    def log(metrics: dict[str, float], step: int) -> None:
        if mlflow.active_run() is not None:
            mlflow.log_metrics({metric_name(f"{prefix}.{k}"): v for k, v in metrics.items() if v == v}, step=step)

    return log
