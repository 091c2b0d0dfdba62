"""Tables, plots and the Markdown report of `evaluate` and `compare` (docs/architecture.md,
"Evaluation protocol"). Kedro-free: data frames in, data frames / figures / text out.

Inputs per run (a variant trained with one seed, `RunSpec`):
- `checkpoint_evaluation`: one row per (step, split) with the metrics of that checkpoint;
- `test_hits`: per test sample and reported checkpoint ("final", "best"), hit@10 as decoded;
- `training_history`: the per-step log of training, with valid_* columns at evaluation steps.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from adagrpo_pipeline.adagrpo.runs import MAIN_NAMESPACE, ReferenceSpec, RunSpec
from adagrpo_pipeline.stats import PairedDifference, paired_difference
from adagrpo_pipeline.training import selection

SELECT_ON = selection.SELECT_ON.removeprefix(selection.VALID_PREFIX)  # its column in checkpoint_evaluation (split "valid")
HEADLINE = ["hr@10", "ndcg@10", "hr@10_filtered", "ndcg@10_filtered", "hallucination@10", "constrained_hr@10",
            "reward@10", "coverage@10"]
STRATA = [(True, True, "uncertain policy, ranker right (admitted)"), (True, False, "uncertain policy, ranker wrong"),
          (False, True, "confident policy, ranker right"), (False, False, "confident policy, ranker wrong")]


def best_step(checkpoint_evaluation: pd.DataFrame) -> int:
    """The checkpoint chosen on the validation rows (`training.selection`)."""
    valid = checkpoint_evaluation[checkpoint_evaluation["split"] == "valid"]
    if valid.empty:
        raise ValueError("checkpoint_evaluation has no validation rows to choose the best checkpoint from")
    return selection.best_step(valid, SELECT_ON)


def run_rows(run: RunSpec, checkpoint_evaluation: pd.DataFrame) -> pd.DataFrame:
    """Test metrics of the run's final and best-on-valid checkpoints (two rows)."""
    test = checkpoint_evaluation[checkpoint_evaluation["split"] == "test"].set_index("step")
    final, best = int(test.index.max()), best_step(checkpoint_evaluation)
    rows = []
    for which, step in (("final", final), ("best", best)):
        rows.append({"variant": run.variant.name, "seed": run.seed, "namespace": run.namespace, "checkpoint": which,
                     "step": step, **test.loc[step].drop(labels=["split"], errors="ignore").to_dict()})
    return pd.DataFrame(rows)


