"""The controlled study's report (docs/architecture.md, "The controlled study"): paired
differences with bootstrap CIs, the premise test per stratum, two figures and `study.md`.
Kedro-free.

- Summary: per bias level, reward source and variant (final checkpoint, and the checkpoint
  chosen on valid), Δ true utility@10 and Δ HR@10 (history-filtered) against the level's SFT
  policy and against `sft_continue`, each a paired bootstrap over the level's test users
  (`adagrpo_pipeline.stats`), with the admitted fraction during training and hallucination@10.
- Premise test: the level's test samples split by the SFT policy's diagnostics (pass_pol ×
  pass_rew, with the ranker's d_rew and, on the same rollouts, the oracle's); per stratum the
  effect of the reward term = `uniform` (the AdaGRPO loss with c ≡ 1) − `sft_continue` on the
  same samples, with the ranker's reward and with the oracle's. The premise holds where the
  admitted stratum gains and no rejected stratum does.
- Every CI is over test users with one seed per run: it does not include seed variance.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from adagrpo_pipeline.reporting.figures import variant_colors
from adagrpo_pipeline.reporting.tables import STRATA
from adagrpo_pipeline.stats import PairedDifference, paired_difference

from .config import ORACLE, StudyParams, StudyPlan, StudyRun

METRICS = {"utility@10": "true utility@10", "hit@10_filtered": "HR@10 (filtered)"}
HEADLINE = "utility@10"
CHECKPOINTS = ("final", "best")


@dataclass
class StudyInputs:
    plan: StudyPlan
    sft: dict[str, pd.DataFrame]  # level -> per-user outcomes
    exposure: dict[str, dict[str, float]]  # level -> exposure metrics
    diagnostics: dict[tuple[str, str], pd.DataFrame]  # (level, information) -> per-user diagnostics
    informativeness: dict[tuple[str, str], dict[str, Any]]
    deciles: dict[tuple[str, str], pd.DataFrame]
    outcomes: dict[StudyRun, pd.DataFrame] = field(default_factory=dict)
    histories: dict[StudyRun, pd.DataFrame] = field(default_factory=dict)

    @classmethod
    def from_node_inputs(cls, params: StudyParams, inputs: dict[str, Any]) -> StudyInputs:
        """Parse the report node's keyword inputs (`pipelines.study.pipeline.report_inputs`)."""
        plan = StudyPlan.from_params(params)
        pairs = [(b.name, i.name) for b in params.levels for i in params.information]
        exposure = {}
        for b in params.levels:
            t = inputs[f"exposure__{b.name}"]
            exposure[b.name] = dict(zip(t["metric"], t["value"].astype(float), strict=True))
        return cls(plan, {b.name: inputs[f"sft__{b.name}"] for b in params.levels}, exposure,
                   {p: inputs[f"diag__{p[0]}__{p[1]}"] for p in pairs},
                   {p: inputs[f"inform__{p[0]}__{p[1]}"] for p in pairs},
                   {p: inputs[f"deciles__{p[0]}__{p[1]}"] for p in pairs},
                   {r: inputs[f"run{i}__outcomes"] for i, r in enumerate(plan.runs)},
                   {r: inputs[f"run{i}__history"] for i, r in enumerate(plan.runs)})


@dataclass
class StudyReport:
    summary: dict[str, Any]
    table: pd.DataFrame
    premise: pd.DataFrame
    delta_figure: Figure
    strata_figure: Figure
    markdown: str


def _aligned(frame: pd.DataFrame, users: np.ndarray, column: str, what: str) -> np.ndarray:
    s = frame.set_index("user_id")[column]
    missing = np.setdiff1d(users, s.index.to_numpy())
    if len(missing):
        raise ValueError(f"{what}: outcomes lack {len(missing)} of the {len(users)} test users (e.g. {missing[:5].tolist()})")
    return s.reindex(users).to_numpy(np.float64)


def _diff(a: np.ndarray, b: np.ndarray, p: StudyParams) -> PairedDifference:
    return paired_difference(a, b, p.evaluate.bootstrap_resamples, p.evaluate.bootstrap_seed)


def _cols(prefix: str, d: PairedDifference) -> dict[str, Any]:
    return {f"{prefix}": d.delta, f"{prefix}_ci_low": d.ci_low, f"{prefix}_ci_high": d.ci_high,
            f"{prefix}_mde": d.mde, f"{prefix}_call": d.call}


