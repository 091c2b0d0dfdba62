"""Thin Kedro glue for `ingest`: each node calls the Kedro-free `recdata` library.

Nothing is persisted until `publish_ingest_tables`, whose inputs include every validation
summary and the exposure-bias check: a failed suite or a 'fail' threshold stops the run before
any derived version is written.
"""

from __future__ import annotations

import logging
from collections.abc import Sized
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from adagrpo_pipeline.recdata import exposure as ex
from adagrpo_pipeline.recdata import exposure_plots
from adagrpo_pipeline.recdata import validation as v
from adagrpo_pipeline.recdata.config import IngestParams
from adagrpo_pipeline.recdata.events import id_format_hints
from adagrpo_pipeline.recdata.prepare import prepare
from adagrpo_pipeline.recdata.schema import RAW_IMPRESSIONS, RawTables
from adagrpo_pipeline.recdata.sources import load_source
from adagrpo_pipeline.tracking import metrics_payload

log = logging.getLogger(__name__)

DERIVED = ("interactions", "impressions", "items", "users", "user_map", "item_map", "ground_truth_relevance",
           "train_sequences", "valid_sequences", "test_sequences")


def _bounds(p: IngestParams) -> tuple[int, int]:
    return v.timestamp_bounds(p.validation.min_timestamp, p.validation.max_timestamp)


def load_raw_source(
    params: IngestParams,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame, dict[str, str]]:
    """Read the selected source. A missing impression log, ground truth or user table is an
    empty table. The last output names the file each table was read from (empty for sources
    that are not files), for the validation errors."""
    raw = load_source(params)
    log.info("source %s: %d raw interactions, %d raw items, %s", raw.source, len(raw.interactions), len(raw.items),
             f"{len(raw.impressions)} raw impressions" if raw.impressions is not None else "no impression log")
    impressions = raw.impressions if raw.impressions is not None else pd.DataFrame(columns=list(RAW_IMPRESSIONS))
    relevance = raw.relevance if raw.relevance is not None else pd.DataFrame(columns=["user_id", "item_id", "relevance"])
    users = raw.users if raw.users is not None else pd.DataFrame(columns=["user_id"])
    return raw.interactions, raw.items, impressions, relevance, users, dict(raw.files or {})


