"""Thin Kedro glue for `study`; the work is in `adagrpo_pipeline.study` and the stages' libraries."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from adagrpo_pipeline.adagrpo.config import AdaGrpoParams
from adagrpo_pipeline.adagrpo.diagnostics import GATE_COLUMNS, sample_diagnostics
from adagrpo_pipeline.adagrpo.runs import RunSpec
from adagrpo_pipeline.policy.data import load_checked_policy, seen_before_holdout
from adagrpo_pipeline.recdata.prepare import HELD_OUT_TEST
from adagrpo_pipeline.reward.config import RewardParams
from adagrpo_pipeline.reward.oracle import CALIBRATION, oracle_checkpoint
from adagrpo_pipeline.reward.reward import RewardModel
from adagrpo_pipeline.semantic_ids.trie import SidTrie
from adagrpo_pipeline.study.config import StudyParams, StudyPlan, setting
from adagrpo_pipeline.study.outcomes import list_outcomes, ranker_view
from adagrpo_pipeline.study.report import build_study_report
from adagrpo_pipeline.study.tables import StudyInputs, metric_values
from adagrpo_pipeline.training import SELECT_ON, best_step, resolve_device
from adagrpo_pipeline.training.checkpoint import Checkpoint

log = logging.getLogger(__name__)
STUDY_PARAMS = "params:study"


def ranker_inputs(users: pd.DataFrame, items: pd.DataFrame, noise: float | None, params: StudyParams,
                  ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The users and items tables as the ranker of one information level sees them."""
    rng = np.random.default_rng(params.attribute_seed)
    return ranker_view(users, noise, rng), ranker_view(items, noise, rng)


def oracle_reward(ground_truth_relevance: pd.DataFrame, users: pd.DataFrame, items: pd.DataFrame,
                  ) -> tuple[Checkpoint, dict[str, Any]]:
    """The oracle (the simulator's relevance) as a reward model's checkpoint and calibration."""
    return oracle_checkpoint(ground_truth_relevance, len(users), len(items), stage="study"), dict(CALIBRATION)


def _oracle(oracle_model: Checkpoint, reward_params: RewardParams, device) -> RewardModel:
    """The oracle reward with a hallucinated or already-consumed item at 0: the true utility."""
    return RewardModel.from_artifacts(oracle_model, CALIBRATION,
                                      reward_params.model_copy(update={"invalid_reward": 0.0, "seen_item_reward": "invalid"}),
                                      device)


def _outcomes(ckpt: Checkpoint, oracle_model: Checkpoint, test: pd.DataFrame, interactions: pd.DataFrame,
              semantic_ids: pd.DataFrame, sid_vocab: dict[str, Any], sid_trie: dict, params: StudyParams,
              reward_params: RewardParams) -> pd.DataFrame:
    device = resolve_device(params.evaluate.device)
    model, encoder = load_checked_policy(ckpt, semantic_ids, sid_vocab, device)
    seen = seen_before_holdout(interactions, test["user_id"].to_numpy(), held_out=HELD_OUT_TEST)
    return list_outcomes(model, encoder, SidTrie.from_tensors(sid_trie), test, seen, _oracle(oracle_model, reward_params, device),
                         params.evaluate.beams, params.evaluate.batch_size, device)


def evaluate_sft(sft_policy: Checkpoint, oracle_model: Checkpoint, test_sequences: pd.DataFrame,
                 interactions: pd.DataFrame, semantic_ids: pd.DataFrame, sid_vocab: dict[str, Any], sid_trie: dict,
                 params: StudyParams, reward_params: RewardParams) -> pd.DataFrame:
    """The SFT policy's per-user test outcomes (`adagrpo_pipeline.study.outcomes`)."""
    out = _outcomes(sft_policy, oracle_model, test_sequences, interactions, semantic_ids, sid_vocab, sid_trie, params,
                    reward_params)
    log.info("SFT on test: hr@10_filtered %.4f, utility@10 %.4f, hallucination@10 %.4f",
             out["hit@10_filtered"].mean(), out["utility@10"].mean(), out["hallucination@10"].mean())
    return out.assign(step=int(sft_policy.config.get("best_step", 0)))


