"""The tables of the `evaluate` / `compare` report (docs/architecture.md, "Evaluation protocol"):
per-run rows, mean ± std over seeds, strata, every paired difference, the reference models over
seeds, and the flat figures for MLflow. Kedro-free: data frames in, data frames out.

Inputs per run (a variant trained with one seed, `RunSpec`):
- `checkpoint_evaluation`: one row per (step, split) with the metrics of that checkpoint;
- `test_hits`: per test sample and reported checkpoint ("final", "best"), hit@10 as decoded;
- `training_history`: the per-step log of training, with valid_* columns at evaluation steps.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from adagrpo_pipeline.adagrpo.runs import ReferenceSpec, RunSpec
from adagrpo_pipeline.stats import Bootstrap, PairedDifference
from adagrpo_pipeline.training import selection

SELECT_ON = selection.SELECT_ON.removeprefix(selection.VALID_PREFIX)  # its column in checkpoint_evaluation (split "valid")
HEADLINE = ["hr@10", "ndcg@10", "hr@10_filtered", "ndcg@10_filtered", "hallucination@10", "constrained_hr@10",
            "reward@10", "coverage@10"]
STRATA = [(True, True, "uncertain policy, ranker right (admitted)"), (True, False, "uncertain policy, ranker wrong"),
          (False, True, "confident policy, ranker right"), (False, False, "confident policy, ranker wrong")]
HEADLINE_METRIC = "hr@10_filtered"  # where items are not consumed twice (MovieLens): docs/architecture.md
PAIRED_METRICS = {"hr@10_filtered": "hit@10_filtered", "hr@10": "hit@10"}  # report metric -> per-user column
PAIRED_COLUMNS = ["model", "checkpoint", "against", "metric", "seeds", "delta", "ci_low", "ci_high", "mde", "users",
                  "level", "call"]
CONTROLS = ("sft", "sft_continue")
REFERENCE_METRICS = ["hr@10", "ndcg@10", "hr@10_filtered", "ndcg@10_filtered"]
RUN_KEYS = ("variant", "seed", "namespace", "checkpoint", "step")


@dataclass(frozen=True)
class Tables:
    """Every table of one report, computed once; the figures and the text read them."""

    refs: pd.DataFrame  # reference rows (the SFT policy's first)
    runs: pd.DataFrame  # every run's final and best rows (`run_table`)
    summary: pd.DataFrame  # mean ± std over seeds per (variant, checkpoint)
    strata: pd.DataFrame  # per stratum × variant HR@10 change vs SFT
    sft_strata: pd.DataFrame  # per test user under the SFT policy: hits and diagnostics
    paired: pd.DataFrame  # every paired difference with its bootstrap CI (`paired_table`)
    ref_summary: pd.DataFrame  # the reference models trained with several seeds: mean ± std
    seed_paired: pd.DataFrame  # SFT − sasrec paired by seed


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


def run_table(runs: list[RunSpec], evals: list[pd.DataFrame]) -> pd.DataFrame:
    """`run_rows` of every run, in the order of `runs`."""
    return pd.concat([run_rows(r, e) for r, e in zip(runs, evals, strict=True)], ignore_index=True)


def metric_columns(table: pd.DataFrame) -> list[str]:
    """The metric columns of a `run_table`."""
    return [c for c in table.columns if c not in RUN_KEYS]


def shown_metrics(summary: pd.DataFrame) -> list[str]:
    """The headline metrics a `summarize` table has."""
    return [m for m in HEADLINE if f"{m}_mean" in summary]


def summarize(runs: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """Mean and std (ddof 1; 0 for a single seed) over seeds per (variant, checkpoint)."""
    g = runs.groupby(["variant", "checkpoint"], sort=False)[metrics]
    out = g.mean().add_suffix("_mean").join(g.std(ddof=1).fillna(0.0).add_suffix("_std"))
    return out.join(runs.groupby(["variant", "checkpoint"], sort=False).size().rename("seeds")).reset_index()


def frontier_points(runs: list[RunSpec], evals: list[pd.DataFrame]) -> pd.DataFrame:
    """Every test row of every run's checkpoints, with its variant and seed."""
    return pd.concat([e[e["split"] == "test"].assign(variant=r.variant.name, seed=r.seed)
                      for r, e in zip(runs, evals, strict=True)], ignore_index=True)


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


