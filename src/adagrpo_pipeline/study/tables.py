"""The controlled study's tables (docs/architecture.md, "The controlled study"): paired
differences with bootstrap CIs (`adagrpo_pipeline.stats`), the premise test per stratum, and the
settings each ran at. Kedro-free.

- Summary: per bias level, reward source and variant (final checkpoint, and the checkpoint
  chosen on valid), Δ true utility@10 and Δ HR@10 (history-filtered) against the level's SFT
  policy and against `sft_continue`, each a paired bootstrap over the level's test users, with
  the admitted fraction during training and hallucination@10.
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

from adagrpo_pipeline.reporting.tables import STRATA
from adagrpo_pipeline.stats import Bootstrap, PairedDifference

from .config import ORACLE, StudyPlan, StudyRun

METRICS = {"utility@10": "true utility@10", "hit@10_filtered": "HR@10 (filtered)"}
HEADLINE = "utility@10"
CHECKPOINTS = ("final", "best")
CONTRASTS = ("random_gate", "mix_matched", "oracle_gate", "uniform", "grpo")
SFT_METRICS = ("utility@10", "hit@10_filtered", "hit@10", "hallucination@10")


@dataclass
class StudyInputs:
    """What the study's report reads, keyed by the plan's settings and runs."""

    plan: StudyPlan
    sft: dict[str, pd.DataFrame]  # level -> per-user outcomes
    exposure: dict[str, dict[str, float]]  # level -> exposure metrics
    diagnostics: dict[tuple[str, str], pd.DataFrame]  # (level, information) -> per-user diagnostics
    informativeness: dict[tuple[str, str], dict[str, Any]]
    deciles: dict[tuple[str, str], pd.DataFrame]
    outcomes: dict[StudyRun, pd.DataFrame] = field(default_factory=dict)
    histories: dict[StudyRun, pd.DataFrame] = field(default_factory=dict)

    @property
    def boot(self) -> Bootstrap:
        """The paired bootstrap of every comparison (`study.evaluate`)."""
        e = self.plan.params.evaluate
        return Bootstrap(e.bootstrap_resamples, e.bootstrap_seed)


@dataclass(frozen=True)
class StudyTables:
    """Every table of the study's report, computed once; the figures and the text read them."""

    runs: pd.DataFrame  # `summary_table`
    contrasts: pd.DataFrame  # `contrast_table`
    premise: pd.DataFrame  # `premise_table`
    verdicts: pd.DataFrame  # `premise_verdicts`
    settings: pd.DataFrame  # `settings_table`
    sft: pd.DataFrame  # `sft_table`
    mde: dict[str, float]  # per metric, the median minimum detectable effect of the comparisons with SFT


def metric_values(exposure_metrics: pd.DataFrame) -> dict[str, float]:
    """An `exposure_metrics` table (metric, value) as {metric: value}."""
    return dict(zip(exposure_metrics["metric"], exposure_metrics["value"].astype(float), strict=True))


def _aligned(frame: pd.DataFrame, users: np.ndarray, column: str, what: str) -> np.ndarray:
    s = frame.set_index("user_id")[column]
    missing = np.setdiff1d(users, s.index.to_numpy())
    if len(missing):
        raise ValueError(f"{what}: outcomes lack {len(missing)} of the {len(users)} test users (e.g. {missing[:5].tolist()})")
    return s.reindex(users).to_numpy(np.float64)


def _cols(prefix: str, d: PairedDifference) -> dict[str, Any]:
    return {f"{prefix}": d.delta, f"{prefix}_ci_low": d.ci_low, f"{prefix}_ci_high": d.ci_high,
            f"{prefix}_mde": d.mde, f"{prefix}_call": d.call}


def _training(history: pd.DataFrame) -> dict[str, float]:
    """Mean admitted share and GRPO dose over the training steps (step 0 is the SFT policy)."""
    hist = history[history["step"] > 0]
    return {"admitted": float(hist["admitted"].mean()) if len(hist) else float("nan"),
            "grpo_dose": float(hist["grpo_dose"].mean()) if "grpo_dose" in hist and len(hist) else float("nan")}


