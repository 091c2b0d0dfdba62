"""Thin Kedro glue for the RL stage; the work is in `adagrpo_pipeline.adagrpo`."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd

from adagrpo_pipeline.adagrpo.config import AdaGrpoParams
from adagrpo_pipeline.adagrpo.runs import RunSpec
from adagrpo_pipeline.adagrpo.train import train_rl
from adagrpo_pipeline.adagrpo.tuning import apply_tuned
from adagrpo_pipeline.policy.checkpoint import policy_checkpoint
from adagrpo_pipeline.policy.data import load_checked_policy, seen_before_holdout
from adagrpo_pipeline.recdata.prepare import HELD_OUT_VALID
from adagrpo_pipeline.reward.config import RewardParams
from adagrpo_pipeline.reward.oracle import CALIBRATION as ORACLE_CALIBRATION
from adagrpo_pipeline.reward.reward import RewardModel
from adagrpo_pipeline.semantic_ids.trie import SidTrie
from adagrpo_pipeline.tracking import mlflow_logger
from adagrpo_pipeline.training.checkpoint import Checkpoint
from adagrpo_pipeline.training.samples import ParquetSamples

log = logging.getLogger(__name__)


def train_policy(
    sft_policy: Checkpoint,
    ranker_model: Checkpoint,
    reward_calibration: dict[str, Any],
    train_sequences: pd.DataFrame | ParquetSamples,
    valid_sequences: pd.DataFrame,
    interactions: pd.DataFrame,
    semantic_ids: pd.DataFrame,
    sid_vocab: dict[str, Any],
    sid_trie: dict,
    params: AdaGrpoParams,
    reward_params: RewardParams,
    run: RunSpec,
    tuned_settings: dict[str, Any] | None = None,
    oracle_model: Checkpoint | None = None,
) -> tuple[Checkpoint, dict[str, Checkpoint], pd.DataFrame]:
    """RL fine-tuning of the SFT policy as `run` says (variant, seed), with the variant's tuned
    settings when given (`compare`): the final policy, the series of checkpoints (streamed from
    the files the loop wrote) and the training history. `oracle_model` (the controlled study):
    the simulator's relevance, which ranks y* for `oracle_gate`'s d_rew and scores the
    validation lists (`valid_reward@10` = their true utility)."""
    if tuned_settings is not None:
        params = apply_tuned(params, tuned_settings, run.variant)
        log.info("%s: tuned settings %s", run.namespace, tuned_settings["variants"][run.variant.name]["params"])
    model, encoder = load_checked_policy(sft_policy, semantic_ids, sid_vocab, "cpu")
    reward = RewardModel.from_artifacts(ranker_model, reward_calibration, reward_params)
    oracle = None if oracle_model is None else RewardModel.from_artifacts(oracle_model, ORACLE_CALIBRATION, reward_params)
    seen = seen_before_holdout(interactions, valid_sequences["user_id"].to_numpy(), held_out=HELD_OUT_VALID)
    res = train_rl(model, encoder, train_sequences, valid_sequences, SidTrie.from_tensors(sid_trie), reward, run, params,
                   Path(params.state_dir) / run.namespace, seen_valid=seen, log_fn=mlflow_logger(run.namespace),
                   gate_reward=oracle if run.kind == "oracle_gate" else None, eval_reward=oracle)
    final = policy_checkpoint(res.model, encoder.layout, stage="rl", variant=run.variant.name, namespace=run.namespace,
                              seed=run.seed, item_tokens_sha256=sft_policy.config.get("item_tokens_sha256"),
                              step=params.max_steps)
    series = {f"step-{s:06d}": Checkpoint.from_file({**final.config, "step": s}, f) for s, f in res.checkpoints.items()}
    h = res.history[res.history["step"] > 0]
    first, last = h.head(20), h.tail(20)
    log.info("%s: admitted fraction %.3f (first 20 steps) -> %.3f (last 20), invalid share %.3f -> %.3f, "
             "mean reward %.4f -> %.4f", run.namespace, first["admitted"].mean(), last["admitted"].mean(),
             first["invalid_share"].mean(), last["invalid_share"].mean(), first["reward_mean"].mean(),
             last["reward_mean"].mean())
    return final, series, res.history
