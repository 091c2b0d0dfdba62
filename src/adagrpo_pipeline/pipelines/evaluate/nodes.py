"""Thin Kedro glue for `evaluate` and the evaluation part of `compare`."""

from __future__ import annotations

import logging
from typing import Any

import mlflow
import numpy as np
import pandas as pd

from adagrpo_pipeline import reporting as rep
from adagrpo_pipeline.adagrpo.config import AdaGrpoParams
from adagrpo_pipeline.adagrpo.diagnostics import sample_diagnostics
from adagrpo_pipeline.adagrpo.runs import RunSpec
from adagrpo_pipeline.policy.config import EvaluateParams, SftParams
from adagrpo_pipeline.policy.data import load_checked_policy, seen_before_holdout
from adagrpo_pipeline.policy.evaluation import (
    evaluate_policy,
    list_metrics,
    list_quality,
)
from adagrpo_pipeline.policy.metrics import drop_seen, hit_rank, popularity_ranking
from adagrpo_pipeline.policy.model import HistoryEncoder
from adagrpo_pipeline.recdata.prepare import drop_held_out
from adagrpo_pipeline.reward.config import RewardParams
from adagrpo_pipeline.reward.reward import RewardModel
from adagrpo_pipeline.semantic_ids.trie import SidTrie
from adagrpo_pipeline.tracking import metric_name, metrics_payload
from adagrpo_pipeline.training import resolve_device
from adagrpo_pipeline.training.checkpoint import Checkpoint

log = logging.getLogger(__name__)


class _Evaluator:
    """Everything needed to score policy checkpoints on the valid and test splits."""

    def __init__(self, test: pd.DataFrame, valid: pd.DataFrame, interactions: pd.DataFrame, semantic_ids: pd.DataFrame,
                 sid_vocab: dict[str, Any], sid_trie: dict, ranker_model: Checkpoint, reward_calibration: dict[str, Any],
                 reward_params: RewardParams, params: EvaluateParams):
        self.params, self.device = params, resolve_device(params.device)
        self.sid_vocab = sid_vocab
        self.semantic_ids, self.trie = semantic_ids, SidTrie.from_tensors(sid_trie)
        self.splits = {"test": (test, seen_before_holdout(interactions, test["user_id"].to_numpy(), held_out=1)),
                       "valid": (valid, seen_before_holdout(interactions, valid["user_id"].to_numpy(), held_out=2))}
        self.reward = RewardModel.from_artifacts(ranker_model, reward_calibration, reward_params, self.device)
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
                        ranker_model: Checkpoint, reward_calibration: dict[str, Any], reward_params: RewardParams,
                        rl_params: AdaGrpoParams, params: EvaluateParams) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The SFT reference row on test, and per test sample its hit@10 and the diagnostics
    (d_pol, d_rew, gate) under the SFT policy with the RL stage's rollout settings: the strata."""
    ev = _Evaluator(test_sequences, valid_sequences, interactions, semantic_ids, sid_vocab, sid_trie, ranker_model,
                    reward_calibration, reward_params, params)
    model, encoder = ev.load(sft_policy)
    m, hits = ev.score(model, encoder, "test", full=True)
    diag = sample_diagnostics(model, encoder, test_sequences, ev.trie, ev.reward, rl_params.rollout, rl_params.k_pol,
                              rl_params.k_rew, rl_params.seed, params.batch_size, ev.device)
    strata = hits.merge(diag, on="user_id", validate="one_to_one")
    log.info("SFT policy on test: %s of samples admitted by the gate (pass_pol %.3f, pass_rew %.3f)",
             f"{strata['admitted'].mean():.3f}", strata["pass_pol"].mean(), strata["pass_rew"].mean())
    row = pd.DataFrame([{"model": "sft", "step": int(sft_policy.config.get("best_step", 0)), **m}])
    return row, strata


