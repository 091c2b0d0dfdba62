"""The controlled study's figures: Δ vs SFT against the exposure bias, and the premise test per
stratum. Kedro-free: the study's tables in, matplotlib figures out; every CI is drawn and named
at the level it was computed at."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from adagrpo_pipeline.reporting.figures import variant_colors
from adagrpo_pipeline.reporting.tables import STRATA
from adagrpo_pipeline.stats import percent

from .config import ORACLE, StudyParams
from .tables import HEADLINE, METRICS


def plot_deltas(table: pd.DataFrame, params: StudyParams, level: float) -> Figure:
    """Δ true utility@10 and Δ HR@10 (filtered) vs SFT with their CIs (at `level`) against the
    exposure bias, one panel per metric × information level (final checkpoints); the reward-free
    `sft_continue` and the oracle-reward `uniform` appear in every column."""
    final = table[table["checkpoint"] == "final"]
    infos = [i.name for i in params.information]
    fig = Figure(figsize=(5.2 * len(infos), 8))
    axes = np.atleast_2d(fig.subplots(len(METRICS), len(infos), squeeze=False))
    for col, info in enumerate(infos):
        series = [(f"{v} (oracle reward)" if v == "uniform" else v, final[(final["reward"] == ORACLE) & (final["variant"] == v)])
                  for v in dict.fromkeys(final.loc[final["reward"] == ORACLE, "variant"])]
        series += [(v, final[(final["reward"] == info) & (final["variant"] == v)])
                   for v in dict.fromkeys(final.loc[final["reward"] == info, "variant"])]
        colors = variant_colors([name for name, _ in series])  # the same series, so the same colours, in every column
        for row, (m, label) in enumerate(METRICS.items()):
            ax = axes[row, col]
            for j, (name, sub) in enumerate(series):
                sub = sub.sort_values("exposure_gamma")
                offset = (j - len(series) / 2) * 0.015 * max(float(sub["exposure_gamma"].max()), 1.0)
                y = sub[f"d_{m}_vs_sft"].to_numpy()
                err = np.vstack([y - sub[f"d_{m}_vs_sft_ci_low"].to_numpy(), sub[f"d_{m}_vs_sft_ci_high"].to_numpy() - y])
                ax.errorbar(sub["exposure_gamma"] + offset, y, yerr=err, marker="o", ms=4, capsize=3, lw=1.2,
                            ls="--" if "oracle" in name else "-", color=colors[name],
                            label=name)
            ax.axhline(0, color="black", lw=0.8)
            ax.set(xlabel="exposure bias (logging policy's popularity weight γ)", ylabel=f"Δ {label} vs SFT",
                   title=f"ranker information: {info}")
            if row == 0 and col == 0:
                ax.legend(fontsize=7)
    fig.suptitle(f"Controlled study: change vs the SFT policy on test (final checkpoints, {percent(level)} paired "
                 "bootstrap CIs)")
    fig.tight_layout()
    return fig


def plot_strata(premise: pd.DataFrame, params: StudyParams, level: float, metric: str = HEADLINE) -> Figure:
    """Per level × information: the reward term's effect (uniform − sft_continue) per stratum of
    the SFT policy's diagnostics (ranker's d_rew), with the ranker's and the oracle's reward and
    their CIs (at `level`)."""
    levels, infos = [b.name for b in params.levels], [i.name for i in params.information]
    fig = Figure(figsize=(5.5 * len(infos), 3.8 * len(levels)))
    axes = fig.subplots(len(levels), len(infos), squeeze=False)
    labels = [s[2] for s in STRATA]
    colors = {"ranker": "tab:blue", "oracle": "tab:orange"}
    for r, bias in enumerate(levels):
        for c, info in enumerate(infos):
            ax = axes[r, c]
            sub = premise[(premise["level"] == bias) & (premise["information"] == info) & (premise["strata_by"] == "ranker")
                          & (premise["metric"] == metric)]
            for k, reward in enumerate(("ranker", "oracle")):
                s = sub[sub["reward"] == reward].set_index("stratum").reindex(labels)
                y = s["effect"].to_numpy(np.float64)
                err = np.vstack([y - s["effect_ci_low"].to_numpy(np.float64), s["effect_ci_high"].to_numpy(np.float64) - y])
                ax.bar(np.arange(4) + 0.38 * k, y, 0.38, yerr=err, capsize=3, color=colors[reward],
                       label=f"{reward} reward")
            shares = sub.drop_duplicates("stratum").set_index("stratum").reindex(labels)["share"]
            ax.set_xticks(np.arange(4) + 0.19)
            ax.set_xticklabels([f"{lab.replace(', ', chr(10))}\n({sh:.0%})" for lab, sh in zip(labels, shares, strict=True)],
                               fontsize=7)
            ax.axhline(0, color="black", lw=0.8)
            ax.set(title=f"bias {bias}, information {info}", ylabel=f"Δ {METRICS[metric]}: uniform − sft_continue")
            if r == 0 and c == 0:
                ax.legend(fontsize=7)
    fig.suptitle("Premise test: the reward term's effect per stratum of the SFT policy's diagnostics "
                 f"(test, {percent(level)} CIs)")
    fig.tight_layout()
    return fig