def variant_pairs(by_variant: dict[str, np.ndarray], sft: np.ndarray) -> Iterator[tuple[str, str, np.ndarray, np.ndarray]]:
    """(model, against, A, B) of one checkpoint: each variant against SFT and `sft_continue`,
    then AdaGRPO against every other variant."""
    for variant, m in by_variant.items():
        yield variant, "sft", m, sft
        if "sft_continue" in by_variant and variant != "sft_continue":
            yield variant, "sft_continue", m, by_variant["sft_continue"]
    if "adagrpo" in by_variant:
        for rival, m in by_variant.items():
            if rival not in ("adagrpo", "sft_continue"):
                yield "adagrpo", rival, by_variant["adagrpo"], m


def _paired_row(boot: Bootstrap, model: str, checkpoint: str, against: str, metric: str, a: np.ndarray,
                b: np.ndarray) -> dict:
    d = boot.difference(a, b)
    return {"model": model, "checkpoint": checkpoint, "against": against, "metric": metric,
            "seeds": len(a) if a.ndim == 2 else 1, "delta": d.delta, "ci_low": d.ci_low, "ci_high": d.ci_high,
            "mde": d.mde, "users": d.users, "level": d.level, "call": d.call}


def paired_table(sft_hits: pd.DataFrame, run_hits: dict[RunSpec, pd.DataFrame],
                 reference_hits: dict[str, pd.DataFrame] | None = None, boot: Bootstrap | None = None) -> pd.DataFrame:
    """Every paired difference on the test users, with its bootstrap CI and minimum detectable
    effect: each reference model against SFT, then per checkpoint (final, best; seeds averaged
    per user) `variant_pairs`; `boot` None: the default settings."""
    boot = boot or Bootstrap()
    users = sft_hits["user_id"].to_numpy()
    rows = []
    for metric, column in PAIRED_METRICS.items():
        sft = sft_hits.set_index("user_id").loc[users, column].to_numpy(np.float64)
        for name, hits in (reference_hits or {}).items():
            ref = hits.set_index("user_id").reindex(users)[column].to_numpy(np.float64)
            rows.append(_paired_row(boot, name, "", "sft", metric, ref, sft))
        for checkpoint in ("final", "best"):
            by_variant = hit_matrices(run_hits, users, checkpoint, column)
            rows += [_paired_row(boot, model, checkpoint, against, metric, a, b)
                     for model, against, a, b in variant_pairs(by_variant, sft)]
    return pd.DataFrame(rows, columns=PAIRED_COLUMNS)


def difference(row: pd.Series) -> PairedDifference:
    """A row of `paired_table` as the difference it records."""
    return PairedDifference(row["delta"], row["ci_low"], row["ci_high"], row["mde"], int(row["users"]), row["level"])


def minimum_detectable(paired: pd.DataFrame, metric: str = HEADLINE_METRIC) -> float:
    """The test set's minimum detectable effect on `metric`: that of AdaGRPO (best) − SFT, or of
    the first comparison with SFT when there is no AdaGRPO run."""
    p = paired[(paired["metric"] == metric) & (paired["against"] == "sft")]
    if p.empty:
        return float("nan")
    main = p[(p["model"] == "adagrpo") & (p["checkpoint"] == "best")]
    return float((main if len(main) else p).iloc[0]["mde"])


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


def results_table(t: Tables, seeded: list[tuple[ReferenceSpec, pd.DataFrame]]) -> pd.DataFrame:
    """`evaluation_results`: the reference rows, the seeded reference rows, then every run's rows."""
    seeded_rows = [e.assign(checkpoint="", seed=spec.seed, variant=spec.model) for spec, e in seeded]
    return pd.concat([t.refs.assign(checkpoint="", seed=np.nan, variant=t.refs["model"]), *seeded_rows,
                      t.runs.rename(columns={"namespace": "model"})], ignore_index=True)


def flat_metrics(t: Tables) -> dict[str, float]:
    """The headline figures under flat names, for MLflow."""
    flat = {f"{r['variant']}.{r['checkpoint']}.{m}_{s}": r[f"{m}_{s}"] for _, r in t.summary.iterrows()
            for m in shown_metrics(t.summary) for s in ("mean", "std")}
    flat.update({f"{r['model']}.{m}": r[m] for _, r in t.refs.iterrows() for m in HEADLINE if m in r})
    flat.update({f"delta.{r['model']}.{r['checkpoint'] or 'reference'}.vs_{r['against']}.{r['metric']}_{k}": r[k]
                 for _, r in t.paired.iterrows() for k in ("delta", "ci_low", "ci_high")})
    flat.update({f"reference.{r['model']}.{m}_{s}": r[f"{m}_{s}"] for _, r in t.ref_summary.iterrows()
                 for m in REFERENCE_METRICS for s in ("mean", "std")})
    return flat
