"""The exposure-bias report (docs/architecture.md, "Data contracts"): Gini of exposure and
clicks, top-1%/10% shares, catalog coverage, Spearman(exposure, clicks), CTR by popularity
decile, and the warn/fail thresholds. Plots are in `exposure_plots`."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from .config import ExposureThreshold
from .errors import ExposureBiasError

log = logging.getLogger(__name__)


def gini(values: np.ndarray) -> float:
    """Gini coefficient of non-negative values (0 = equal, → 1 = concentrated on one)."""
    x = np.sort(np.asarray(values, dtype=np.float64))
    n = x.size
    if n == 0 or x.sum() == 0:
        return 0.0
    cum = np.cumsum(x)
    return float((n + 1 - 2 * np.sum(cum) / cum[-1]) / n)


def top_share(values: np.ndarray, fraction: float) -> float:
    """Share of the total held by the top `fraction` of entries (at least one entry)."""
    x = np.sort(np.asarray(values, dtype=np.float64))[::-1]
    if x.sum() == 0:
        return 0.0
    k = max(1, int(np.ceil(fraction * x.size)))
    return float(x[:k].sum() / x.sum())


def lorenz_curve(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(cumulative share of items, cumulative share of the total), items sorted ascending."""
    x = np.sort(np.asarray(values, dtype=np.float64))
    share_items = np.arange(x.size + 1) / max(x.size, 1)
    total = x.sum()
    share_total = np.concatenate([[0.0], np.cumsum(x) / total]) if total > 0 else share_items
    return share_items, share_total


def item_exposure_table(impressions: pd.DataFrame, interactions: pd.DataFrame, n_items: int) -> pd.DataFrame:
    """Per item: impressions, clicks in impressions, interactions, CTR and popularity decile
    (decile 1 = least interacted; ties broken by item id)."""
    exposure = np.bincount(impressions["item_id"], minlength=n_items)
    clicks = np.bincount(impressions["item_id"], weights=impressions["clicked"].astype(np.float64), minlength=n_items)
    popularity = np.bincount(interactions["item_id"], minlength=n_items)
    table = pd.DataFrame(
        {
            "item_id": np.arange(n_items, dtype=np.int64),
            "impressions": exposure.astype(np.int64),
            "clicks": clicks.astype(np.int64),
            "interactions": popularity.astype(np.int64),
        }
    )
    table["ctr"] = np.where(table["impressions"] > 0, table["clicks"] / table["impressions"].clip(lower=1), np.nan)
    n_bins = min(10, n_items)
    rank = table["interactions"].rank(method="first")
    table["popularity_decile"] = pd.qcut(rank, n_bins, labels=np.arange(1, n_bins + 1)).astype(np.int64)
    return table


def exposure_metrics(per_item: pd.DataFrame) -> dict[str, float]:
    """The exposure-bias figures of the report, from `item_exposure_table`."""
    exp = per_item["impressions"].to_numpy()
    clk = per_item["clicks"].to_numpy()
    if np.ptp(exp) == 0 or np.ptp(clk) == 0:
        rho = float("nan")
    else:
        rho = float(spearmanr(exp, clk).statistic)
    return {
        "gini_exposure": gini(exp),
        "gini_clicks": gini(clk),
        "top1pct_share_exposure": top_share(exp, 0.01),
        "top10pct_share_exposure": top_share(exp, 0.10),
        "catalog_coverage": float(np.mean(exp > 0)),
        "spearman_exposure_clicks": rho,
        "overall_ctr": float(clk.sum() / max(exp.sum(), 1)),
    }


def ctr_by_decile(per_item: pd.DataFrame) -> pd.DataFrame:
    """Impressions, clicks and CTR per popularity decile."""
    g = per_item.groupby("popularity_decile", sort=True)[["impressions", "clicks", "interactions"]].sum()
    g["ctr"] = g["clicks"] / g["impressions"].clip(lower=1)
    g["n_items"] = per_item.groupby("popularity_decile").size()
    return g.reset_index()


def _crossed(value: float, bound: float | None, direction: str) -> bool:
    return bound is not None and (value > bound if direction == "max" else value < bound)


def check_thresholds(metrics: dict[str, float], thresholds: dict[str, ExposureThreshold]) -> dict[str, str]:
    """Status of every metric against its warn/fail thresholds: 'ok', 'warn' or 'n/a' (NaN).

    Raises `ExposureBiasError` listing every metric past its fail bound. Direction 'max'
    means a metric is bad above its bound, 'min' below it.
    """
    unknown = sorted(set(thresholds) - set(metrics))
    if unknown:
        raise KeyError(f"exposure thresholds set for unknown metric(s) {unknown}; known: {sorted(metrics)}")
    status, failures = {}, []
    for name, value in metrics.items():
        th = thresholds.get(name)
        if value != value:
            status[name] = "n/a"
            continue
        status[name] = "ok"
        if th is None:
            continue
        word = "above" if th.direction == "max" else "below"
        if _crossed(value, th.fail, th.direction):
            failures.append(f"{name} = {value:.4f} is {word} its fail threshold {th.fail}")
        elif _crossed(value, th.warn, th.direction):
            status[name] = "warn"
            log.warning("exposure bias: %s = %.4f is %s its warn threshold %s", name, value, word, th.warn)
    if failures:
        raise ExposureBiasError("exposure-bias check failed: " + "; ".join(failures))
    return status
