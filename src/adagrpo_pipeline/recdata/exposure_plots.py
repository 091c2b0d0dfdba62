"""Plots of the exposure-bias report: the Lorenz curve of exposure and clicks, and CTR by
popularity decile. Figures are built without pyplot, so no backend is ever switched."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from .exposure import lorenz_curve


def plot_lorenz(per_item: pd.DataFrame, metrics: dict[str, float]) -> Figure:
    fig = Figure(figsize=(5.5, 5))
    ax = fig.subplots()
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


def plot_ctr_by_decile(deciles: pd.DataFrame) -> Figure:
    fig = Figure(figsize=(6.5, 4))
    ax = fig.subplots()
    ax.bar(deciles["popularity_decile"].astype(str), deciles["ctr"], color="tab:blue")
    ax.set_xlabel("item popularity decile (1 = least interacted)")
    ax.set_ylabel("CTR (clicks / impressions)")
    ax.set_title("CTR by popularity decile")
    ax2 = ax.twinx()
    ax2.plot(deciles["popularity_decile"].astype(str), deciles["impressions"] / deciles["impressions"].sum(), "o-", color="tab:orange")
    ax2.set_ylabel("share of impressions", color="tab:orange")
    fig.tight_layout()
    return fig