def summary_table(x: StudyInputs) -> pd.DataFrame:
    """One row per run × checkpoint (module docstring)."""
    gamma = {b.name: b.exposure_gamma for b in x.plan.params.levels}
    boot = x.boot
    rows = []
    for run, out in x.outcomes.items():
        sft = x.sft[run.level]
        users = np.sort(sft["user_id"].to_numpy())
        cont = next(o for r, o in x.outcomes.items() if r.level == run.level and r.variant == "sft_continue")
        training = _training(x.histories[run])
        for checkpoint in CHECKPOINTS:
            o = out[out["checkpoint"] == checkpoint]
            c = cont[cont["checkpoint"] == checkpoint]
            row = {"level": run.level, "exposure_gamma": gamma[run.level], "reward": run.reward, "variant": run.variant,
                   "namespace": run.spec.namespace, "checkpoint": checkpoint, "step": int(o["step"].iloc[0]),
                   "users": len(users), **training}
            for m in ("utility@10", "hit@10_filtered", "hit@10", "hallucination@10", "ndcg@10_filtered"):
                row[m] = float(o[m].mean())
            for m in METRICS:
                a = _aligned(o, users, m, run.spec.namespace)
                row.update(_cols(f"d_{m}_vs_sft", boot.difference(a, _aligned(sft, users, m, f"{run.level} SFT"))))
                if run.variant != "sft_continue":
                    row.update(_cols(f"d_{m}_vs_sft_continue", boot.difference(a, _aligned(c, users, m, "sft_continue"))))
            rows.append(row)
    return pd.DataFrame(rows)


def contrast_table(x: StudyInputs) -> pd.DataFrame:
    """Per level × information × checkpoint: AdaGRPO − each control with the same ranker (the
    random gate and the matched dose: the diagnostics vs a lower dose; `oracle_gate`: what the
    ranker's d_rew loses to the truth; `uniform`: the gate vs none), paired over test users."""
    boot = x.boot
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
                    d = boot.difference(_aligned(a, users, m, run.spec.namespace), _aligned(b, users, m, other))
                    rows.append({"level": run.level, "information": run.reward, "checkpoint": checkpoint,
                                 "against": other, "metric": m, **_cols("delta", d)})
    return pd.DataFrame(rows)


def premise_table(x: StudyInputs) -> pd.DataFrame:
    """Per level × information × strata source × stratum × reward × metric: the reward term's
    effect (`uniform` − `sft_continue`, final checkpoints) on the stratum's samples."""
    boot = x.boot
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
                            row.update(_cols("effect", boot.difference(_aligned(out, users, m, "uniform"),
                                                                       _aligned(cont, users, m, "sft_continue"))))
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


def settings_table(x: StudyInputs) -> pd.DataFrame:
    """Per level × information: the exposure bias, what the ranker's reward knows (informativeness
    on valid, relevance by decile) and how often the SFT policy's samples pass each gate."""
    rows = []
    for b in x.plan.params.levels:
        for info in x.plan.params.information:
            key = (b.name, info.name)
            f, dec, diag = x.informativeness[key]["figures"], x.deciles[key], x.diagnostics[key]
            rows.append({"level": b.name, "exposure_gamma": b.exposure_gamma, "information": info.name,
                         "attribute_noise": info.attribute_noise,
                         "gini_exposure": x.exposure[b.name].get("gini_exposure", float("nan")),
                         "auc_target_vs_rollouts": f["auc_target_vs_rollouts"],
                         "auc_target_vs_unseen_rollouts": f["auc_target_vs_unseen_rollouts"],
                         "pass_rate_reward": f["pass_rate_reward"], "pass_rate_random": f["pass_rate_random_mean"],
                         "spearman_relevance_first_decile": float(dec["spearman"].iloc[0]) if len(dec) else float("nan"),
                         "spearman_relevance_last_decile": float(dec["spearman"].iloc[-1]) if len(dec) else float("nan"),
                         "sft_admitted_ranker": float(diag["admitted"].mean()),
                         "sft_admitted_oracle": float(diag["admitted_oracle"].mean()),
                         "pass_rew_agreement": float((diag["pass_rew"] == diag["pass_rew_oracle"]).mean())})
    return pd.DataFrame(rows)


def sft_table(x: StudyInputs) -> pd.DataFrame:
    """The SFT policy's test figures per level."""
    return pd.DataFrame([{"level": lv, **{m: float(o[m].mean()) for m in SFT_METRICS}, "users": len(o)}
                         for lv, o in x.sft.items()])


def study_tables(x: StudyInputs) -> StudyTables:
    runs, premise = summary_table(x), premise_table(x)
    return StudyTables(runs, contrast_table(x), premise, premise_verdicts(premise), settings_table(x), sft_table(x),
                       {m: float(runs[f"d_{m}_vs_sft_mde"].median()) for m in METRICS})
