"""Thin Kedro glue for `evaluate` and the evaluation part of `compare`."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import mlflow
import numpy as np
import pandas as pd

from adagrpo_pipeline import reporting as rep
from adagrpo_pipeline.adagrpo.config import AdaGrpoParams
from adagrpo_pipeline.adagrpo.train import sample_diagnostics
from adagrpo_pipeline.pipelines.adagrpo.nodes import reward_model_from
from adagrpo_pipeline.policy.checkpoint import Checkpoint
from adagrpo_pipeline.policy.config import EvaluateParams
from adagrpo_pipeline.policy.data import load_checked_policy, seen_before_holdout
from adagrpo_pipeline.policy.evaluation import evaluate_policy, list_metrics, list_quality
from adagrpo_pipeline.policy.metrics import drop_seen, hit_rank, popularity_ranking
from adagrpo_pipeline.policy.model import HistoryEncoder
from adagrpo_pipeline.semantic_ids.embeddings import drop_held_out, resolve_device
from adagrpo_pipeline.semantic_ids.trie import SidTrie
from adagrpo_pipeline.tracking import metric_name, metrics_payload

log = logging.getLogger(__name__)

KEY_METRICS = ("hr@10", "ndcg@10", "hallucination@10", "constrained_hr@10", "reward@10", "coverage@10")


class _Evaluator:
    """Everything needed to score policy checkpoints on the valid and test splits."""

    def __init__(self, test: pd.DataFrame, valid: pd.DataFrame, interactions: pd.DataFrame, semantic_ids: pd.DataFrame,
                 sid_vocab: dict[str, Any], sid_trie: dict, ranker_model: Checkpoint, reward_calibration: dict[str, Any],
                 params: EvaluateParams):
        self.params, self.device = params, resolve_device(params.device)
        self.sid_vocab = sid_vocab
        self.semantic_ids, self.trie = semantic_ids, SidTrie.from_tensors(sid_trie)
        self.splits = {"test": (test, seen_before_holdout(interactions, test["user_id"].to_numpy(), held_out=1)),
                       "valid": (valid, seen_before_holdout(interactions, valid["user_id"].to_numpy(), held_out=2))}
        self.reward = reward_model_from(ranker_model, reward_calibration, self.device)
        self.beams = params.beam_factor * max(params.ks)

    def load(self, ckpt: Checkpoint):
        return load_checked_policy(ckpt, self.semantic_ids, self.sid_vocab, self.device)

    def score(self, model, encoder: HistoryEncoder, split: str, full: bool) -> tuple[dict[str, float], pd.DataFrame]:
        """Metrics on a split (`full`: constrained decoding too) and per-sample hits@10."""
        samples, seen = self.splits[split]
        m, ranked = evaluate_policy(model, encoder, self.trie, samples, self.params.ks, self.beams, self.params.batch_size,
                                    self.device, seen, self.reward, constrained=full)
        targets = samples["target"].to_numpy()
        rank, rank_f = hit_rank(ranked[:, :10], targets), hit_rank(drop_seen(ranked, seen, 10), targets)
        hits = pd.DataFrame({"user_id": samples["user_id"].to_numpy(), "hit@10": (rank >= 0).astype(float),
                             "hit@10_filtered": (rank_f >= 0).astype(float)})
        return m, hits


def evaluate_sft_policy(sft_policy: Checkpoint, test_sequences: pd.DataFrame, valid_sequences: pd.DataFrame,
                        interactions: pd.DataFrame, semantic_ids: pd.DataFrame, sid_vocab: dict[str, Any], sid_trie: dict,
                        ranker_model: Checkpoint, reward_calibration: dict[str, Any], rl_params: AdaGrpoParams,
                        params: EvaluateParams) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The SFT reference row on test, and per test sample its hit@10 and the diagnostics
    (d_pol, d_rew, gate) under the SFT policy with the RL stage's rollout settings: the strata."""
    ev = _Evaluator(test_sequences, valid_sequences, interactions, semantic_ids, sid_vocab, sid_trie, ranker_model,
                    reward_calibration, params)
    model, encoder = ev.load(sft_policy)
    m, hits = ev.score(model, encoder, "test", full=True)
    diag = sample_diagnostics(model, encoder, test_sequences, ev.trie, ev.reward, rl_params, params.batch_size, ev.device)
    strata = hits.merge(diag, on="user_id", validate="one_to_one")
    log.info("SFT policy on test: %s of samples admitted by the gate (pass_pol %.3f, pass_rew %.3f)",
             f"{strata['admitted'].mean():.3f}", strata["pass_pol"].mean(), strata["pass_rew"].mean())
    row = pd.DataFrame([{"model": "sft", "step": int(sft_policy.config.get("best_step", 0)), **m}])
    return row, strata