def sft_diagnostics(sft_policy: Checkpoint, ranker_model: Checkpoint, reward_calibration: dict[str, Any],
                    oracle_model: Checkpoint, test_sequences: pd.DataFrame, semantic_ids: pd.DataFrame,
                    sid_vocab: dict[str, Any], sid_trie: dict, rl_params: AdaGrpoParams, reward_params: RewardParams,
                    params: StudyParams) -> pd.DataFrame:
    """Per test sample, the SFT policy's diagnostics with this ranker and, on the very same
    rollouts (same seed), with the oracle in its place: the strata of the premise test."""
    device = resolve_device(params.evaluate.device)
    model, encoder = load_checked_policy(sft_policy, semantic_ids, sid_vocab, device)
    ranker = RewardModel.from_artifacts(ranker_model, reward_calibration, reward_params, device)
    oracle = RewardModel.from_artifacts(oracle_model, CALIBRATION, reward_params, device)
    diag = sample_diagnostics(model, encoder, test_sequences, SidTrie.from_tensors(sid_trie), ranker, rl_params.rollout,
                              rl_params.k_pol, rl_params.k_rew, rl_params.seed, params.evaluate.batch_size, device,
                              gate_reward=oracle)
    out = diag.rename(columns={f"{c}_gate": f"{c}_oracle" for c in GATE_COLUMNS})
    log.info("SFT on test: admitted %.3f by the ranker's gate, %.3f by the oracle's; pass_rew %.3f vs %.3f; "
             "agreement of pass_rew %.3f", out["admitted"].mean(), out["admitted_oracle"].mean(), out["pass_rew"].mean(),
             out["pass_rew_oracle"].mean(), (out["pass_rew"] == out["pass_rew_oracle"]).mean())
    return out


def evaluate_run(checkpoints: dict[str, Checkpoint], training_history: pd.DataFrame, oracle_model: Checkpoint,
                 test_sequences: pd.DataFrame, interactions: pd.DataFrame, semantic_ids: pd.DataFrame,
                 sid_vocab: dict[str, Any], sid_trie: dict, params: StudyParams, reward_params: RewardParams,
                 run: RunSpec) -> pd.DataFrame:
    """Per-user test outcomes of a run's final checkpoint and of the checkpoint chosen on valid
    (the training loop's validation of every checkpoint, `training.selection`; it may be step 0,
    the SFT policy; with no validation of a saved checkpoint, the final one): only what selection
    needs is decoded on test."""
    by_step = {int(c.config["step"]): c for c in checkpoints.values()}
    final = max(by_step)
    valid = training_history[training_history["step"].isin(by_step)].dropna(subset=[SELECT_ON])
    best = best_step(valid) if not valid.empty else final
    frames = []
    for checkpoint, step in (("final", final), ("best", best)):
        if checkpoint == "best" and best == final:
            frames.append(frames[0].assign(checkpoint="best"))
            continue
        out = _outcomes(by_step[step], oracle_model, test_sequences, interactions, semantic_ids, sid_vocab, sid_trie,
                        params, reward_params)
        frames.append(out.assign(checkpoint=checkpoint, step=step))
    f = frames[0]
    log.info("%s: final (step %d) hr@10_filtered %.4f, utility@10 %.4f, hallucination@10 %.4f; best on valid: step %d",
             run.namespace, final, f["hit@10_filtered"].mean(), f["utility@10"].mean(), f["hallucination@10"].mean(), best)
    return pd.concat(frames, ignore_index=True)


@dataclass(frozen=True)
class ReportNode:
    """The study's `report` node, made by the pipeline factory from the plan it built the study
    from: `inputs` names every dataset `report` takes, in the order it takes them (per level, per
    level × information, per run), so the node reads no dataset name."""

    plan: StudyPlan

    def _slots(self) -> list[tuple[str, Any, str]]:
        """(part of `StudyInputs`, its key, dataset) of every input after `params:study`, in call order."""
        slots: list[tuple[str, Any, str]] = []
        for b in self.plan.params.levels:
            level = setting(b.name)
            slots += [("sft", b.name, f"{level}.sft_outcomes"), ("exposure", b.name, f"{level}.exposure_metrics")]
            for info in self.plan.params.information:
                ranker, key = setting(b.name, info.name), (b.name, info.name)
                slots += [("diagnostics", key, f"{ranker}.sft_diagnostics"),
                          ("informativeness", key, f"{ranker}.reward_informativeness"),
                          ("deciles", key, f"{ranker}.ranker_relevance_by_decile")]
        for run in self.plan.runs:
            slots += [("outcomes", run, f"{run.spec.namespace}.study_outcomes"),
                      ("histories", run, f"{run.spec.namespace}.training_history")]
        return slots

    def inputs(self) -> list[str]:
        return [STUDY_PARAMS, *(dataset for _, _, dataset in self._slots())]

    def report(self, params: StudyParams, *datasets: Any) -> tuple[dict[str, Any], pd.DataFrame, pd.DataFrame, Figure,
                                                                    Figure, str]:
        """summary.json, the summary and premise tables, the Δ figure, the strata figure and study.md."""
        if params != self.plan.params:
            raise ValueError("params:study differs from the parameters the study pipeline was built from: "
                             "build the pipelines again from this configuration")
        parts: dict[str, dict[Any, Any]] = {part: {} for part in ("sft", "exposure", "diagnostics", "informativeness",
                                                                  "deciles", "outcomes", "histories")}
        for (part, key, _), value in zip(self._slots(), datasets, strict=True):
            parts[part][key] = value
        parts["exposure"] = {level: metric_values(table) for level, table in parts["exposure"].items()}
        r = build_study_report(StudyInputs(self.plan, **parts), params)
        return r.summary, r.table, r.premise, r.delta_figure, r.strata_figure, r.markdown
