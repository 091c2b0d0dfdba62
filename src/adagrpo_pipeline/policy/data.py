"""Glue between the ingest/tokenize tables and the policy: item tokens and seen items."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import torch
from transformers import T5ForConditionalGeneration

from adagrpo_pipeline.recdata.prepare import drop_held_out
from adagrpo_pipeline.semantic_ids.vocab import SidVocab

from .checkpoint import Checkpoint, load_policy
from .model import HistoryEncoder


def item_token_table(semantic_ids: pd.DataFrame, vocab: SidVocab) -> np.ndarray:
    """(n_items, L) token ids, row = item id (semantic_ids must list items 0..n-1 in order)."""
    if not np.array_equal(semantic_ids["item_id"].to_numpy(), np.arange(len(semantic_ids))):
        raise ValueError("semantic_ids must hold item ids 0..n-1 in order")
    return vocab.encode(np.stack(semantic_ids["codes"].to_numpy()).astype(np.int64))


def seen_before_holdout(interactions: pd.DataFrame, users: np.ndarray, held_out: int) -> list[set[int]]:
    """Items each user interacted with before their last `held_out` events (`HELD_OUT_VALID`:
    before the valid target, `HELD_OUT_TEST`: before the test target); `interactions` ordered by
    user then time."""
    seen = drop_held_out(interactions, held_out).groupby("user_id")["item_id"].apply(set)
    return [seen.get(u, set()) for u in users]


def tokens_digest(item_tokens: np.ndarray) -> str:
    """sha256 of the item -> token table: identifies the semantic IDs a policy was trained on."""
    return hashlib.sha256(np.ascontiguousarray(item_tokens, dtype=np.int64).tobytes()).hexdigest()


def check_same_semantic_ids(config: dict, item_tokens: np.ndarray) -> None:
    """Refuse to score a policy against semantic IDs other than those it was trained on."""
    trained_on = config.get("item_tokens_sha256")
    if trained_on is not None and trained_on != tokens_digest(item_tokens):
        raise ValueError(
            "the policy checkpoint was trained on other semantic IDs than the current `semantic_ids` "
            "(did `tokenize` run again since?): re-run `sft`, or pick matching versions with "
            "--load-versions=semantic_ids:<version>,sid_trie:<version>,sid_vocab:<version>"
        )


def load_checked_policy(ckpt: Checkpoint, semantic_ids: pd.DataFrame, sid_vocab: dict,
                        device: torch.device | str = "cpu") -> tuple[T5ForConditionalGeneration, HistoryEncoder]:
    """A policy checkpoint and its history encoder, after checking that it was trained on the
    current semantic-ID vocabulary and item tokens."""
    model, layout = load_policy(ckpt, device)
    if layout.sid_vocab != SidVocab.from_json(sid_vocab):
        raise ValueError("the policy checkpoint was trained on another semantic-ID vocabulary than `sid_vocab`")
    tokens = item_token_table(semantic_ids, layout.sid_vocab)
    check_same_semantic_ids(ckpt.config, tokens)
    return model, HistoryEncoder(layout, tokens)
