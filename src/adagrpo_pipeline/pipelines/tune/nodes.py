"""Thin Kedro glue for `tune`; the work is in `adagrpo_pipeline.adagrpo.tuning`."""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

import matplotlib
import mlflow
import pandas as pd
from matplotlib.figure import Figure

from adagrpo_pipeline.adagrpo.config import AdaGrpoParams
from adagrpo_pipeline.adagrpo.runs import RunSpec
from adagrpo_pipeline.adagrpo.train import train_rl
from adagrpo_pipeline.adagrpo.tuning import GATE_KNOBS, SELECT_ON, TuneParams, tune_variant
from adagrpo_pipeline.policy.data import load_checked_policy, seen_before_holdout
from adagrpo_pipeline.recdata.prepare import HELD_OUT_VALID
from adagrpo_pipeline.reward.config import RewardParams
from adagrpo_pipeline.reward.reward import RewardModel
from adagrpo_pipeline.semantic_ids.trie import SidTrie
from adagrpo_pipeline.tracking import metric_name, metrics_payload
from adagrpo_pipeline.training.checkpoint import Checkpoint
from adagrpo_pipeline.training.samples import ParquetSamples

log = logging.getLogger(__name__)


def _log_trial(variant: str, number: int, knobs: dict[str, Any], score: float, step: int) -> None:
    """One MLflow child run per trial, under the `kedro run`'s run."""
    if mlflow.active_run() is None:
        return
    with mlflow.start_run(run_name=f"tune.{variant}.trial_{number}", nested=True):
        mlflow.set_tags({"tune.variant": variant, "tune.trial": str(number)})
        mlflow.log_params(knobs)
        mlflow.log_metrics({metric_name(SELECT_ON): score, "best_step": float(step)})


def tune_run_variant(sft_policy: Checkpoint, ranker_model: Checkpoint, reward_calibration: dict[str, Any],
                     train_sequences: pd.DataFrame | ParquetSamples, valid_sequences: pd.DataFrame, interactions: pd.DataFrame,
                     semantic_ids: pd.DataFrame, sid_vocab: dict[str, Any], sid_trie: dict, params: AdaGrpoParams,
                     reward_params: RewardParams, tune_params: TuneParams, run: RunSpec,
                     gate: dict[str, Any] | None = None) -> dict[str, Any]:
    """`tune.trials` trials of the run's variant from the SFT policy; the controls of the gate
    take AdaGRPO's chosen k_pol and k_rew (`gate`)."""
    model, encoder = load_checked_policy(sft_policy, semantic_ids, sid_vocab, "cpu")
    reward = RewardModel.from_artifacts(ranker_model, reward_calibration, reward_params)
    seen = seen_before_holdout(interactions, valid_sequences["user_id"].to_numpy(), held_out=HELD_OUT_VALID)
    trie = SidTrie.from_tensors(sid_trie)

    def run_trial(p: AdaGrpoParams, state_dir: Path) -> pd.DataFrame:
        return train_rl(copy.deepcopy(model), encoder, train_sequences, valid_sequences, trie, reward, run, p,
                        state_dir, seen_valid=seen).history

    fixed = {k: gate["params"][k] for k in GATE_KNOBS} if gate is not None else None
    tuned = tune_variant(run.variant, run_trial, params, tune_params, fixed, _log_trial)
    log.info("tune %s: chose %s (valid %s %.4f at step %d over %d trials)", tuned.variant, tuned.params, SELECT_ON,
             tuned.score, tuned.best_step, tune_params.trials)
    return {"variant": tuned.variant, "params": tuned.params, "score": tuned.score, "best_step": tuned.best_step,
            "trials": tuned.trials.to_dict(orient="records")}


def choose_settings(tune_params: TuneParams, params: AdaGrpoParams,
                    **per_variant: dict[str, Any]) -> tuple[dict[str, Any], pd.DataFrame, Figure, dict[str, Any]]:
    """The chosen settings of every variant (what `compare` reads), every trial, a plot of the
    trials' scores, and the chosen scores for MLflow."""
    tuned = list(per_variant.values())
    settings = {"metric": SELECT_ON, "split": "valid", "budget": {"trials_per_variant": tune_params.trials,
                "steps_per_trial": tune_params.steps(params), "seed": params.seed,
                "eval_users": tune_params.eval_users},
                "variants": {t["variant"]: {"params": t["params"], "score": t["score"], "best_step": t["best_step"]}
                             for t in tuned}}
    trials = pd.concat([pd.DataFrame(t["trials"]) for t in tuned], ignore_index=True)
    fig = Figure(figsize=(8, 4.5))
    ax = fig.subplots()
    cmap = matplotlib.colormaps["tab10"]
    for i, t in enumerate(tuned):
        rows = trials[trials["variant"] == t["variant"]]
        ax.plot(rows["trial"], rows["score"], marker="o", color=cmap(i % 10), label=t["variant"])
    start = trials["score_at_start"].dropna()
    if len(start):
        ax.axhline(float(start.iloc[0]), color="black", lw=0.8, ls="--", label="SFT (step 0)")
    ax.set(xlabel="trial", ylabel=f"best {SELECT_ON} over the trial's steps",
           title=f"Tuning on valid: {tune_params.trials} trials per variant, same budget")
    ax.legend(fontsize=8)
    fig.tight_layout()
    metrics = metrics_payload({f"{t['variant']}.{SELECT_ON}": t["score"] for t in tuned})  # MLflow: tuning_metrics.<variant>.*
    return settings, trials, fig, metrics
