"""The documented exposure policy and the exposure-bias report (DESIGN section 3).

Exposure policy, for sources without impression logs: every interaction becomes one request
whose slate holds `slate_size` items: the interacted item plus `slate_size - 1` distinct other
items drawn without replacement with probability proportional to popularity ** gamma
(popularity = interaction count of the item). Positions are a seeded random permutation, so
the interacted item is equally likely at every position.

Sampling: for each request, items are drawn *with* replacement ∝ weight (a binary search in
the cumulative weights), and the first `slate_size - 1` distinct draws other than the
interacted item are kept. Skipping repeats is exactly sequential sampling without
replacement, so this is the same distribution as the Gumbel-top-k trick, at O(draws · log n)
per request instead of O(n_items) (`benchmarks/exposure_policy.py` measures both).
"""

from __future__ import annotations

import logging

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from .config import ExposureThreshold  # noqa: E402
from .errors import ExposureBiasError  # noqa: E402
from .schema import IMPRESSIONS, conform  # noqa: E402

log = logging.getLogger(__name__)


def expected_draws(weights: np.ndarray, k: int) -> float:
    """Expected draws with replacement to see k + 1 distinct items when the heaviest items come
    first (the likely order): sum over j = 0..k of 1 / (1 - mass of the j heaviest items)."""
    top = np.sort(weights)[::-1][: k + 1] / weights.sum()
    head = np.concatenate([[0.0], np.cumsum(top)[:-1]])
    return float(np.sum(1.0 / np.clip(1.0 - head, 1e-12, None)))