def evaluate_checkpoints(checkpoints: dict[str, Checkpoint], test_sequences: pd.DataFrame, valid_sequences: pd.DataFrame,
                         interactions: pd.DataFrame, semantic_ids: pd.DataFrame, sid_vocab: dict[str, Any], sid_trie: dict,
                         ranker_model: Checkpoint, reward_calibration: dict[str, Any], reward_params: RewardParams,
                         params: EvaluateParams) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every saved checkpoint of a run (or `params.steps`) on valid (unconstrained: it picks the
    best checkpoint) and on test (everything); per-sample test hits of the final and best ones."""
    ev = _Evaluator(test_sequences, valid_sequences, interactions, semantic_ids, sid_vocab, sid_trie, ranker_model,
                    reward_calibration, reward_params, params)
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
                        ranker_model: Checkpoint, reward_calibration: dict[str, Any], reward_params: RewardParams,
                        params: EvaluateParams) -> pd.DataFrame:
    """Most-interacted items (counted on every event before the test ones) for everyone."""
    popularity = np.bincount(drop_held_out(interactions, 1)["item_id"], minlength=len(items)).astype(float)
    users = test_sequences["user_id"].to_numpy()
    ranked = popularity_ranking(popularity, len(users), len(items))
    seen = seen_before_holdout(interactions, users, held_out=1)
    m = list_metrics(ranked, test_sequences["target"].to_numpy(), params.ks, seen)
    reward = RewardModel.from_artifacts(ranker_model, reward_calibration, reward_params, resolve_device(params.device))
    m.update(list_quality(ranked, test_sequences["history"].to_list(), len(items), reward))
    return pd.DataFrame([{"model": "popularity", "step": 0, **m}])


def _run_id() -> str:
    run = mlflow.active_run()
    return f"{run.info.run_id} (experiment {run.info.experiment_id})" if run is not None else "none (MLflow inactive)"


def report(sft_evaluation: pd.DataFrame, sft_strata: pd.DataFrame, popularity_evaluation: pd.DataFrame,
           ranker_evaluation: pd.DataFrame, sft_params: SftParams, reward_params: RewardParams, rl_params: AdaGrpoParams,
           evaluate_params: EvaluateParams, **per_run: Any) -> tuple:
    """The report of the runs given as `run_<i>` (their `RunSpec`), `eval_<i>`, `hits_<i>` and
    `history_<i>` (see `report_inputs`): tables, plots, Markdown and MLflow metrics."""
    n = sum(1 for k in per_run if k.startswith("run_"))
    runs, evals, hits, histories = ([per_run[f"{kind}_{i}"] for i in range(n)] for kind in ("run", "eval", "hits", "history"))
    config = {name: p.model_dump(mode="json") for name, p in
              (("sft", sft_params), ("reward", reward_params), ("adagrpo", rl_params), ("evaluate", evaluate_params))}
    r = rep.build_report(runs, evals, hits, histories, [sft_evaluation, popularity_evaluation, ranker_evaluation],
                         sft_strata, config, _run_id())
    for _, row in r.summary[r.summary["checkpoint"] == "final"].iterrows():
        log.info("%s (final, %d seeds): %s", row["variant"], row["seeds"], ", ".join(
            f"{m}={row[m + '_mean']:.4f}±{row[m + '_std']:.4f}" for m in rep.HEADLINE if m + "_mean" in row))
    for _, row in r.results[r.results["checkpoint"] == ""].iterrows():
        log.info("reference %s: %s", row["model"], ", ".join(f"{m}={row[m]:.4f}" for m in rep.HEADLINE
                                                           if m in row and row[m] == row[m]))
    return (r.results, r.summary, r.strata, *r.figures, r.markdown, metrics_payload(r.metrics))


def report_inputs(runs: list[RunSpec]) -> dict[str, str]:
    inputs = {"sft_evaluation": "sft_evaluation", "sft_strata": "sft_strata", "popularity_evaluation": "popularity_evaluation",
              "ranker_evaluation": "ranker_evaluation", "sft_params": "params:sft", "reward_params": "params:reward",
              "rl_params": "params:adagrpo", "evaluate_params": "params:evaluate"}
    for i, r in enumerate(runs):
        inputs.update({f"run_{i}": f"params:runs.{r.namespace}", f"eval_{i}": f"{r.namespace}.checkpoint_evaluation",
                       f"hits_{i}": f"{r.namespace}.test_hits", f"history_{i}": f"{r.namespace}.training_history"})
    return inputs


REPORT_OUTPUTS = ["evaluation_results", "evaluation_summary", "evaluation_strata", "report_dynamics_plot",
                  "report_frontier_plot", "report_strata_plot", "report_md", "evaluation_metrics"]
