"""Thin Kedro glue for `evaluate` and the evaluation part of `compare`."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd

from adagrpo_pipeline.adagrpo.config import AdaGrpoParams
from adagrpo_pipeline.adagrpo.diagnostics import sample_diagnostics
from adagrpo_pipeline.adagrpo.runs import ReferenceSpec
from adagrpo_pipeline.metrics import (
    drop_seen,
    evaluate_scores,
    hits_table,
    list_metrics,
    list_quality,
    popularity_ranking,
)
from adagrpo_pipeline.policy.config import EvaluateParams, SftParams
from adagrpo_pipeline.policy.data import load_checked_policy, seen_before_holdout
from adagrpo_pipeline.policy.evaluation import evaluate_policy
from adagrpo_pipeline.policy.model import HistoryEncoder
from adagrpo_pipeline.recdata.prepare import HELD_OUT_TEST, HELD_OUT_VALID, drop_held_out
from adagrpo_pipeline.reporting import tables
from adagrpo_pipeline.reporting.report import Report, build_report
from adagrpo_pipeline.reporting.tables import HEADLINE
from adagrpo_pipeline.reporting.text import reading
from adagrpo_pipeline.reward.config import RewardParams
from adagrpo_pipeline.reward.reward import RewardModel
from adagrpo_pipeline.sasrec.model import catalog_scores, load_sasrec, sasrec_checkpoint
from adagrpo_pipeline.sasrec.retrieval import KIND as SASREC
from adagrpo_pipeline.sasrec.retrieval import train_sasrec
from adagrpo_pipeline.semantic_ids.trie import SidTrie
from adagrpo_pipeline.stats import Bootstrap
from adagrpo_pipeline.tracking import metric_name, metrics_payload, mlflow_logger
from adagrpo_pipeline.training import SELECT_ON, resolve_device
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
        self.splits = {"test": (test, seen_before_holdout(interactions, test["user_id"].to_numpy(), held_out=HELD_OUT_TEST)),
                       "valid": (valid, seen_before_holdout(interactions, valid["user_id"].to_numpy(), held_out=HELD_OUT_VALID))}
        self.reward = RewardModel.from_artifacts(ranker_model, reward_calibration, reward_params, self.device)
        self.beams = params.beam_factor * max(params.ks)

    def load(self, ckpt: Checkpoint):
        return load_checked_policy(ckpt, self.semantic_ids, self.sid_vocab, self.device)

    def score(self, model, encoder: HistoryEncoder, split: str, full: bool) -> tuple[dict[str, float], pd.DataFrame]:
        """Metrics on a split (`full`: constrained decoding too) and per-sample hits@10."""
        samples, seen = self.splits[split]
        m, ranked = evaluate_policy(model, encoder, self.trie, samples, self.params.ks, self.beams, self.params.batch_size,
                                    self.device, seen, self.reward, constrained=full)
        hits = hits_table(samples["user_id"].to_numpy(), samples["target"].to_numpy(), ranked, drop_seen(ranked, seen, 10))
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


def evaluate_sft_reference(sft_policy: Checkpoint, test_sequences: pd.DataFrame, valid_sequences: pd.DataFrame,
                           interactions: pd.DataFrame, semantic_ids: pd.DataFrame, sid_vocab: dict[str, Any],
                           sid_trie: dict, ranker_model: Checkpoint, reward_calibration: dict[str, Any],
                           reward_params: RewardParams, params: EvaluateParams,
                           run: ReferenceSpec) -> tuple[pd.DataFrame, pd.DataFrame]:
    """An SFT policy trained with a reference seed of `compare`: its row on test and its hits."""
    ev = _Evaluator(test_sequences, valid_sequences, interactions, semantic_ids, sid_vocab, sid_trie, ranker_model,
                    reward_calibration, reward_params, params)
    m, hits = ev.score(*ev.load(sft_policy), "test", full=True)
    return pd.DataFrame([{"model": run.namespace, "step": int(sft_policy.config.get("best_step", 0)), **m}]), hits


def train_sasrec_seed(interactions: pd.DataFrame, valid_sequences: pd.DataFrame, items: pd.DataFrame,
                      params: EvaluateParams, run: ReferenceSpec) -> tuple[Checkpoint, pd.DataFrame]:
    """The `sasrec` retriever trained with a reference seed of `compare`, its resumable state in
    `<state_dir>/<namespace>`."""
    state = str(Path(params.sasrec.state_dir) / run.namespace) if params.sasrec.state_dir else None
    sasrec = params.sasrec.model_copy(update={"seed": run.seed, "state_dir": state})
    return train_sasrec_baseline(interactions, valid_sequences, items, params.model_copy(update={"sasrec": sasrec}),
                                 log_prefix=run.namespace)


def sasrec_reference(sasrec_model: Checkpoint, test_sequences: pd.DataFrame, interactions: pd.DataFrame,
                     ranker_model: Checkpoint, reward_calibration: dict[str, Any], reward_params: RewardParams,
                     params: EvaluateParams, run: ReferenceSpec) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A seeded `sasrec` retriever's row on test (named after its namespace) and its hits."""
    row, hits = sasrec_baseline(sasrec_model, test_sequences, interactions, ranker_model, reward_calibration,
                                reward_params, params)
    return row.assign(model=run.namespace), hits


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
                 step, rows[-1]["hr@10"], rows[-1]["hallucination@10"], tables.SELECT_ON, rows[-2][tables.SELECT_ON])
    table = pd.DataFrame(rows)
    if mlflow.active_run() is not None:  # one point per checkpoint: MLflow draws them against the step
        namespace = by_step[steps[0]].config.get("namespace", "policy")
        for row in rows:
            mlflow.log_metrics({metric_name(f"{namespace}.{row['split']}.{k}"): float(v) for k, v in row.items()
                                if k not in ("step", "split") and v == v}, step=int(row["step"]))
    best = tables.best_step(table)
    hits = pd.concat([test_hits[max(steps)].assign(checkpoint="final", step=max(steps)),
                      test_hits[best].assign(checkpoint="best", step=best)], ignore_index=True)
    return table, hits