def validate_raw_tables(
    raw_items: pd.DataFrame, raw_interactions: pd.DataFrame, raw_impressions: pd.DataFrame, files: dict[str, str],
    params: IngestParams,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Every raw table's suite in one go: a failure names every failing table, its file, and the
    likely cause where one is recognised (ids written differently in two files)."""
    catalog = None if params.drop_unknown_items else raw_items["item_id"]
    suites = [v.raw_items_suite(raw_items), v.raw_interactions_suite(raw_interactions, catalog, _bounds(params))]
    if raw_impressions.empty:
        log.info("no impression log: impressions will be derived by the exposure policy")
    else:
        suites.append(v.raw_impressions_suite(raw_impressions, catalog, _bounds(params)))
    for suite, table in zip(suites, ("items", "interactions", "impressions"), strict=False):
        suite.source = files.get(table)
        if table != "items" and "item_id" in suite.df and "item_id" in raw_items:
            hint = id_format_hints(suite.df["item_id"], raw_items["item_id"])
            suite.notes += [f"likely cause: {hint}"] if hint else []
    v.validate_all(suites, params.validation.max_examples)
    return raw_items, raw_interactions, raw_impressions


def prepare_tables(
    raw_interactions: pd.DataFrame,
    raw_items: pd.DataFrame,
    raw_impressions: pd.DataFrame,
    raw_relevance: pd.DataFrame,
    raw_users: pd.DataFrame,
    params: IngestParams,
) -> dict[str, pd.DataFrame]:
    raw = RawTables(
        source=params.source,
        interactions=raw_interactions,
        items=raw_items,
        impressions=None if raw_impressions.empty else raw_impressions,
        relevance=None if raw_relevance.empty else raw_relevance,
        users=None if raw_users.empty else raw_users,
    )
    d = prepare(raw, params)
    return {
        "interactions": d.interactions,
        "impressions": d.impressions,
        "items": d.items,
        "users": d.users,
        "user_map": d.user_map,
        "item_map": d.item_map,
        "ground_truth_relevance": d.relevance,
        "train_sequences": d.train,
        "valid_sequences": d.valid,
        "test_sequences": d.test,
    }


def validate_derived_tables(
    interactions: pd.DataFrame,
    impressions: pd.DataFrame,
    items: pd.DataFrame,
    train: pd.DataFrame,
    valid: pd.DataFrame,
    test: pd.DataFrame,
    relevance: pd.DataFrame,
    users: pd.DataFrame,
    params: IngestParams,
) -> list[dict[str, Any]]:
    """Every derived table's suite; returns one summary per suite."""
    n_users, n_items, ts = len(interactions["user_id"].unique()), len(items), _bounds(params)
    suites = [
        v.items_suite(items, n_items),
        v.interactions_suite(interactions, n_users, n_items, ts),
        v.impressions_suite(impressions, n_users, n_items, ts),
        v.users_suite(users, n_users),
    ]
    for name, df in (("train_sequences", train), ("valid_sequences", valid), ("test_sequences", test)):
        suites += v.sequences_suites(name, df, n_users, n_items, params.max_history)
    if not relevance.empty:
        suites.append(v.relevance_suite(relevance, n_users, n_items))
    return v.validate_all(suites, params.validation.max_examples)


def measure_exposure(
    impressions: pd.DataFrame, interactions: pd.DataFrame, items: pd.DataFrame, params: IngestParams
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-item exposure table and the metrics table (metric, value, status); a 'fail'
    threshold stops the run here, before anything is published."""
    per_item = ex.item_exposure_table(impressions, interactions, len(items))
    metrics = ex.exposure_metrics(per_item)
    status = ex.check_thresholds(metrics, params.exposure_thresholds)
    table = pd.DataFrame({"metric": list(metrics), "value": list(metrics.values()), "status": [status[m] for m in metrics]})
    return per_item, table


def publish_ingest_tables(validation: list[dict[str, Any]], **tables: pd.DataFrame) -> dict[str, Any]:
    """The gate: runs only when every suite and the exposure check passed (its inputs come
    from those nodes), and hands the tables to the catalog to persist as new versions."""
    return {**tables, "ingest_validation_report": {"suites": validation}}


def report_exposure(
    per_item: pd.DataFrame,
    metrics_table: pd.DataFrame,
    interactions: pd.DataFrame,
    items: pd.DataFrame,
    train: Sized,
    impressions: pd.DataFrame,
    params: IngestParams,
) -> tuple[pd.DataFrame, Figure, Figure, dict[str, Any]]:
    """CTR-by-decile table, Lorenz and CTR plots, and the run's MLflow metrics."""
    metrics = dict(zip(metrics_table["metric"], metrics_table["value"], strict=True))
    deciles = ex.ctr_by_decile(per_item)
    summary = {
        "n_users": int(interactions["user_id"].nunique()),
        "n_items": int(len(items)),
        "n_interactions": int(len(interactions)),
        "n_impressions": int(len(impressions)),
        "n_train_samples": int(len(train)),
        **metrics,
    }
    log.info(
        "ingest summary (%s): users=%d items=%d interactions=%d train_samples=%d impressions=%d "
        "exposure_gini=%.4f top10pct_share=%.4f top1pct_share=%.4f coverage=%.4f",
        params.source, summary["n_users"], summary["n_items"], summary["n_interactions"], summary["n_train_samples"],
        summary["n_impressions"], metrics["gini_exposure"], metrics["top10pct_share_exposure"],
        metrics["top1pct_share_exposure"], metrics["catalog_coverage"],
    )
    return deciles, exposure_plots.plot_lorenz(per_item, metrics), exposure_plots.plot_ctr_by_decile(deciles), metrics_payload(summary)