def summary_table(x: StudyInputs) -> pd.DataFrame:
    """One row per run × checkpoint (module docstring)."""
    p = x.plan.params
    gamma = {b.name: b.exposure_gamma for b in p.levels}
    rows = []
    for run, out in x.outcomes.items():
        sft = x.sft[run.level]
        users = np.sort(sft["user_id"].to_numpy())
        cont = next(o for r, o in x.outcomes.items() if r.level == run.level and r.variant == "sft_continue")
        hist = x.histories[run][x.histories[run]["step"] > 0]
        for checkpoint in CHECKPOINTS:
            o = out[out["checkpoint"] == checkpoint]
            c = cont[cont["checkpoint"] == checkpoint]
            row = {"level": run.level, "exposure_gamma": gamma[run.level], "reward": run.reward, "variant": run.variant,
                   "namespace": run.spec.namespace, "checkpoint": checkpoint, "step": int(o["step"].iloc[0]),
                   "users": len(users), "admitted": float(hist["admitted"].mean()) if len(hist) else float("nan"),
                   "grpo_dose": float(hist["grpo_dose"].mean()) if "grpo_dose" in hist and len(hist) else float("nan")}
            for m in ("utility@10", "hit@10_filtered", "hit@10", "hallucination@10", "ndcg@10_filtered"):
                row[m] = float(o[m].mean())
            for m in METRICS:
                a = _aligned(o, users, m, run.spec.namespace)
                row.update(_cols(f"d_{m}_vs_sft", _diff(a, _aligned(sft, users, m, f"{run.level} SFT"), p)))
                if run.variant != "sft_continue":
                    row.update(_cols(f"d_{m}_vs_sft_continue", _diff(a, _aligned(c, users, m, "sft_continue"), p)))
            rows.append(row)
    return pd.DataFrame(rows)


CONTRASTS = ("random_gate", "mix_matched", "oracle_gate", "uniform", "grpo")


def contrast_table(x: StudyInputs) -> pd.DataFrame:
    """Per level × information × checkpoint: AdaGRPO − each control with the same ranker (the
    random gate and the matched dose: the diagnostics vs a lower dose; `oracle_gate`: what the
    ranker's d_rew loses to the truth; `uniform`: the gate vs none), paired over test users."""
    p = x.plan.params
    rows = []
    for run, out in x.outcomes.items():
        if run.variant != "adagrpo":
            continue
        users = np.sort(x.sft[run.level]["user_id"].to_numpy())
        for other in CONTRASTS:
            o = next((v for r, v in x.outcomes.items() if (r.level, r.reward, r.variant) == (run.level, run.reward, other)), None)
            if o is None:
                continue
            for checkpoint in CHECKPOINTS:
                a, b = out[out["checkpoint"] == checkpoint], o[o["checkpoint"] == checkpoint]
                for m in METRICS:
                    d = _diff(_aligned(a, users, m, run.spec.namespace), _aligned(b, users, m, other), p)
                    rows.append({"level": run.level, "information": run.reward, "checkpoint": checkpoint,
                                 "against": other, "metric": m, **_cols("delta", d)})
    return pd.DataFrame(rows)


def premise_table(x: StudyInputs) -> pd.DataFrame:
    """Per level × information × strata source × stratum × reward × metric: the reward term's
    effect (`uniform` − `sft_continue`, final checkpoints) on the stratum's samples."""
    p = x.plan.params
    final = {r: o[o["checkpoint"] == "final"] for r, o in x.outcomes.items()}
    rows = []
    for (level, info), diag in x.diagnostics.items():
        cont = next(o for r, o in final.items() if r.level == level and r.variant == "sft_continue")
        rewarded = {"ranker": next(o for r, o in final.items() if (r.level, r.reward, r.variant) == (level, info, "uniform")),
                    "oracle": next(o for r, o in final.items() if (r.level, r.reward, r.variant) == (level, ORACLE, "uniform"))}
        for source, suffix in (("ranker", ""), ("oracle", "_oracle")):
            for pass_pol, pass_rew, label in STRATA:
                mask = (diag["pass_pol"] == pass_pol) & (diag[f"pass_rew{suffix}"] == pass_rew)
                users = np.sort(diag.loc[mask, "user_id"].to_numpy())
                for reward, out in rewarded.items():
                    for m in METRICS:
                        row = {"level": level, "information": info, "strata_by": source, "stratum": label,
                               "admitted_stratum": bool(pass_pol and pass_rew), "samples": len(users),
                               "share": float(mask.mean()), "reward": reward, "metric": m}
                        if len(users) >= 2:
                            row.update(_cols("effect", _diff(_aligned(out, users, m, "uniform"),
                                                              _aligned(cont, users, m, "sft_continue"), p)))
                        else:
                            row.update({"effect": float("nan"), "effect_call": "too few samples"})
                        rows.append(row)
    return pd.DataFrame(rows)