def evaluate_checkpoints(checkpoints: dict[str, Checkpoint], test_sequences: pd.DataFrame, valid_sequences: pd.DataFrame,
                         interactions: pd.DataFrame, semantic_ids: pd.DataFrame, sid_vocab: dict[str, Any], sid_trie: dict,
                         ranker_model: Checkpoint, reward_calibration: dict[str, Any],
                         params: EvaluateParams) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every saved checkpoint of a run (or `params.steps`) on valid (unconstrained: it picks the
    best checkpoint) and on test (everything); per-sample test hits of the final and best ones."""
    ev = _Evaluator(test_sequences, valid_sequences, interactions, semantic_ids, sid_vocab, sid_trie, ranker_model,
                    reward_calibration, params)
    by_step = {int(c.config["step"]): c for c in checkpoints.values()}
    steps = sorted(by_step) if params.steps is None else sorted(s for s in by_step if s in set(params.steps))
    if not steps:
        raise ValueError(f"no checkpoint to evaluate: saved steps {sorted(by_step)}, evaluate.steps {params.steps}")
    rows, test_hits = [], {}
    for step in steps:
        model, encoder = ev.load(by_step[step])
        for split in ("valid", "test"):
            m, hits = ev.score(model, encoder, split, full=split == "test")
            rows.append({"step": step, "split": split, **m})
            if split == "test":
                test_hits[step] = hits
        log.info("%s step %d: test hr@10 %.4f, hallucination@10 %.4f, valid %s %.4f", by_step[step].config.get("namespace"),
                 step, rows[-1]["hr@10"], rows[-1]["hallucination@10"], rep.SELECT_ON, rows[-2][rep.SELECT_ON])
    table = pd.DataFrame(rows)
    if mlflow.active_run() is not None:  # one point per checkpoint: MLflow draws them against the step
        namespace = by_step[steps[0]].config.get("namespace", "policy")
        for row in rows:
            mlflow.log_metrics({metric_name(f"{namespace}.{row['split']}.{k}"): float(v) for k, v in row.items()
                                if k not in ("step", "split") and v == v}, step=int(row["step"]))
    best = rep.best_step(table)
    hits = pd.concat([test_hits[max(steps)].assign(checkpoint="final", step=max(steps)),
                      test_hits[best].assign(checkpoint="best", step=best)], ignore_index=True)
    return table, hits


def popularity_baseline(test_sequences: pd.DataFrame, interactions: pd.DataFrame, items: pd.DataFrame,
                        ranker_model: Checkpoint, reward_calibration: dict[str, Any], params: EvaluateParams) -> pd.DataFrame:
    """Most-interacted items (counted on every event before the test ones) for everyone."""
    popularity = np.bincount(drop_held_out(interactions, 1)["item_id"], minlength=len(items)).astype(float)
    users = test_sequences["user_id"].to_numpy()
    ranked = popularity_ranking(popularity, len(users), len(items))
    seen = seen_before_holdout(interactions, users, held_out=1)
    m = list_metrics(ranked, test_sequences["target"].to_numpy(), params.ks, seen)
    reward = reward_model_from(ranker_model, reward_calibration, resolve_device(params.device))
    m.update(list_quality(ranked, test_sequences["history"].to_list(), len(items), reward))
    return pd.DataFrame([{"model": "popularity", "step": 0, **m}])


def _run_id() -> str:
    run = mlflow.active_run()
    return f"{run.info.run_id} (experiment {run.info.experiment_id})" if run is not None else "none (MLflow inactive)"


def make_report_node(runs: list[rep.Run], title: str) -> Callable[..., tuple]:
    """The report node of a set of runs: inputs `eval_<i>`, `hits_<i>`, `history_<i>` per run
    plus the references and the configuration (see `report_inputs`)."""

    def report(sft_evaluation: pd.DataFrame, sft_strata: pd.DataFrame, popularity_evaluation: pd.DataFrame,
               ranker_evaluation: pd.DataFrame, sft_params: Any, reward_params: Any, rl_params: Any,
               evaluate_params: Any, **per_run: pd.DataFrame) -> tuple:
        """Tables, plots, Markdown report and MLflow metrics of `runs` (the params arrive as
        Kedro's validated models)."""
        sft_params, reward_params, rl_params, evaluate_params = (
            p.model_dump() if hasattr(p, "model_dump") else dict(p) for p in (sft_params, reward_params, rl_params, evaluate_params))
        evals = {r: per_run[f"eval_{i}"] for i, r in enumerate(runs)}
        hits = {r: per_run[f"hits_{i}"] for i, r in enumerate(runs)}
        histories = {r: per_run[f"history_{i}"] for i, r in enumerate(runs)}
        refs = pd.concat([sft_evaluation, popularity_evaluation, ranker_evaluation], ignore_index=True)
        run_table = pd.concat([rep.run_rows(r, e) for r, e in evals.items()], ignore_index=True)
        metrics = [c for c in run_table.columns if c not in ("variant", "seed", "namespace", "checkpoint", "step")]
        summary = rep.summarize(run_table, metrics)
        strata = rep.strata_table(sft_strata, hits)
        points = pd.concat([e[e["split"] == "test"].assign(variant=r.variant, seed=r.seed) for r, e in evals.items()],
                           ignore_index=True)
        figs = (rep.plot_dynamics(histories), rep.plot_frontier(points, refs), rep.plot_strata(strata))

        for _, row in summary[summary["checkpoint"] == "final"].iterrows():
            log.info("%s (final, %d seeds): %s", row["variant"], row["seeds"], ", ".join(
                f"{m}={row[m + '_mean']:.4f}±{row[m + '_std']:.4f}" for m in rep.HEADLINE if m + "_mean" in row))
        for _, row in refs.iterrows():
            log.info("reference %s: %s", row["model"], ", ".join(f"{m}={row[m]:.4f}" for m in rep.HEADLINE if m in row and row[m] == row[m]))

        shown = [m for m in rep.HEADLINE if f"{m}_mean" in summary]
        ref_cols = ["model"] + [m for m in rep.HEADLINE if m in refs]
        admitted = sft_strata["admitted"].mean()
        md = [f"# {title}", "",
              f"MLflow run: {_run_id()}. Test split, leave-one-out, full catalog; decoding: beam width "
              f"{evaluate_params.get('beam_factor', 2)} x max(K), unconstrained unless named `constrained_`; "
              "`_filtered` = the user's history items removed from the list. Seeds vary the RL stage only "
              "(the SFT policy and the ranker are shared).", "",
              "## Variants (mean ± std over seeds)", "",
              "`final` = last checkpoint; `best` = the checkpoint with the highest validation NDCG@10 "
              "(history-filtered), reported on test.", "",
              rep.fmt_mean_std(summary, shown).to_markdown(index=False), "",
              "## Reading", "",
              "A difference smaller than the larger of the two standard deviations over seeds is called a tie.", "",
              *rep.verdict(summary, sft_evaluation.iloc[0], "final"), *rep.verdict(summary, sft_evaluation.iloc[0], "best"), "",
              "## Reference rows", "", refs[ref_cols].to_markdown(index=False, floatfmt=".4f"), "",
              "## Every run", "",
              run_table[["namespace", "checkpoint", "step", *shown]].to_markdown(index=False, floatfmt=".4f"), "",
              "## Strata (DESIGN section 5)", "",
              f"Test samples split by the SFT policy's diagnostics (k_pol = {rl_params.get('k_pol')}, "
              f"k_rew = {rl_params.get('k_rew')}); {admitted:.1%} would be admitted by the gate. HR@10 as decoded; "
              "change = variant − SFT on the same samples (final checkpoints).", "",
              rep.strata_wide(strata).to_markdown(index=False, floatfmt=".4f"), "",
              "## Plots", "", "![training dynamics](report_dynamics.png)", "", "![frontier](report_frontier.png)", "",
              "![strata](report_strata.png)", "",
              "## Configuration", "", "```json",
              json.dumps({"sft": sft_params, "reward": reward_params, "adagrpo": rl_params, "evaluate": evaluate_params},
                         indent=2, sort_keys=True, default=str), "```", ""]
        flat = {f"{r['variant']}.{r['checkpoint']}.{m}_{s}": r[f"{m}_{s}"] for _, r in summary.iterrows()
                for m in shown for s in ("mean", "std")}
        flat.update({f"{r['model']}.{m}": r[m] for _, r in refs.iterrows() for m in rep.HEADLINE if m in r})
        results = pd.concat([refs.assign(checkpoint="", seed=np.nan, variant=refs["model"]), run_table.rename(
            columns={"namespace": "model"})], ignore_index=True)
        return (results, summary, strata, *figs, "\n".join(md), metrics_payload(flat))

    report.__name__ = report.__qualname__ = "report"
    return report


def report_inputs(runs: list[rep.Run]) -> dict[str, str]:
    inputs = {"sft_evaluation": "sft_evaluation", "sft_strata": "sft_strata", "popularity_evaluation": "popularity_evaluation",
              "ranker_evaluation": "ranker_evaluation", "sft_params": "params:sft", "reward_params": "params:reward",
              "rl_params": "params:adagrpo", "evaluate_params": "params:evaluate"}
    for i, r in enumerate(runs):
        inputs.update({f"eval_{i}": f"{r.namespace}.checkpoint_evaluation", f"hits_{i}": f"{r.namespace}.test_hits",
                       f"history_{i}": f"{r.namespace}.training_history"})
    return inputs


REPORT_OUTPUTS = ["evaluation_results", "evaluation_summary", "evaluation_strata", "report_dynamics_plot",
                  "report_frontier_plot", "report_strata_plot", "report_md", "evaluation_metrics"]