def sample_distinct(cum_weights: np.ndarray, exclude: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """For each row, `k` distinct items other than `exclude[row]`, sampled sequentially
    without replacement with probability ∝ weight (`cum_weights` = cumsum of the weights).

    Draws with replacement and keeps first occurrences, in draw order, which is exactly
    sequential sampling without replacement; rows that saw fewer than `k` distinct admissible
    items are drawn again with twice as many draws. When the weights are so concentrated that
    the draws needed approach the catalog size, rows use the Gumbel-top-k trick instead (the
    same distribution, O(n_items) per row).
    """
    n_rows, n_items = len(exclude), len(cum_weights)
    out = np.empty((n_rows, k), dtype=np.int64)
    if k == 0 or n_rows == 0:
        return out
    weights = np.diff(cum_weights, prepend=0.0)
    budget = n_items / 8  # past this many draws per row, Gumbel-top-k is cheaper
    m = int(np.ceil(2 * expected_draws(weights, k))) + 8
    todo = np.arange(n_rows)
    while todo.size and m <= budget:
        picks = np.searchsorted(cum_weights, rng.random((todo.size, m)) * cum_weights[-1], side="right")
        order = np.argsort(picks, axis=1, kind="stable")
        ordered = np.take_along_axis(picks, order, axis=1)
        repeat_sorted = np.zeros_like(ordered, dtype=bool)
        repeat_sorted[:, 1:] = ordered[:, 1:] == ordered[:, :-1]
        repeat = np.empty_like(repeat_sorted)
        np.put_along_axis(repeat, order, repeat_sorted, axis=1)
        keep = ~repeat & (picks != exclude[todo, None])
        rank = np.cumsum(keep, axis=1)
        done = rank[:, -1] >= k
        chosen = keep[done] & (rank[done] <= k)
        out[todo[done]] = picks[done][chosen].reshape(-1, k)
        todo, m = todo[~done], 2 * m
    if todo.size:
        out[todo] = gumbel_top_k(weights, exclude[todo], k, rng)
    return out


def gumbel_top_k(weights: np.ndarray, exclude: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """`k` distinct items per row other than `exclude[row]` (if >= 0), without replacement
    ∝ weight: the top k of log(weight) + Gumbel noise. Chunked to ~128 MB of keys."""
    with np.errstate(divide="ignore"):
        log_w = np.log(weights)
    out = np.empty((len(exclude), k), dtype=np.int64)
    chunk = max(1, 2**24 // len(weights))
    for lo in range(0, len(exclude), chunk):
        hi = min(lo + chunk, len(exclude))
        keys = log_w[None, :] + rng.gumbel(size=(hi - lo, len(weights)))
        rows, excluded = np.arange(hi - lo), exclude[lo:hi]
        keys[rows[excluded >= 0], excluded[excluded >= 0]] = -np.inf
        out[lo:hi] = np.argpartition(-keys, k - 1, axis=1)[:, :k]
    return out


def derive_impressions(
    interactions: pd.DataFrame,
    n_items: int,
    slate_size: int,
    popularity_gamma: float,
    seed: int,
    chunk_size: int = 65536,
) -> pd.DataFrame:
    """Impressions for logs without them, by the exposure policy above.

    `interactions` must use contiguous item ids in [0, n_items). One request per row, in row
    order; request_id = row number.
    """
    items = interactions["item_id"].to_numpy(np.int64)
    popularity = np.bincount(items, minlength=n_items).astype(np.float64)
    weights = np.ones(n_items) if popularity_gamma == 0.0 else popularity**popularity_gamma
    eligible = int(np.count_nonzero(weights))
    if slate_size < 1 or slate_size > eligible:
        raise ValueError(
            f"slate_size must be in [1, {eligible}] (items that can be shown: popularity ** gamma > 0), got {slate_size}"
        )
    rng = np.random.default_rng(seed)
    cum_weights = np.cumsum(weights)
    n_req = len(items)
    slates = np.empty((n_req, slate_size), dtype=np.int64)
    slates[:, 0] = items
    for lo in tqdm(range(0, n_req, chunk_size), desc="exposure policy", unit="chunk", disable=None if n_req > chunk_size else True):
        hi = min(lo + chunk_size, n_req)
        slates[lo:hi, 1:] = sample_distinct(cum_weights, items[lo:hi], slate_size - 1, rng)
    perm = np.argsort(rng.random((n_req, slate_size)), axis=1)  # random position of each slot
    positions = np.empty_like(perm)
    np.put_along_axis(positions, perm, np.arange(slate_size)[None, :].repeat(n_req, 0), axis=1)
    clicked = np.zeros((n_req, slate_size), dtype=bool)
    clicked[:, 0] = True
    out = pd.DataFrame(
        {
            "request_id": np.repeat(np.arange(n_req, dtype=np.int64), slate_size),
            "user_id": np.repeat(interactions["user_id"].to_numpy(np.int64), slate_size),
            "timestamp": np.repeat(interactions["timestamp"].to_numpy(np.int64), slate_size),
            "item_id": slates.ravel(),
            "position": positions.ravel(),
            "clicked": clicked.ravel(),
        }
    )
    out = out.sort_values(["request_id", "position"], kind="stable")
    return conform(out, IMPRESSIONS)


# --------------------------------------------------------------------------- metrics
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
    """The exposure-bias figures of DESIGN section 3, from `item_exposure_table`."""
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


# --------------------------------------------------------------------------- plots
def plot_lorenz(per_item: pd.DataFrame, metrics: dict[str, float]) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for col, label, g in (
        ("impressions", "exposure", metrics["gini_exposure"]),
        ("clicks", "clicks", metrics["gini_clicks"]),
    ):
        xs, ys = lorenz_curve(per_item[col].to_numpy())
        ax.plot(xs, ys, label=f"{label} (Gini {g:.3f})")
    ax.plot([0, 1], [0, 1], "k--", lw=0.8, label="equal exposure")
    ax.set_xlabel("cumulative share of items (least exposed first)")
    ax.set_ylabel("cumulative share")
    ax.set_title("Lorenz curve of item exposure")
    ax.legend(loc="upper left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_ctr_by_decile(deciles: pd.DataFrame) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(6.5, 4))
    ax.bar(deciles["popularity_decile"].astype(str), deciles["ctr"], color="tab:blue")
    ax.set_xlabel("item popularity decile (1 = least interacted)")
    ax.set_ylabel("CTR (clicks / impressions)")
    ax.set_title("CTR by popularity decile")
    ax2 = ax.twinx()
    ax2.plot(deciles["popularity_decile"].astype(str), deciles["impressions"] / deciles["impressions"].sum(), "o-", color="tab:orange")
    ax2.set_ylabel("share of impressions", color="tab:orange")
    fig.tight_layout()
    return fig