def premise_verdicts(premise: pd.DataFrame) -> pd.DataFrame:
    """Per level × information × strata source × reward × metric: does the admitted stratum gain
    (CI above 0) while no rejected stratum does?"""
    rows = []
    keys = ["level", "information", "strata_by", "reward", "metric"]
    for key, grp in premise.groupby(keys, sort=False):
        admitted = grp[grp["admitted_stratum"]].iloc[0]
        rejected = grp[~grp["admitted_stratum"]]
        gains = rejected[rejected["effect_call"] == "above"]["stratum"].tolist()
        if admitted["effect_call"] == "above" and not gains:
            verdict = "holds"
        elif admitted["effect_call"] == "above":
            verdict = "partly: the admitted stratum gains, and so do rejected ones (" + "; ".join(gains) + ")"
        elif gains:
            verdict = "no: rejected strata gain (" + "; ".join(gains) + "), the admitted one does not"
        else:
            verdict = f"no: the admitted stratum does not gain ({admitted['effect_call']})"
        rows.append({**dict(zip(keys, key, strict=True)), "admitted_effect": admitted.get("effect"),
                     "admitted_call": admitted["effect_call"], "rejected_gains": len(gains),
                     "rejected_losses": int((rejected["effect_call"] == "below").sum()), "verdict": verdict})
    return pd.DataFrame(rows)


def plot_deltas(table: pd.DataFrame, params: StudyParams) -> Figure:
    """Δ true utility@10 and Δ HR@10 (filtered) vs SFT with 95% CIs against the exposure bias,
    one panel per metric × information level (final checkpoints); the reward-free
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
    fig.suptitle("Controlled study: change vs the SFT policy on test (final checkpoints, 95% paired bootstrap CIs)")
    fig.tight_layout()
    return fig


def plot_strata(premise: pd.DataFrame, params: StudyParams, metric: str = HEADLINE) -> Figure:
    """Per level × information: the reward term's effect (uniform − sft_continue) per stratum of
    the SFT policy's diagnostics (ranker's d_rew), with the ranker's and the oracle's reward."""
    levels, infos = [b.name for b in params.levels], [i.name for i in params.information]
    fig = Figure(figsize=(5.5 * len(infos), 3.8 * len(levels)))
    axes = fig.subplots(len(levels), len(infos), squeeze=False)
    labels = [s[2] for s in STRATA]
    colors = {"ranker": "tab:blue", "oracle": "tab:orange"}
    for r, level in enumerate(levels):
        for c, info in enumerate(infos):
            ax = axes[r, c]
            sub = premise[(premise["level"] == level) & (premise["information"] == info) & (premise["strata_by"] == "ranker")
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
            ax.set(title=f"bias {level}, information {info}", ylabel=f"Δ {METRICS[metric]}: uniform − sft_continue")
            if r == 0 and c == 0:
                ax.legend(fontsize=7)
    fig.suptitle("Premise test: the reward term's effect per stratum of the SFT policy's diagnostics (test, 95% CIs)")
    fig.tight_layout()
    return fig


def _fmt(row: pd.Series, prefix: str) -> str:
    if prefix not in row or row[prefix] != row[prefix]:
        return ""
    return f"{row[prefix]:+.4f} [{row[f'{prefix}_ci_low']:+.4f}, {row[f'{prefix}_ci_high']:+.4f}] {row[f'{prefix}_call']}"


def _reading(table: pd.DataFrame, contrasts: pd.DataFrame, verdicts: pd.DataFrame, params: StudyParams) -> list[str]:
    """Plain sentences: where AdaGRPO helps, where it does not, whether the premise held."""
    final = table[table["checkpoint"] == "final"].set_index(["level", "reward", "variant"])
    c_final = contrasts[(contrasts["checkpoint"] == "final") & (contrasts["metric"] == HEADLINE)]
    lines = []
    for b in params.levels:
        for info in params.information:
            key = (b.name, info.name)
            if (*key, "adagrpo") not in final.index:
                continue
            a = final.loc[(*key, "adagrpo")]
            parts = [f"**bias {b.name} (γ {b.exposure_gamma:g}), information {info.name}**: AdaGRPO vs SFT "
                     f"utility {_fmt(a, 'd_utility@10_vs_sft')}, HR@10 {_fmt(a, 'd_hit@10_filtered_vs_sft')}; vs "
                     f"sft_continue utility {_fmt(a, 'd_utility@10_vs_sft_continue')}"]
            for other in ("random_gate", "oracle_gate", "uniform"):
                c = c_final[(c_final["level"] == b.name) & (c_final["information"] == info.name) & (c_final["against"] == other)]
                if len(c):
                    parts.append(f"AdaGRPO − {other} utility {_fmt(c.iloc[0], 'delta')}")
            parts.append(f"admitted {a['admitted']:.3f}")
            lines.append("- " + "; ".join(parts) + ".")
    helps = table[(table["checkpoint"] == "final") & (table["variant"] == "adagrpo")]
    for m, label in METRICS.items():
        up = helps[helps[f"d_{m}_vs_sft_continue_call"] == "above"]
        down = helps[helps[f"d_{m}_vs_sft_continue_call"] == "below"]
        lines.append(f"- AdaGRPO beats `sft_continue` on {label} in {len(up)} of {len(helps)} settings"
                     + (f" ({', '.join(up['level'] + '/' + up['reward'])})" if len(up) else "")
                     + f", loses in {len(down)}" + (f" ({', '.join(down['level'] + '/' + down['reward'])})" if len(down) else "")
                     + ", the rest not resolved.")
    for m, label in METRICS.items():
        for source in ("ranker", "oracle"):
            v = verdicts[(verdicts["strata_by"] == source) & (verdicts["metric"] == m)]
            for reward in ("ranker", "oracle"):
                sub = v[v["reward"] == reward]
                counts = {k: int(sub["verdict"].str.startswith(k).sum()) for k in ("holds", "partly", "no")}
                held = sub[sub["verdict"] == "holds"]
                lines.append(f"- Premise on {label} (strata by the {source}'s d_rew, {reward} reward): holds in "
                             f"{counts['holds']} of {len(sub)} settings"
                             + (f" ({', '.join(held['level'] + '/' + held['information'])})" if len(held) else "")
                             + f"; partly (rejected strata gain too) in {counts['partly']}; no in {counts['no']}.")
    return lines


def _json_safe(value: Any) -> Any:
    """NaN → null (strict JSON), numpy scalars → Python ones."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value


