"""The figures of the `evaluate` / `compare` report: training dynamics, the HR@10 /
hallucination frontier and the strata. Kedro-free: the report's tables in, matplotlib figures
out (drawn without pyplot, so nothing is kept open)."""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from adagrpo_pipeline.adagrpo.runs import RunSpec

from .tables import STRATA


def variant_colors(variants: list[str]) -> dict[str, tuple]:
    """One tab10 colour per name, in the order given (the same list gives the same colours)."""
    cmap = matplotlib.colormaps["tab10"]
    return {v: cmap(i % 10) for i, v in enumerate(variants)}


def plot_dynamics(histories: dict[RunSpec, pd.DataFrame]) -> Figure:
    """Valid HR@10, hallucination@10 and mean top-10 reward vs step, one line per variant
    (mean over seeds, band = ± std)."""
    panels = [("valid_hr@10", "HR@10 (valid)"), ("valid_hallucination@10", "hallucination@10 (valid)"),
              ("valid_reward@10", "mean reward of the top-10 (valid)")]
    variants = list(dict.fromkeys(r.variant.name for r in histories))
    colors = variant_colors(variants)
    fig = Figure(figsize=(15, 4.2))
    axes = fig.subplots(1, 3)
    for variant in variants:
        frames = [h.dropna(subset=["valid_hr@10"]).set_index("step") for r, h in histories.items()
                  if r.variant.name == variant]
        for ax, (col, title) in zip(axes, panels, strict=True):
            table = pd.concat([f[col] for f in frames], axis=1)
            mean, std = table.mean(axis=1), table.std(axis=1, ddof=1).fillna(0.0)
            ax.plot(mean.index, mean.values, marker="o", ms=3, color=colors[variant], label=f"{variant} ({len(frames)} seeds)")
            ax.fill_between(mean.index, (mean - std).values, (mean + std).values, color=colors[variant], alpha=0.15)
            ax.set(title=title, xlabel="training step")
    axes[0].legend(fontsize=8)
    fig.suptitle("Training dynamics (validation subset; step 0 = the SFT policy)")
    fig.tight_layout()
    return fig


def plot_frontier(points: pd.DataFrame, references: pd.DataFrame) -> Figure:
    """Test HR@10 vs hallucination@10: a point per variant × checkpoint (× seed), the SFT policy
    and the reference rows."""
    fig = Figure(figsize=(7, 5))
    ax = fig.subplots()
    colors = variant_colors(list(dict.fromkeys(points["variant"])))
    for variant, grp in points.groupby("variant", sort=False):
        ax.scatter(grp["hallucination@10"], grp["hr@10"], s=18 + 40 * grp["step"] / max(grp["step"].max(), 1),
                   color=colors[variant], alpha=0.7, label=variant)
    for _, ref in references.iterrows():
        ax.scatter(ref["hallucination@10"], ref["hr@10"], marker="*", s=160, color="black" if ref["model"] == "sft" else "grey")
        ax.annotate(ref["model"], (ref["hallucination@10"], ref["hr@10"]), textcoords="offset points", xytext=(6, 4), fontsize=8)
    ax.set(xlabel="hallucination@10 (test, unconstrained beam)", ylabel="HR@10 (test, as decoded)",
           title="Frontier: every checkpoint of every run (larger = later step)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_strata(strata: pd.DataFrame) -> Figure:
    """Each variant's HR@10 change vs SFT per stratum of the SFT policy's diagnostics (mean, bar =
    ± std over seeds), with each stratum's size."""
    fig = Figure(figsize=(10, 4.5))
    ax = fig.subplots()
    labels = [s[2] for s in STRATA]
    variants = list(dict.fromkeys(strata["variant"]))
    colors = variant_colors(variants)
    width = 0.8 / max(len(variants), 1)
    for i, variant in enumerate(variants):
        sub = strata[strata["variant"] == variant].set_index("stratum").reindex(labels)
        x = np.arange(len(labels)) + i * width
        ax.bar(x, sub["delta_hr@10_mean"], width, yerr=sub["delta_hr@10_std"], color=colors[variant], label=variant)
    counts = strata.drop_duplicates("stratum").set_index("stratum").reindex(labels)["samples"]
    ax.set_xticks(np.arange(len(labels)) + 0.4 - width / 2)
    ax.set_xticklabels([f"{lab}\n(n={int(c) if pd.notna(c) else 0})" for lab, c in zip(labels, counts, strict=True)], fontsize=8)
    ax.axhline(0, color="black", lw=0.8)
    ax.set(ylabel="HR@10 change vs SFT (test)", title="HR@10 change per stratum of the SFT policy's diagnostics")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
