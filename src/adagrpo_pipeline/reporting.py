"""Tables, plots and the Markdown report of `evaluate` and `compare` (DESIGN section 5).
Kedro-free: data frames in, data frames / figures / text out.

Inputs per run (a variant trained with one seed):
- `checkpoint_evaluation`: one row per (step, split) with the metrics of that checkpoint;
- `test_hits`: per test sample and reported checkpoint ("final", "best"), hit@10 as decoded;
- `training_history`: the per-step log of training, with valid_* columns at evaluation steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

SELECT_ON = "ndcg@10_filtered"  # validation metric that picks the best intermediate checkpoint
HEADLINE = ["hr@10", "ndcg@10", "hr@10_filtered", "ndcg@10_filtered", "hallucination@10", "constrained_hr@10",
            "reward@10", "coverage@10"]
STRATA = [(True, True, "uncertain policy, ranker right (admitted)"), (True, False, "uncertain policy, ranker wrong"),
          (False, True, "confident policy, ranker right"), (False, False, "confident policy, ranker wrong")]


@dataclass(frozen=True)
class Run:
    variant: str
    seed: int
    namespace: str


def best_step(checkpoint_evaluation: pd.DataFrame) -> int:
    """The checkpoint with the highest validation NDCG@10 (history-filtered); ties: earliest."""
    valid = checkpoint_evaluation[checkpoint_evaluation["split"] == "valid"].sort_values("step")
    if valid.empty:
        raise ValueError("checkpoint_evaluation has no validation rows to choose the best checkpoint from")
    return int(valid.loc[valid[SELECT_ON].idxmax(), "step"])


def run_rows(run: Run, checkpoint_evaluation: pd.DataFrame) -> pd.DataFrame:
    """Test metrics of the run's final and best-on-valid checkpoints (two rows)."""
    test = checkpoint_evaluation[checkpoint_evaluation["split"] == "test"].set_index("step")
    final, best = int(test.index.max()), best_step(checkpoint_evaluation)
    rows = []
    for which, step in (("final", final), ("best", best)):
        rows.append({"variant": run.variant, "seed": run.seed, "namespace": run.namespace, "checkpoint": which,
                     "step": step, **test.loc[step].drop(labels=["split"], errors="ignore").to_dict()})
    return pd.DataFrame(rows)