def popularity_baseline(test_sequences: pd.DataFrame, interactions: pd.DataFrame, items: pd.DataFrame,
                        ranker_model: Checkpoint, reward_calibration: dict[str, Any], reward_params: RewardParams,
                        params: EvaluateParams) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Most-interacted items (counted on every event before the test ones) for everyone, and
    the per-user hits."""
    popularity = np.bincount(drop_held_out(interactions, HELD_OUT_TEST)["item_id"], minlength=len(items)).astype(float)
    users, targets = test_sequences["user_id"].to_numpy(), test_sequences["target"].to_numpy()
    ranked = popularity_ranking(popularity, len(users), len(items))
    seen = seen_before_holdout(interactions, users, held_out=HELD_OUT_TEST)
    m = list_metrics(ranked, targets, params.ks, seen)
    reward = RewardModel.from_artifacts(ranker_model, reward_calibration, reward_params, resolve_device(params.device))
    m.update(list_quality(ranked, test_sequences["history"].to_list(), len(items), reward, users=users))
    return pd.DataFrame([{"model": "popularity", "step": 0, **m}]), hits_table(users, targets, ranked, drop_seen(ranked, seen, 10))


def train_sasrec_baseline(interactions: pd.DataFrame, valid_sequences: pd.DataFrame, items: pd.DataFrame,
                          params: EvaluateParams, log_prefix: str = "sasrec") -> tuple[Checkpoint, pd.DataFrame]:
    """The `sasrec` reference retriever, trained on every event before the valid and test
    targets, its best step chosen on valid."""
    seen = seen_before_holdout(interactions, valid_sequences["user_id"].to_numpy(), held_out=HELD_OUT_VALID)
    res = train_sasrec(len(items), drop_held_out(interactions, HELD_OUT_VALID), valid_sequences, seen, params.sasrec,
                       log_fn=mlflow_logger(log_prefix))
    best = res.history.set_index("step").loc[res.best_step]
    log.info("%s: best step %d, valid hr@10 %.4f (filtered %.4f), ndcg@10 %.4f (filtered %.4f)", log_prefix, res.best_step,
             best["valid_hr@10"], best["valid_hr@10_filtered"], best["valid_ndcg@10"], best[SELECT_ON])
    return sasrec_checkpoint(res.model, SASREC, stage="evaluate", best_step=res.best_step,
                             seed=params.sasrec.seed), res.history


def sasrec_baseline(sasrec_model: Checkpoint, test_sequences: pd.DataFrame, interactions: pd.DataFrame,
                    ranker_model: Checkpoint, reward_calibration: dict[str, Any], reward_params: RewardParams,
                    params: EvaluateParams) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The `sasrec` reference row on test (the whole catalog scored; filtered = history items
    removed) and its per-user hits."""
    device = resolve_device(params.device)
    model = load_sasrec(sasrec_model, SASREC, device)
    scores = catalog_scores(model, test_sequences["history"], params.batch_size)
    seen = seen_before_holdout(interactions, test_sequences["user_id"].to_numpy(), held_out=HELD_OUT_TEST)
    reward = RewardModel.from_artifacts(ranker_model, reward_calibration, reward_params, device)
    m, hits = evaluate_scores(scores, test_sequences, seen, params.ks, reward)
    return pd.DataFrame([{"model": "sasrec", "step": int(sasrec_model.config.get("best_step", 0)), **m}]), hits


def _run_id() -> str:
    run = mlflow.active_run()
    return f"{run.info.run_id} (experiment {run.info.experiment_id})" if run is not None else "none (MLflow inactive)"


REPORT_INPUTS = ["sft_evaluation", "sft_strata", "popularity_evaluation", "popularity_test_hits", "sasrec_evaluation",
                 "sasrec_test_hits", "ranker_evaluation", "ranker_test_hits", "reward_informativeness", "params:sft",
                 "params:reward", "params:adagrpo", "params:evaluate"]
RUN_INPUTS = {"spec": "params:runs.{}", "evaluation": "{}.checkpoint_evaluation", "hits": "{}.test_hits",
              "history": "{}.training_history"}  # per RL run: role -> dataset of its namespace
