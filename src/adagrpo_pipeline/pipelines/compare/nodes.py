"""Thin Kedro glue for `compare`."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from adagrpo_pipeline.tracking import metrics_payload

log = logging.getLogger(__name__)

SUMMARY = ["hr@10", "ndcg@10", "hr@10_filtered", "ndcg@10_filtered", "hallucination@10", "constrained_hr@10", "reward@10",
           "coverage@10"]


def compare_results(*tables: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Every run's test metrics, and mean ± std over seeds per variant."""
    runs = pd.concat(tables, ignore_index=True)
    runs[["variant", "seed"]] = runs["model"].str.extract(r"^(.+)\.seed_(\d+)$")
    runs["seed"] = runs["seed"].astype(int)
    metrics = [c for c in runs.columns if c not in ("model", "checkpoint_stage", "step", "variant", "seed")]
    grouped = runs.groupby("variant", sort=False)[metrics]
    summary = grouped.mean().add_suffix("_mean").join(grouped.std(ddof=1).add_suffix("_std")).join(
        runs.groupby("variant", sort=False).size().rename("seeds")).reset_index()
    for _, row in summary.iterrows():
        log.info("compare %s (%d seeds): %s", row["variant"], row["seeds"],
                 ", ".join(f"{m}={row[m + '_mean']:.4f}±{row[m + '_std']:.4f}" for m in SUMMARY if m + "_mean" in row))
    flat = {f"{r['variant']}.{m}_{stat}": r[f"{m}_{stat}"] for _, r in summary.iterrows() for m in SUMMARY
            if f"{m}_mean" in r for stat in ("mean", "std")}
    return runs, summary, metrics_payload(flat)