def _md_table(df: pd.DataFrame) -> str:
    return df.to_markdown(index=False, floatfmt=".4f")


def build_study_report(x: StudyInputs, params: StudyParams) -> StudyReport:
    table = summary_table(x)
    premise = premise_table(x)
    verdicts = premise_verdicts(premise)
    contrasts = contrast_table(x)
    mde = {m: float(table[f"d_{m}_vs_sft_mde"].median()) for m in METRICS}
    settings = []
    for b in params.levels:
        for info in params.information:
            f = x.informativeness[(b.name, info.name)]["figures"]
            dec = x.deciles[(b.name, info.name)]
            settings.append({"level": b.name, "exposure_gamma": b.exposure_gamma, "information": info.name,
                             "attribute_noise": info.attribute_noise,
                             "gini_exposure": x.exposure[b.name].get("gini_exposure", float("nan")),
                             "auc_target_vs_rollouts": f["auc_target_vs_rollouts"],
                             "auc_target_vs_unseen_rollouts": f["auc_target_vs_unseen_rollouts"],
                             "pass_rate_reward": f["pass_rate_reward"], "pass_rate_random": f["pass_rate_random_mean"],
                             "spearman_relevance_first_decile": float(dec["spearman"].iloc[0]) if len(dec) else float("nan"),
                             "spearman_relevance_last_decile": float(dec["spearman"].iloc[-1]) if len(dec) else float("nan"),
                             "sft_admitted_ranker": float(x.diagnostics[(b.name, info.name)]["admitted"].mean()),
                             "sft_admitted_oracle": float(x.diagnostics[(b.name, info.name)]["admitted_oracle"].mean()),
                             "pass_rew_agreement": float((x.diagnostics[(b.name, info.name)]["pass_rew"]
                                                          == x.diagnostics[(b.name, info.name)]["pass_rew_oracle"]).mean())})
    settings_df = pd.DataFrame(settings)
    sft_rows = pd.DataFrame([{"level": lv, **{m: float(o[m].mean()) for m in ("utility@10", "hit@10_filtered", "hit@10",
                                                                          "hallucination@10")}, "users": len(o)}
                             for lv, o in x.sft.items()])
    reading = _reading(table, contrasts, verdicts, params)
    summary = {
        "design": {"levels": [b.model_dump() for b in params.levels], "information": [i.model_dump() for i in params.information],
                   "seed": params.seed, "seeds_per_run": 1, "ci": "95% percentile bootstrap over test users, "
                   f"{params.evaluate.bootstrap_resamples} resamples; one seed per run, so no seed variance"},
        "minimum_detectable_effect": mde,
        "settings": settings_df.to_dict(orient="records"),
        "sft": sft_rows.to_dict(orient="records"),
        "runs": table.to_dict(orient="records"),
        "adagrpo_vs_controls": contrasts.to_dict(orient="records"),
        "premise": premise.to_dict(orient="records"),
        "premise_verdicts": verdicts.to_dict(orient="records"),
        "reading": reading,
    }
    final = table[table["checkpoint"] == "final"]
    shown = final[["level", "reward", "variant", "utility@10", "hit@10_filtered", "hallucination@10", "admitted"]].copy()
    for m in METRICS:
        shown[f"Δ {m} vs SFT"] = final.apply(lambda r, m=m: _fmt(r, f"d_{m}_vs_sft"), axis=1)
        shown[f"Δ {m} vs sft_continue"] = final.apply(lambda r, m=m: _fmt(r, f"d_{m}_vs_sft_continue"), axis=1)
    best = table[table["checkpoint"] == "best"]
    best_shown = best[["level", "reward", "variant", "step", "utility@10", "hit@10_filtered"]].copy()
    best_shown["Δ utility@10 vs SFT"] = best.apply(lambda r: _fmt(r, "d_utility@10_vs_sft"), axis=1)
    best_shown["Δ HR@10 vs SFT"] = best.apply(lambda r: _fmt(r, "d_hit@10_filtered_vs_sft"), axis=1)
    contrast_shown = contrasts[["level", "information", "checkpoint", "against", "metric"]].copy()
    contrast_shown["AdaGRPO − control (95% CI)"] = contrasts.apply(lambda r: _fmt(r, "delta"), axis=1)
    prem = premise[(premise["strata_by"] == "ranker")].copy()
    prem["effect (95% CI)"] = prem.apply(lambda r: _fmt(r, "effect") or r["effect_call"], axis=1)
    prem_shown = prem[["level", "information", "metric", "stratum", "samples", "reward", "effect (95% CI)"]]
    md = [
        "# Controlled study: when do the diagnostics pick the samples where the reward helps?", "",
        "Simulator: one log per exposure-bias level (the logging policy's popularity weight γ); per level one SFT "
        "policy, per information level one ranker (noise on the latent vectors it sees); every RL run from that "
        "level's SFT policy with the same steps and seed. Test metrics over every test user of the level. "
        f"{summary['design']['ci']}.", "",
        f"Minimum detectable effect (median over comparisons, 80% power): true utility@10 {mde['utility@10']:.4f}, "
        f"HR@10 (filtered) {mde['hit@10_filtered']:.4f}.", "",
        "## Plain reading", "", *reading, "",
        "## Settings: exposure bias and what the reward knows", "", _md_table(settings_df), "",
        "## SFT policy per level (test)", "", _md_table(sft_rows), "",
        "## Every run vs SFT and vs sft_continue (final checkpoint)", "", _md_table(shown), "",
        "## AdaGRPO against its controls (same ranker, paired)", "", _md_table(contrast_shown), "",
        "## Checkpoint chosen on valid (NDCG@10 filtered; step 0 = the SFT policy)", "", _md_table(best_shown), "",
        "## Premise test: the reward term's effect (uniform − sft_continue) per stratum of the SFT policy's diagnostics "
        "(strata by the ranker's d_rew)", "", _md_table(prem_shown), "",
        "## Premise verdicts", "", _md_table(verdicts), "",
        "Figures: `study_deltas.png` (Δ vs SFT against bias), `study_strata.png` (the premise test).", "",
    ]
    return StudyReport(_json_safe(summary), table, premise, plot_deltas(table, params), plot_strata(premise, params), "\n".join(md))