REFERENCE_INPUTS = {"spec": "params:runs.{}", "evaluation": "{}.evaluation", "hits": "{}.hits"}  # per seeded reference


@dataclass(frozen=True)
class ReportNode:
    """The `report` node over a plan's runs, made by the pipeline factory that knows them: the
    namespaces of the RL runs and of the seeded reference models, in the report's order, and
    whether the runs trained with `tuned_settings`. `inputs` names every dataset `report` takes,
    in the order it takes them, so the node reads no dataset name; each run's `RunSpec` still
    comes as `params:runs.<namespace>` (visible in `kedro viz` and MLflow)."""

    runs: tuple[str, ...]
    references: tuple[str, ...] = ()
    tuned: bool = False

    def _slots(self) -> list[tuple[str, str, str]]:
        """(namespace, role, dataset) of every input after REPORT_INPUTS, in call order."""
        slots = [("", "tuned", "tuned_settings")] if self.tuned else []
        slots += [(ns, role, name.format(ns)) for ns in self.runs for role, name in RUN_INPUTS.items()]
        return slots + [(ns, role, name.format(ns)) for ns in self.references for role, name in REFERENCE_INPUTS.items()]

    def inputs(self) -> list[str]:
        return [*REPORT_INPUTS, *(dataset for _, _, dataset in self._slots())]

    def report(self, sft_evaluation: pd.DataFrame, sft_strata: pd.DataFrame, popularity_evaluation: pd.DataFrame,
               popularity_test_hits: pd.DataFrame, sasrec_evaluation: pd.DataFrame, sasrec_test_hits: pd.DataFrame,
               ranker_evaluation: pd.DataFrame, ranker_test_hits: pd.DataFrame, reward_informativeness: dict[str, Any],
               sft_params: SftParams, reward_params: RewardParams, rl_params: AdaGrpoParams,
               evaluate_params: EvaluateParams, *per_run: Any) -> tuple:
        """The report of the runs beside the reference rows: tables, paired statistics, plots,
        Markdown, MLflow metrics, `summary.json`, and every reference model's per-user hits in
        one table."""
        got = {(ns, role): value for (ns, role, _), value in zip(self._slots(), per_run, strict=True)}
        runs, evals, hits, histories = ([got[(ns, role)] for ns in self.runs] for role in RUN_INPUTS)
        seeded = [(got[(ns, "spec")], got[(ns, "evaluation")]) for ns in self.references]
        config = {name: p.model_dump(mode="json") for name, p in
                  (("sft", sft_params), ("reward", reward_params), ("adagrpo", rl_params), ("evaluate", evaluate_params))}
        if self.tuned:  # compare: the settings every variant trained with
            config["tuned_settings"] = {"budget": got[("", "tuned")]["budget"], "variants": got[("", "tuned")]["variants"]}
        references = [sft_evaluation, popularity_evaluation, sasrec_evaluation, ranker_evaluation]
        all_hits = [sft_strata, popularity_test_hits, sasrec_test_hits, ranker_test_hits,
                    *(got[(ns, "hits")] for ns in self.references)]
        names = [ref["model"].iloc[0] for ref in references] + [spec.namespace for spec, _ in seeded]
        boot = Bootstrap(evaluate_params.bootstrap_resamples, evaluate_params.bootstrap_seed)
        r = build_report(runs, evals, hits, histories, references, sft_strata, config, _run_id(), seeded,
                         reference_hits=dict(zip(names[1:], all_hits[1:], strict=True)),
                         reward=reward_informativeness.get("figures", {}), boot=boot)
        reference_hits = pd.concat([h[["user_id", "hit@10", "hit@10_filtered"]].assign(model=name)
                                    for name, h in zip(names, all_hits, strict=True)], ignore_index=True)
        _log_report(r)
        return (r.results, r.summary, r.strata, r.paired, *r.figures, r.markdown, metrics_payload(r.metrics),
                reference_hits[["model", "user_id", "hit@10", "hit@10_filtered"]], r.document)


def _log_report(r: Report) -> None:
    """Each variant's final figures, each reference row and the reading of the CIs, in the log."""
    for _, row in r.summary[r.summary["checkpoint"] == "final"].iterrows():
        log.info("%s (final, %d seeds): %s", row["variant"], row["seeds"], ", ".join(
            f"{m}={row[m + '_mean']:.4f}±{row[m + '_std']:.4f}" for m in HEADLINE if m + "_mean" in row))
    for _, row in r.results[r.results["checkpoint"] == ""].iterrows():
        log.info("reference %s: %s", row["model"], ", ".join(f"{m}={row[m]:.4f}" for m in HEADLINE
                                                           if m in row and row[m] == row[m]))
    for line in reading(r.paired):
        log.info("%s", line.removeprefix("- "))


REPORT_OUTPUTS = ["evaluation_results", "evaluation_summary", "evaluation_strata", "evaluation_paired",
                  "report_dynamics_plot", "report_frontier_plot", "report_strata_plot", "report_md", "evaluation_metrics",
                  "reference_hits", "summary_json"]