def summarize(runs: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """Mean and std (ddof 1; 0 for a single seed) over seeds per (variant, checkpoint)."""
    g = runs.groupby(["variant", "checkpoint"], sort=False)[metrics]
    out = g.mean().add_suffix("_mean").join(g.std(ddof=1).fillna(0.0).add_suffix("_std"))
    return out.join(runs.groupby(["variant", "checkpoint"], sort=False).size().rename("seeds")).reset_index()


def strata_table(sft_hits: pd.DataFrame, run_hits: dict[RunSpec, pd.DataFrame], checkpoint: str = "final") -> pd.DataFrame:
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
            per_variant.setdefault(run.variant.name, []).append(float(h.reindex(users).mean()) - sft_hr if len(users) else np.nan)
        control = float(np.mean(per_variant["sft_continue"])) if "sft_continue" in per_variant else np.nan
        for variant, deltas in per_variant.items():
            rows.append({"stratum": label, "pass_pol": pol, "pass_rew": rew, "samples": len(users),
                         "share": len(users) / len(base), "sft_hr@10": sft_hr, "variant": variant,
                         "delta_hr@10_mean": float(np.mean(deltas)),
                         "delta_hr@10_std": float(np.std(deltas, ddof=1)) if len(deltas) > 1 else 0.0,
                         # read against the control: regression to the mean moves every variant alike
                         "delta_vs_sft_continue": float(np.mean(deltas)) - control})
    return pd.DataFrame(rows)


def strata_wide(strata: pd.DataFrame) -> pd.DataFrame:
    """One row per stratum (size, SFT HR@10) and one column per variant (mean HR@10 change)."""
    order = [label for _, _, label in STRATA]
    base = strata.drop_duplicates("stratum").set_index("stratum")[["samples", "sft_hr@10"]]
    wide = strata.pivot(index="stratum", columns="variant", values="delta_hr@10_mean")
    return base.join(wide[list(dict.fromkeys(strata["variant"]))]).reindex(order).reset_index()


def variant_colors(variants: list[str]) -> dict[str, tuple]:
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
    ax.set_xticklabels([f"{lab}\n(n={int(c) if c == c else 0})" for lab, c in zip(labels, counts, strict=True)], fontsize=8)
    ax.axhline(0, color="black", lw=0.8)
    ax.set(ylabel="HR@10 change vs SFT (test)", title="HR@10 change per stratum of the SFT policy's diagnostics")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def fmt_mean_std(summary: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """'mean ± std' strings for the report; the mean alone for a single seed (no spread)."""
    out = summary[["variant", "checkpoint", "seeds"]].copy()
    for m in metrics:
        out[m] = [f"{a:.4f} ± {b:.4f}" if n > 1 else f"{a:.4f}"
                  for a, b, n in zip(summary[f"{m}_mean"], summary[f"{m}_std"], summary["seeds"], strict=True)]
    return out


HEADLINE_METRIC = "hr@10_filtered"  # where items are not consumed twice (MovieLens): docs/architecture.md
PAIRED_METRICS = {"hr@10_filtered": "hit@10_filtered", "hr@10": "hit@10"}  # report metric -> per-user column
CONTROLS = ("sft", "sft_continue")


@dataclass(frozen=True)
class Bootstrap:
    """Settings of the paired bootstrap over test users."""

    resamples: int = 10_000
    seed: int = 0
    level: float = 0.95


def hit_matrices(run_hits: dict[RunSpec, pd.DataFrame], users: np.ndarray, checkpoint: str,
                 column: str) -> dict[str, np.ndarray]:
    """Per variant: its (seeds, users) per-user outcomes at `checkpoint`, in the order of `users`."""
    out: dict[str, list[np.ndarray]] = {}
    for run, hits in run_hits.items():
        h = hits[hits["checkpoint"] == checkpoint].set_index("user_id")[column]
        missing = np.setdiff1d(users, h.index.to_numpy())
        if len(missing):
            raise ValueError(f"{run.namespace}: test hits lack {len(missing)} of the {len(users)} test users "
                             f"(e.g. {missing[:5].tolist()}): paired statistics need every user")
        out.setdefault(run.variant.name, []).append(h.reindex(users).to_numpy(np.float64))
    return {v: np.stack(rows) for v, rows in out.items()}


def paired_table(sft_hits: pd.DataFrame, run_hits: dict[RunSpec, pd.DataFrame],
                 reference_hits: dict[str, pd.DataFrame] | None = None, boot: Bootstrap = Bootstrap()) -> pd.DataFrame:
    """Every paired difference on the test users, with its bootstrap CI and minimum detectable
    effect: each variant (final and best checkpoints, seeds averaged per user) against SFT and
    `sft_continue`, AdaGRPO against every other variant, each reference model against SFT."""
    users = sft_hits["user_id"].to_numpy()
    rows = []

    def add(model: str, checkpoint: str, against: str, metric: str, a: np.ndarray, b: np.ndarray, seeds: int) -> None:
        d = paired_difference(a, b, boot.resamples, boot.seed, boot.level)
        rows.append({"model": model, "checkpoint": checkpoint, "against": against, "metric": metric, "seeds": seeds,
                     "delta": d.delta, "ci_low": d.ci_low, "ci_high": d.ci_high, "mde": d.mde, "users": d.users,
                     "level": d.level, "call": d.call})

    for metric, column in PAIRED_METRICS.items():
        sft = sft_hits.set_index("user_id").loc[users, column].to_numpy(np.float64)
        for name, hits in (reference_hits or {}).items():
            add(name, "", "sft", metric, hits.set_index("user_id").reindex(users)[column].to_numpy(np.float64), sft, 1)
        for checkpoint in ("final", "best"):
            by_variant = hit_matrices(run_hits, users, checkpoint, column) if run_hits else {}
            for variant, m in by_variant.items():
                add(variant, checkpoint, "sft", metric, m, sft, len(m))
                if "sft_continue" in by_variant and variant != "sft_continue":
                    add(variant, checkpoint, "sft_continue", metric, m, by_variant["sft_continue"], len(m))
            if "adagrpo" in by_variant:
                for rival, m in by_variant.items():
                    if rival not in ("adagrpo", "sft_continue"):
                        add("adagrpo", checkpoint, rival, metric, by_variant["adagrpo"], m, len(by_variant["adagrpo"]))
    return pd.DataFrame(rows, columns=["model", "checkpoint", "against", "metric", "seeds", "delta", "ci_low", "ci_high",
                                       "mde", "users", "level", "call"])


def _difference(row: pd.Series) -> PairedDifference:
    return PairedDifference(row["delta"], row["ci_low"], row["ci_high"], row["mde"], int(row["users"]), row["level"])


def reading(paired: pd.DataFrame, metric: str = HEADLINE_METRIC, target: str = "adagrpo") -> list[str]:
    """Plain sentences from the CIs: `target` against SFT, `sft_continue` and every other
    variant, then every other variant against SFT. A difference is a win or a loss only where
    its CI excludes 0; otherwise it is "not resolved", with the smallest effect the test set
    could have resolved."""
    if paired.empty:
        return []
    p = paired[paired["metric"] == metric]
    lines = []
    for checkpoint in ("best", "final"):
        rows = p[(p["checkpoint"] == checkpoint) & (p["model"] == target)]
        for _, r in rows.iterrows():
            d = _difference(r)
            outcome = {"above": "beats", "below": "loses to", "not resolved": "does not resolve against"}[d.call]
            tail = f" (the test set resolves differences of about {d.mde:.4f})" if not d.resolved else ""
            lines.append(f"- {target} ({checkpoint}) {outcome} {r['against']} on {metric}: Δ {d.text()}{tail}.")
        others = p[(p["checkpoint"] == checkpoint) & (p["model"] != target) & (p["against"] == "sft")]
        for _, r in others.iterrows():
            d = _difference(r)
            lines.append(f"- {r['model']} ({checkpoint}) − SFT on {metric}: Δ {d.text()}: {d.call}.")
    refs = p[(p["checkpoint"] == "") & (p["against"] == "sft")]
    for _, r in refs.iterrows():
        lines.append(f"- reference {r['model']} − SFT on {metric}: Δ {_difference(r).text()}: {_difference(r).call}.")
    return lines


def minimum_detectable(paired: pd.DataFrame, metric: str = HEADLINE_METRIC) -> float:
    """The test set's minimum detectable effect on `metric`: that of AdaGRPO (best) − SFT, or of
    the first comparison with SFT when there is no AdaGRPO run."""
    p = paired[(paired["metric"] == metric) & (paired["against"] == "sft")]
    if p.empty:
        return float("nan")
    main = p[(p["model"] == "adagrpo") & (p["checkpoint"] == "best")]
    return float((main if len(main) else p).iloc[0]["mde"])


def summary_document(title: str, summary: pd.DataFrame, refs: pd.DataFrame, paired: pd.DataFrame,
                     reward: dict[str, Any], mlflow_run: str, test_users: int) -> dict[str, Any]:
    """`summary.json`: the headline figures in a stable, documented form (README, "summary.json")."""
    def stats_of(row: pd.Series, spread: bool) -> dict[str, dict[str, float]]:
        out = {}
        for m in HEADLINE:
            mean = row.get(f"{m}_mean" if spread else m, np.nan)
            if mean == mean:
                out[m] = {"mean": float(mean), "std": float(row[f"{m}_std"]) if spread else 0.0}
        return out

    def deltas(model: str, checkpoint: str, against: str) -> dict[str, Any]:
        rows = paired[(paired["model"] == model) & (paired["checkpoint"] == checkpoint) & (paired["against"] == against)]
        return {r["metric"]: _difference(r).to_json() for _, r in rows.iterrows()}

    models: dict[str, Any] = {}
    for _, r in refs.iterrows():
        entry: dict[str, Any] = {"kind": "reference", "seeds": 1, "metrics": stats_of(r, spread=False)}
        if r["model"] != "sft":
            entry["delta_vs_sft"] = deltas(r["model"], "", "sft")
        models[r["model"]] = entry
    for _, r in summary.iterrows():
        variant = models.setdefault(r["variant"], {"kind": "variant", "seeds": int(r["seeds"]), "checkpoints": {}})
        variant["checkpoints"][r["checkpoint"]] = {
            "metrics": stats_of(r, spread=True),
            **{f"delta_vs_{c}": deltas(r["variant"], r["checkpoint"], c) for c in CONTROLS if c != r["variant"]}}
    return {"schema": "adagrpo-pipeline/summary/1", "title": title, "mlflow_run": mlflow_run,
            "headline": {"metric": HEADLINE_METRIC, "test_users": int(test_users),
                         "minimum_detectable_effect": minimum_detectable(paired)},
            "models": models, "reward": reward}


@dataclass
class Report:
    """Everything `evaluate` / `compare` publish about a set of runs."""

    results: pd.DataFrame  # reference rows, then every run's final and best rows
    summary: pd.DataFrame  # mean ± std over seeds per (variant, checkpoint)
    strata: pd.DataFrame  # per stratum × variant HR@10 change vs SFT
    paired: pd.DataFrame  # every paired difference with its bootstrap CI (`paired_table`)
    figures: tuple[Figure, Figure, Figure]  # dynamics, frontier, strata
    markdown: str
    metrics: dict[str, float]  # flat headline figures for MLflow
    document: dict[str, Any]  # summary.json


REFERENCE_METRICS = ["hr@10", "ndcg@10", "hr@10_filtered", "ndcg@10_filtered"]


def reference_seeds(seeded: list[tuple[ReferenceSpec, pd.DataFrame]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Reference models trained with several seeds: mean ± std per model over seeds, and the
    SFT − sasrec difference paired by seed (one row per seed, then the mean and std over seeds)."""
    if not seeded:
        return pd.DataFrame(), pd.DataFrame()
    rows = pd.concat([e.assign(reference=spec.model, seed=spec.seed) for spec, e in seeded], ignore_index=True)
    summary = summarize(rows.rename(columns={"reference": "variant"}).assign(checkpoint=""), REFERENCE_METRICS)
    summary = summary.drop(columns="checkpoint").rename(columns={"variant": "model"})
    wide = rows.pivot(index="seed", columns="reference", values=REFERENCE_METRICS)
    if not {"sft", "sasrec"} <= set(rows["reference"]):
        return summary, pd.DataFrame()
    paired = pd.DataFrame({m: wide[(m, "sft")] - wide[(m, "sasrec")] for m in REFERENCE_METRICS}).dropna().reset_index()
    return summary, paired


def paired_lines(paired: pd.DataFrame, metric: str = "hr@10_filtered") -> list[str]:
    """SFT − sasrec on `metric`, per seed and over seeds, in words: a difference is called only
    when every seed agrees on its sign and the mean is larger than the spread."""
    if paired.empty:
        return []
    d = paired[metric]
    mean, std = float(d.mean()), float(d.std(ddof=1)) if len(d) > 1 else 0.0
    per_seed = ", ".join(f"seed {s}: {v:+.4f}" for s, v in zip(paired["seed"], d, strict=True))
    if len(d) > 1 and abs(mean) > std and ((d > 0).all() or (d < 0).all()):
        call = "SFT is above sasrec" if mean > 0 else "SFT is below sasrec"
    else:
        call = "not resolved"
    return [f"- SFT − sasrec on {metric}, paired by seed: {per_seed}; mean {mean:+.4f} ± {std:.4f} over "
            f"{len(d)} seeds: {call}."]


def report_title(runs: list[RunSpec]) -> str:
    if [r.namespace for r in runs] == [MAIN_NAMESPACE]:
        return "AdaGRPO on this data: evaluation of the `train_adagrpo` run"
    seeds = sorted({r.seed for r in runs})
    return (f"AdaGRPO vs its baselines: {len({r.variant.name for r in runs})} variants x {len(seeds)} "
            f"seed{'s' if len(seeds) > 1 else ''} {seeds}")


def build_report(runs: list[RunSpec], evals: list[pd.DataFrame], hits: list[pd.DataFrame], histories: list[pd.DataFrame],
                 references: list[pd.DataFrame], sft_strata: pd.DataFrame, config: dict[str, dict[str, Any]],
                 mlflow_run: str, seeded: list[tuple[ReferenceSpec, pd.DataFrame]] = (),
                 reference_hits: dict[str, pd.DataFrame] | None = None, reward: dict[str, Any] | None = None,
                 boot: Bootstrap = Bootstrap()) -> Report:
    """Tables, plots, Markdown, flat metrics and `summary.json` of `runs` (their evaluations,
    test hits and histories, in the same order), beside the reference rows (the SFT policy's
    first, whose per-user hits are `sft_strata`), the other reference models' per-user hits
    (`reference_hits`, compared with SFT), the reference models trained with several seeds
    (`seeded`) and the reward's informativeness figures (`reward`)."""
    seeded = list(seeded)
    refs = pd.concat(references, ignore_index=True)
    run_table = pd.concat([run_rows(r, e) for r, e in zip(runs, evals, strict=True)], ignore_index=True)
    metrics = [c for c in run_table.columns if c not in ("variant", "seed", "namespace", "checkpoint", "step")]
    summary = summarize(run_table, metrics)
    run_hits = dict(zip(runs, hits, strict=True))
    strata = strata_table(sft_strata, run_hits)
    paired = paired_table(sft_strata, run_hits, reference_hits, boot)
    points = pd.concat([e[e["split"] == "test"].assign(variant=r.variant.name, seed=r.seed)
                        for r, e in zip(runs, evals, strict=True)], ignore_index=True)
    figures = (plot_dynamics(dict(zip(runs, histories, strict=True))), plot_frontier(points, refs), plot_strata(strata))
    shown = [m for m in HEADLINE if f"{m}_mean" in summary]
    flat = {f"{r['variant']}.{r['checkpoint']}.{m}_{s}": r[f"{m}_{s}"] for _, r in summary.iterrows()
            for m in shown for s in ("mean", "std")}
    flat.update({f"{r['model']}.{m}": r[m] for _, r in refs.iterrows() for m in HEADLINE if m in r})
    flat.update({f"delta.{r['model']}.{r['checkpoint'] or 'reference'}.vs_{r['against']}.{r['metric']}_{k}": r[k]
                 for _, r in paired.iterrows() for k in ("delta", "ci_low", "ci_high")})
    ref_summary, seed_paired = reference_seeds(seeded)
    flat.update({f"reference.{r['model']}.{m}_{s}": r[f"{m}_{s}"] for _, r in ref_summary.iterrows()
                 for m in REFERENCE_METRICS for s in ("mean", "std")})
    seeded_rows = [e.assign(checkpoint="", seed=spec.seed, variant=spec.model) for spec, e in seeded]
    results = pd.concat([refs.assign(checkpoint="", seed=np.nan, variant=refs["model"]), *seeded_rows,
                         run_table.rename(columns={"namespace": "model"})], ignore_index=True)
    title = report_title(runs)
    markdown = render_markdown(title, summary, refs, run_table, strata, sft_strata, config, mlflow_run,
                               ref_summary, seed_paired, paired, reward or {})
    document = summary_document(title, summary, refs, paired, reward or {}, mlflow_run, len(sft_strata))
    return Report(results, summary, strata, paired, figures, markdown, flat, document)


def _paired_markdown(paired: pd.DataFrame) -> str:
    shown = paired.assign(checkpoint=paired["checkpoint"].replace("", "reference"),
                          ci=[f"[{lo:+.4f}, {hi:+.4f}]" for lo, hi in zip(paired["ci_low"], paired["ci_high"], strict=True)])
    return shown[["model", "checkpoint", "against", "metric", "seeds", "delta", "ci", "mde", "call"]].to_markdown(
        index=False, floatfmt="+.4f")


def _reward_lines(reward: dict[str, Any]) -> list[str]:
    if not reward:
        return []
    return ["## Reward informativeness (valid split, the SFT policy's rollouts)", "",
            pd.DataFrame([{"figure": k, "value": v} for k, v in reward.items()]).to_markdown(index=False, floatfmt=".4f"),
            ""]


def render_markdown(title: str, summary: pd.DataFrame, refs: pd.DataFrame, run_table: pd.DataFrame, strata: pd.DataFrame,
                    sft_strata: pd.DataFrame, config: dict[str, dict[str, Any]], mlflow_run: str,
                    ref_summary: pd.DataFrame | None = None, seed_paired: pd.DataFrame | None = None,
                    paired: pd.DataFrame | None = None, reward: dict[str, Any] | None = None) -> str:
    """`report.md`: every table of the report, what each figure was compared with, the plots
    and the configuration."""
    shown = [m for m in HEADLINE if f"{m}_mean" in summary]
    ref_cols = ["model"] + [m for m in HEADLINE if m in refs]
    rl, ev = config.get("adagrpo", {}), config.get("evaluate", {})
    paired = paired if paired is not None else pd.DataFrame()
    mde = minimum_detectable(paired) if not paired.empty else float("nan")
    md = [f"# {title}", "",
          f"MLflow run: {mlflow_run}. Test split, leave-one-out, full catalog; decoding: beam width "
          f"{ev.get('beam_factor', 2)} x max(K), unconstrained unless named `constrained_`; "
          "`_filtered` = the user's history items removed from the list (the headline where items are not "
          "consumed twice). Seeds vary the RL stage only (the SFT policy and the ranker are shared).", "",
          "## Variants (mean ± std over seeds)", "",
          "`final` = last checkpoint; `best` = the checkpoint with the highest validation NDCG@10 "
          "(history-filtered), reported on test; step 0 (the SFT policy) is a candidate.", "",
          fmt_mean_std(summary, shown).to_markdown(index=False), "",
          "## Reading", "",
          f"Paired over the {len(sft_strata)} test users (per user, a variant's hits averaged over its seeds); "
          f"95% percentile bootstrap CIs over users. A difference is a win or a loss only where its CI excludes 0. "
          f"Minimum detectable effect on {HEADLINE_METRIC} (α 0.05, power 0.8): {mde:.4f}.", "",
          *reading(paired), "",
          "## Paired differences", "", _paired_markdown(paired) if not paired.empty else "(none)", "",
          *_reward_lines(reward or {}),
          "## Reference rows", "", refs[ref_cols].to_markdown(index=False, floatfmt=".4f"), "",
          *_seeded_section(ref_summary, seed_paired),
          "## Every run", "",
          run_table[["namespace", "checkpoint", "step", *shown]].to_markdown(index=False, floatfmt=".4f"), "",
          "## Strata", "",
          f"Test samples split by the SFT policy's diagnostics (k_pol = {rl.get('k_pol')}, k_rew = {rl.get('k_rew')}); "
          f"{sft_strata['admitted'].mean():.1%} would be admitted by the gate. HR@10 as decoded; "
          "change = variant − SFT on the same samples (final checkpoints); read each against `sft_continue`'s "
          "change (column `delta_vs_sft_continue` of evaluation_strata): regression to the mean moves every "
          "variant alike.", "",
          strata_wide(strata).to_markdown(index=False, floatfmt=".4f"), "",
          "## Plots", "", "![training dynamics](report_dynamics.png)", "", "![frontier](report_frontier.png)", "",
          "![strata](report_strata.png)", "",
          "## Configuration", "", "```json", json.dumps(config, indent=2, sort_keys=True, default=str), "```", ""]
    return "\n".join(md)


def _seeded_section(ref_summary: pd.DataFrame | None, paired: pd.DataFrame | None) -> list[str]:
    if ref_summary is None or ref_summary.empty:
        return []
    lines = ["## Reference models over seeds", "",
             "The SFT policy and `sasrec` trained again with every seed of the comparison (same data and "
             "configuration; the RL runs start from the main SFT policy). Mean ± std over seeds.", "",
             fmt_mean_std(ref_summary.rename(columns={"model": "variant"}).assign(checkpoint=""), REFERENCE_METRICS)
             .drop(columns="checkpoint").rename(columns={"variant": "model"}).to_markdown(index=False), ""]
    if paired is not None and not paired.empty:
        lines += [paired.to_markdown(index=False, floatfmt="+.4f"), "", *paired_lines(paired, "hr@10_filtered"),
                  *paired_lines(paired, "ndcg@10_filtered"), ""]
    return lines