def summarize(runs: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """Mean and std (ddof 1; 0 for a single seed) over seeds per (variant, checkpoint)."""
    g = runs.groupby(["variant", "checkpoint"], sort=False)[metrics]
    out = g.mean().add_suffix("_mean").join(g.std(ddof=1).fillna(0.0).add_suffix("_std"))
    return out.join(runs.groupby(["variant", "checkpoint"], sort=False).size().rename("seeds")).reset_index()


def strata_table(sft_hits: pd.DataFrame, run_hits: dict[Run, pd.DataFrame], checkpoint: str = "final") -> pd.DataFrame:
    """Per stratum of the test samples under the SFT policy (d_pol > k_pol, d_rew ≤ k_rew):
    its size, SFT HR@10 and each variant's HR@10 change (mean ± std over seeds)."""
    base = sft_hits.set_index("user_id")
    rows = []
    for pol, rew, label in STRATA:
        users = base.index[(base["pass_pol"] == pol) & (base["pass_rew"] == rew)]
        sft_hr = float(base.loc[users, "hit@10"].mean()) if len(users) else np.nan
        per_variant: dict[str, list[float]] = {}
        for run, hits in run_hits.items():
            h = hits[hits["checkpoint"] == checkpoint].set_index("user_id")["hit@10"]
            per_variant.setdefault(run.variant, []).append(float(h.reindex(users).mean()) - sft_hr if len(users) else np.nan)
        for variant, deltas in per_variant.items():
            rows.append({"stratum": label, "pass_pol": pol, "pass_rew": rew, "samples": len(users),
                         "share": len(users) / len(base), "sft_hr@10": sft_hr, "variant": variant,
                         "delta_hr@10_mean": float(np.mean(deltas)),
                         "delta_hr@10_std": float(np.std(deltas, ddof=1)) if len(deltas) > 1 else 0.0})
    return pd.DataFrame(rows)


def strata_wide(strata: pd.DataFrame) -> pd.DataFrame:
    """One row per stratum (size, SFT HR@10) and one column per variant (mean HR@10 change)."""
    order = [label for _, _, label in STRATA]
    base = strata.drop_duplicates("stratum").set_index("stratum")[["samples", "sft_hr@10"]]
    wide = strata.pivot(index="stratum", columns="variant", values="delta_hr@10_mean")
    return base.join(wide[list(dict.fromkeys(strata["variant"]))]).reindex(order).reset_index()


def _variant_colors(variants: list[str]) -> dict[str, tuple]:
    cmap = plt.get_cmap("tab10")
    return {v: cmap(i % 10) for i, v in enumerate(variants)}


def plot_dynamics(histories: dict[Run, pd.DataFrame]) -> plt.Figure:
    """Valid HR@10, hallucination@10 and mean top-10 reward vs step, one line per variant
    (mean over seeds, band = ± std)."""
    panels = [("valid_hr@10", "HR@10 (valid)"), ("valid_hallucination@10", "hallucination@10 (valid)"),
              ("valid_reward@10", "mean reward of the top-10 (valid)")]
    variants = list(dict.fromkeys(r.variant for r in histories))
    colors = _variant_colors(variants)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for variant in variants:
        frames = [h.dropna(subset=["valid_hr@10"]).set_index("step") for r, h in histories.items() if r.variant == variant]
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


def plot_frontier(points: pd.DataFrame, references: pd.DataFrame) -> plt.Figure:
    """Test HR@10 vs hallucination@10: a point per variant × checkpoint (× seed), the SFT policy
    and the reference rows."""
    fig, ax = plt.subplots(figsize=(7, 5))
    colors = _variant_colors(list(dict.fromkeys(points["variant"])))
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


def plot_strata(strata: pd.DataFrame) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(10, 4.5))
    labels = [s[2] for s in STRATA]
    variants = list(dict.fromkeys(strata["variant"]))
    colors = _variant_colors(variants)
    width = 0.8 / max(len(variants), 1)
    for i, variant in enumerate(variants):
        sub = strata[strata["variant"] == variant].set_index("stratum").reindex(labels)
        x = np.arange(len(labels)) + i * width
        ax.bar(x, sub["delta_hr@10_mean"], width, yerr=sub["delta_hr@10_std"], color=colors[variant], label=variant)
    counts = strata.drop_duplicates("stratum").set_index("stratum").reindex(labels)["samples"]
    ax.set_xticks(np.arange(len(labels)) + 0.4 - width / 2)
    ax.set_xticklabels([f"{lab}\n(n={int(c) if c == c else 0})" for lab, c in zip(labels, counts, strict=True)], fontsize=8)
    ax.axhline(0, color="black", lw=0.8)
    ax.set(ylabel="HR@10 change vs SFT (test)", title="HR@10 change per stratum of the SFT policy's diagnostics")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def fmt_mean_std(summary: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """'mean ± std' strings for the report."""
    out = summary[["variant", "checkpoint", "seeds"]].copy()
    for m in metrics:
        out[m] = [f"{a:.4f} ± {b:.4f}" for a, b in zip(summary[f"{m}_mean"], summary[f"{m}_std"], strict=True)]
    return out


def verdict(summary: pd.DataFrame, sft: pd.Series, checkpoint: str = "final", target: str = "adagrpo") -> list[str]:
    """Plain sentences: does `target` beat SFT, uniform GRPO and the best fixed mixture on HR@10
    at equal or lower hallucination? A difference within the seeds' spread (|Δ| ≤ the larger
    std) is called a tie."""
    s = summary[summary["checkpoint"] == checkpoint].set_index("variant")
    if target not in s.index:
        return []
    a = s.loc[target]
    rivals = [("SFT", sft["hr@10"], 0.0, sft["hallucination@10"])]
    if "grpo" in s.index:
        rivals.append(("uniform GRPO", s.loc["grpo", "hr@10_mean"], s.loc["grpo", "hr@10_std"], s.loc["grpo", "hallucination@10_mean"]))
    mixes = s[s.index.str.startswith("mix_")]
    if len(mixes):
        best = mixes["hr@10_mean"].idxmax()
        rivals.append((f"the best fixed mixture ({best})", mixes.loc[best, "hr@10_mean"], mixes.loc[best, "hr@10_std"],
                       mixes.loc[best, "hallucination@10_mean"]))
    lines = []
    for name, hr, std, hall in rivals:
        diff, spread = a["hr@10_mean"] - hr, max(a["hr@10_std"], std)
        outcome = "ties with" if abs(diff) <= spread else "beats" if diff > 0 else "loses to"
        hall_cmp = "equal or lower" if a["hallucination@10_mean"] <= hall + 1e-12 else "higher"
        lines.append(f"- {target} ({checkpoint}) {outcome} {name} on HR@10: {a['hr@10_mean']:.4f} ± {a['hr@10_std']:.4f} "
                     f"vs {hr:.4f} ± {std:.4f} (Δ {diff:+.4f}), at {hall_cmp} hallucination@10 "
                     f"({a['hallucination@10_mean']:.4f} vs {hall:.4f}).")
    return lines
