"""Glue between the ingest/tokenize tables and the policy: item tokens and seen items."""

from __future__ import annotations

import numpy as np
import pandas as pd

from adagrpo_pipeline.semantic_ids.embeddings import drop_held_out
from adagrpo_pipeline.semantic_ids.vocab import SidVocab


def item_token_table(semantic_ids: pd.DataFrame, vocab: SidVocab) -> np.ndarray:
    """(n_items, L) token ids, row = item id (semantic_ids must list items 0..n-1 in order)."""
    if not np.array_equal(semantic_ids["item_id"].to_numpy(), np.arange(len(semantic_ids))):
        raise ValueError("semantic_ids must hold item ids 0..n-1 in order")
    return vocab.encode(np.stack(semantic_ids["codes"].to_numpy()).astype(np.int64))


def seen_before_holdout(interactions: pd.DataFrame, users: np.ndarray, held_out: int) -> list[set[int]]:
    """Items each user interacted with before their last `held_out` events (2 = before the
    valid target, 1 = before the test target); `interactions` ordered by user then time."""
    seen = drop_held_out(interactions, held_out).groupby("user_id")["item_id"].apply(set)
    return [seen.get(u, set()) for u in users]
