"""The words of the `evaluate` / `compare` report: `report.md` as a list of sections, each from
the report's tables, and the plain-sentence reading of the paired CIs. Kedro-free. Every
confidence level written here is the level the CIs were computed at; a new table is one
section function and one line in `render_markdown`."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from adagrpo_pipeline.adagrpo.runs import MAIN_NAMESPACE, RunSpec
from adagrpo_pipeline.stats import ALPHA, POWER, percent

from .tables import (
    HEADLINE,
    HEADLINE_METRIC,
    REFERENCE_METRICS,
    Tables,
    difference,
    minimum_detectable,
    shown_metrics,
    strata_wide,
)

PLOTS = ["## Plots", "", "![training dynamics](report_dynamics.png)", "", "![frontier](report_frontier.png)", "",
         "![strata](report_strata.png)", ""]


def report_title(runs: list[RunSpec]) -> str:
    if [r.namespace for r in runs] == [MAIN_NAMESPACE]:
        return "AdaGRPO on this data: evaluation of the `train_adagrpo` run"
    seeds = sorted({r.seed for r in runs})
    return (f"AdaGRPO vs its baselines: {len({r.variant.name for r in runs})} variants x {len(seeds)} "
            f"seed{'s' if len(seeds) > 1 else ''} {seeds}")


def fmt_mean_std(summary: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """'mean ± std' strings for the report; the mean alone for a single seed (no spread)."""
    out = summary[["variant", "checkpoint", "seeds"]].copy()
    for m in metrics:
        out[m] = [f"{a:.4f} ± {b:.4f}" if n > 1 else f"{a:.4f}"
                  for a, b, n in zip(summary[f"{m}_mean"], summary[f"{m}_std"], summary["seeds"], strict=True)]
    return out


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
            d = difference(r)
            outcome = {"above": "beats", "below": "loses to", "not resolved": "does not resolve against"}[d.call]
            tail = f" (the test set resolves differences of about {d.mde:.4f})" if not d.resolved else ""
            lines.append(f"- {target} ({checkpoint}) {outcome} {r['against']} on {metric}: Δ {d.text()}{tail}.")
        others = p[(p["checkpoint"] == checkpoint) & (p["model"] != target) & (p["against"] == "sft")]
        for _, r in others.iterrows():
            d = difference(r)
            lines.append(f"- {r['model']} ({checkpoint}) − SFT on {metric}: Δ {d.text()}: {d.call}.")
    refs = p[(p["checkpoint"] == "") & (p["against"] == "sft")]
    for _, r in refs.iterrows():
        lines.append(f"- reference {r['model']} − SFT on {metric}: Δ {difference(r).text()}: {difference(r).call}.")
    return lines


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
    return [(f"- SFT − sasrec on {metric}, paired by seed: {per_seed}; mean {mean:+.4f} ± {std:.4f} over "
             f"{len(d)} seeds: {call}.")]


def _header(title: str, mlflow_run: str, evaluate: dict[str, Any]) -> list[str]:
    return [f"# {title}", "",
            (f"MLflow run: {mlflow_run}. Test split, leave-one-out, full catalog; decoding: beam width "
             f"{evaluate.get('beam_factor', 2)} x max(K), unconstrained unless named `constrained_`; "
             "`_filtered` = the user's history items removed from the list (the headline where items are not "
             "consumed twice). Seeds vary the RL stage only (the SFT policy and the ranker are shared)."), ""]


def _variants(t: Tables) -> list[str]:
    return ["## Variants (mean ± std over seeds)", "",
            ("`final` = last checkpoint; `best` = the checkpoint with the highest validation NDCG@10 "
             "(history-filtered), reported on test; step 0 (the SFT policy) is a candidate."), "",
            fmt_mean_std(t.summary, shown_metrics(t.summary)).to_markdown(index=False), ""]


def _reading(t: Tables, level: float) -> list[str]:
    mde = minimum_detectable(t.paired) if not t.paired.empty else float("nan")
    return ["## Reading", "",
            (f"Paired over the {len(t.sft_strata)} test users (per user, a variant's hits averaged over its seeds); "
             f"{percent(level)} percentile bootstrap CIs over users. A difference is a win or a loss only where its "
             f"CI excludes 0. Minimum detectable effect on {HEADLINE_METRIC} (α {ALPHA:g}, power {POWER:g}): "
             f"{mde:.4f}."), "",
            *reading(t.paired), ""]


def _paired(t: Tables) -> list[str]:
    if t.paired.empty:
        return ["## Paired differences", "", "(none)", ""]
    shown = t.paired.assign(checkpoint=t.paired["checkpoint"].replace("", "reference"),
                            ci=[f"[{lo:+.4f}, {hi:+.4f}]" for lo, hi in zip(t.paired["ci_low"], t.paired["ci_high"],
                                                                             strict=True)])
    table = shown[["model", "checkpoint", "against", "metric", "seeds", "delta", "ci", "mde", "call"]]
    return ["## Paired differences", "", table.to_markdown(index=False, floatfmt="+.4f"), ""]


def _reward(reward: dict[str, Any]) -> list[str]:
    if not reward:
        return []
    return ["## Reward informativeness (valid split, the SFT policy's rollouts)", "",
            pd.DataFrame([{"figure": k, "value": v} for k, v in reward.items()]).to_markdown(index=False, floatfmt=".4f"),
            ""]


def _references(t: Tables) -> list[str]:
    columns = ["model"] + [m for m in HEADLINE if m in t.refs]
    return ["## Reference rows", "", t.refs[columns].to_markdown(index=False, floatfmt=".4f"), ""]


def _seeded(t: Tables) -> list[str]:
    if t.ref_summary.empty:
        return []
    lines = ["## Reference models over seeds", "",
             ("The SFT policy and `sasrec` trained again with every seed of the comparison (same data and "
              "configuration; the RL runs start from the main SFT policy). Mean ± std over seeds."), "",
             fmt_mean_std(t.ref_summary.rename(columns={"model": "variant"}).assign(checkpoint=""), REFERENCE_METRICS)
             .drop(columns="checkpoint").rename(columns={"variant": "model"}).to_markdown(index=False), ""]
    if not t.seed_paired.empty:
        lines += [t.seed_paired.to_markdown(index=False, floatfmt="+.4f"), "",
                  *paired_lines(t.seed_paired, "hr@10_filtered"), *paired_lines(t.seed_paired, "ndcg@10_filtered"), ""]
    return lines


def _runs(t: Tables) -> list[str]:
    table = t.runs[["namespace", "checkpoint", "step", *shown_metrics(t.summary)]]
    return ["## Every run", "", table.to_markdown(index=False, floatfmt=".4f"), ""]


def _strata(t: Tables, rl: dict[str, Any]) -> list[str]:
    return ["## Strata", "",
            (f"Test samples split by the SFT policy's diagnostics (k_pol = {rl.get('k_pol')}, "
             f"k_rew = {rl.get('k_rew')}); {t.sft_strata['admitted'].mean():.1%} would be admitted by the gate. "
             "HR@10 as decoded; change = variant − SFT on the same samples (final checkpoints); read each against "
             "`sft_continue`'s change (column `delta_vs_sft_continue` of evaluation_strata): regression to the "
             "mean moves every variant alike."), "",
            strata_wide(t.strata).to_markdown(index=False, floatfmt=".4f"), ""]


def _configuration(config: dict[str, dict[str, Any]]) -> list[str]:
    return ["## Configuration", "", "```json", json.dumps(config, indent=2, sort_keys=True, default=str), "```", ""]


def render_markdown(title: str, t: Tables, config: dict[str, dict[str, Any]], mlflow_run: str,
                    reward: dict[str, Any], level: float) -> str:
    """`report.md`: every table of the report, what each figure was compared with (CIs at
    `level`), the plots and the configuration."""
    sections = [_header(title, mlflow_run, config.get("evaluate", {})), _variants(t), _reading(t, level), _paired(t),
                _reward(reward), _references(t), _seeded(t), _runs(t), _strata(t, config.get("adagrpo", {})), PLOTS,
                _configuration(config)]
    return "\n".join(line for section in sections for line in section)
