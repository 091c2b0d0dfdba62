"""Thin Kedro glue for the RL stage; the work is in `adagrpo_pipeline.adagrpo`."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import torch

from adagrpo_pipeline.adagrpo.config import AdaGrpoParams, Variant
from adagrpo_pipeline.adagrpo.train import train_rl
from adagrpo_pipeline.policy.checkpoint import Checkpoint, policy_checkpoint
from adagrpo_pipeline.policy.data import load_checked_policy, seen_before_holdout
from adagrpo_pipeline.reward.model import load_ranker
from adagrpo_pipeline.reward.reward import RewardModel
from adagrpo_pipeline.semantic_ids.trie import SidTrie
from adagrpo_pipeline.tracking import metric_name

log = logging.getLogger(__name__)


def reward_model_from(ranker_model: Checkpoint, reward_calibration: dict[str, Any], device: torch.device | str = "cpu",
                      batch_size: int = 512) -> RewardModel:
    return RewardModel(load_ranker(ranker_model, device), reward_calibration["chosen"],
                       float(reward_calibration.get("invalid_reward", 0.0)), batch_size)


def make_train_node(variant: Variant, namespace: str, seed: int | None = None) -> Callable[..., tuple]:
    """The training node of one variant (and seed, else `params:adagrpo.seed`)."""

    def train_policy(
        sft_policy: Checkpoint,
        ranker_model: Checkpoint,
        reward_calibration: dict[str, Any],
        train_sequences: pd.DataFrame,
        valid_sequences: pd.DataFrame,
        interactions: pd.DataFrame,
        semantic_ids: pd.DataFrame,
        sid_vocab: dict[str, Any],
        sid_trie: dict,
        params: AdaGrpoParams,
    ) -> tuple[Checkpoint, dict[str, Checkpoint], pd.DataFrame]:
        p = params if seed is None else params.model_copy(update={"seed": seed})
        model, encoder = load_checked_policy(sft_policy, semantic_ids, sid_vocab, "cpu")
        reward_model = reward_model_from(ranker_model, reward_calibration)
        seen = seen_before_holdout(interactions, valid_sequences["user_id"].to_numpy(), held_out=2)

        def log_fn(metrics: dict[str, float], step: int) -> None:
            if mlflow.active_run() is not None:
                mlflow.log_metrics({metric_name(f"{namespace}.{k}"): v for k, v in metrics.items() if v == v}, step=step)

        res = train_rl(model, encoder, train_sequences, valid_sequences, SidTrie.from_tensors(sid_trie), reward_model,
                       variant, p, Path(p.state_dir) / namespace, seen_valid=seen, log_fn=log_fn)
        final = policy_checkpoint(res.model, encoder.layout, stage="rl", variant=variant.name, namespace=namespace,
                                  seed=p.seed, item_tokens_sha256=sft_policy.config.get("item_tokens_sha256"),
                                  step=p.max_steps)
        series = {f"step-{s:06d}": Checkpoint({**final.config, "step": s}, t) for s, t in res.checkpoints.items()}
        h = res.history
        first, last = h[h["step"] > 0].head(20), h[h["step"] > 0].tail(20)
        log.info("%s: admitted fraction %.3f (first 20 steps) -> %.3f (last 20), invalid share %.3f -> %.3f, "
                 "mean reward %.4f -> %.4f", namespace, first["admitted"].mean(), last["admitted"].mean(),
                 first["invalid_share"].mean(), last["invalid_share"].mean(), first["reward_mean"].mean(),
                 last["reward_mean"].mean())
        return final, series, h

    train_policy.__name__ = train_policy.__qualname__ = "train_policy"
    train_policy.__doc__ = f"RL fine-tuning, variant {variant.name}, namespace {namespace}."
    return train_policy
