"""Thin Kedro glue for `sft`; the work is in `adagrpo_pipeline.policy`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from adagrpo_pipeline.adagrpo.runs import ReferenceSpec
from adagrpo_pipeline.policy.checkpoint import policy_checkpoint
from adagrpo_pipeline.policy.config import SftParams
from adagrpo_pipeline.policy.data import (
    item_token_table,
    seen_before_holdout,
    tokens_digest,
)
from adagrpo_pipeline.policy.model import HistoryEncoder, PolicyLayout, build_policy
from adagrpo_pipeline.policy.sft import train_sft
from adagrpo_pipeline.recdata.prepare import HELD_OUT_VALID
from adagrpo_pipeline.semantic_ids.trie import SidTrie
from adagrpo_pipeline.semantic_ids.vocab import SidVocab
from adagrpo_pipeline.tracking import metrics_payload, mlflow_logger
from adagrpo_pipeline.training.checkpoint import Checkpoint
from adagrpo_pipeline.training.samples import ParquetSamples
from adagrpo_pipeline.training.selection import SELECT_ON


def train_sft_policy(
    train_sequences: pd.DataFrame | ParquetSamples,
    valid_sequences: pd.DataFrame,
    interactions: pd.DataFrame,
    semantic_ids: pd.DataFrame,
    sid_vocab: dict[str, Any],
    sid_trie: dict,
    params: SftParams,
    log_prefix: str = "sft",
) -> tuple[Checkpoint, pd.DataFrame, dict[str, Any]]:
    """The policy trained by next-item NLL; its best validation step's weights."""
    vocab = SidVocab.from_json(sid_vocab)
    layout = PolicyLayout(vocab, params.max_items, params.user_buckets, params.encoder_input)
    tokens = item_token_table(semantic_ids, vocab)
    encoder = HistoryEncoder(layout, tokens)
    model = build_policy(layout, params.model, params.seed)
    seen = seen_before_holdout(interactions, valid_sequences["user_id"].to_numpy(), held_out=HELD_OUT_VALID)
    result = train_sft(model, encoder, train_sequences, valid_sequences, SidTrie.from_tensors(sid_trie), params,
                       seen_valid=seen, log_fn=mlflow_logger(log_prefix))
    best = result.history.loc[result.history["step"] == result.best_step].iloc[0] if result.best_step > 0 else None
    summary = {"best_step": result.best_step, "resumed_from": result.resumed_from, "stopped_early": int(result.stopped_early)}
    if best is not None:
        summary[f"best_{SELECT_ON}"] = float(best[SELECT_ON])
    ckpt = policy_checkpoint(result.model, layout, stage="sft", seed=params.seed, item_tokens_sha256=tokens_digest(tokens),
                             **summary)
    return ckpt, result.history, metrics_payload(summary, prefix=f"{log_prefix}.")


def train_sft_policy_seed(train_sequences: pd.DataFrame | ParquetSamples, valid_sequences: pd.DataFrame, interactions: pd.DataFrame,
                          semantic_ids: pd.DataFrame, sid_vocab: dict[str, Any], sid_trie: dict, params: SftParams,
                          run: ReferenceSpec) -> tuple[Checkpoint, pd.DataFrame, dict[str, Any]]:
    """The same training with the seed of `run` (a reference of `compare`), its resumable state
    in `<state_dir>/<namespace>`."""
    seeded = params.model_copy(update={"seed": run.seed, "state_dir": str(Path(params.state_dir) / run.namespace)})
    return train_sft_policy(train_sequences, valid_sequences, interactions, semantic_ids, sid_vocab, sid_trie, seeded,
                            log_prefix=run.namespace)
