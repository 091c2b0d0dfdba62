"""`summary.json`: the headline figures of the `evaluate` / `compare` report in a stable,
documented form (README, "summary.json"), from the report's tables. Kedro-free."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .tables import CONTROLS, HEADLINE, HEADLINE_METRIC, Tables, difference, minimum_detectable

SCHEMA = "adagrpo-pipeline/summary/1"


def _stats_of(row: pd.Series, spread: bool) -> dict[str, dict[str, float]]:
    """Mean and std of every headline metric the row has (std 0 for a reference row)."""
    out = {}
    for m in HEADLINE:
        mean = row.get(f"{m}_mean" if spread else m, np.nan)
        if pd.notna(mean):
            out[m] = {"mean": float(mean), "std": float(row[f"{m}_std"]) if spread else 0.0}
    return out


def _deltas(paired: pd.DataFrame, model: str, checkpoint: str, against: str) -> dict[str, Any]:
    """Per metric, `model` at `checkpoint` − `against` with its CI."""
    rows = paired[(paired["model"] == model) & (paired["checkpoint"] == checkpoint) & (paired["against"] == against)]
    return {r["metric"]: difference(r).to_json() for _, r in rows.iterrows()}


def summary_document(title: str, t: Tables, reward: dict[str, Any], mlflow_run: str) -> dict[str, Any]:
    """Per model its metrics (mean ± std over seeds) and its differences with SFT and
    `sft_continue` with CIs; the headline metric and the test set's minimum detectable effect;
    the reward's informativeness figures."""
    models: dict[str, Any] = {}
    for _, r in t.refs.iterrows():
        entry: dict[str, Any] = {"kind": "reference", "seeds": 1, "metrics": _stats_of(r, spread=False)}
        if r["model"] != "sft":
            entry["delta_vs_sft"] = _deltas(t.paired, r["model"], "", "sft")
        models[r["model"]] = entry
    for _, r in t.summary.iterrows():
        variant = models.setdefault(r["variant"], {"kind": "variant", "seeds": int(r["seeds"]), "checkpoints": {}})
        variant["checkpoints"][r["checkpoint"]] = {
            "metrics": _stats_of(r, spread=True),
            **{f"delta_vs_{c}": _deltas(t.paired, r["variant"], r["checkpoint"], c) for c in CONTROLS if c != r["variant"]}}
    return {"schema": SCHEMA, "title": title, "mlflow_run": mlflow_run,
            "headline": {"metric": HEADLINE_METRIC, "test_users": len(t.sft_strata),
                         "minimum_detectable_effect": minimum_detectable(t.paired)},
            "models": models, "reward": reward}
