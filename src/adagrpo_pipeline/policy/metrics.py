"""Ranking metrics for leave-one-out evaluation (one relevant item per user)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def hit_rank(ranked: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """0-based rank of each target in its ranked list, or -1 when absent. `ranked`: (n, K)."""
    hits = ranked == np.asarray(targets)[:, None]
    return np.where(hits.any(axis=1), hits.argmax(axis=1), -1)


def hr_ndcg(ranked: np.ndarray, targets: np.ndarray, ks: list[int]) -> dict[str, float]:
    """HR@K and NDCG@K (single relevant item: 1 / log2(rank + 2) if within K)."""
    rank = hit_rank(ranked, targets)
    out = {}
    for k in ks:
        within = (rank >= 0) & (rank < k)
        out[f"hr@{k}"] = float(within.mean())
        out[f"ndcg@{k}"] = float(np.where(within, 1.0 / np.log2(np.maximum(rank, 0) + 2.0), 0.0).mean())
    return out


def drop_seen(ranked: np.ndarray, seen: list[set[int]] | list[np.ndarray], k: int, fill: int = -1) -> np.ndarray:
    """Per row, the first `k` entries of `ranked` that are not in that row's `seen` set (and not
    -1), padded with `fill`."""
    out = np.full((len(ranked), k), fill, dtype=np.int64)
    for row, (items, s) in enumerate(zip(ranked, seen, strict=True)):
        s = s if isinstance(s, set) else set(np.asarray(s).tolist())
        kept = [i for i in items.tolist() if i >= 0 and i not in s][:k]
        out[row, : len(kept)] = kept
    return out


def popularity_ranking(popularity: np.ndarray, n_users: int, k: int) -> np.ndarray:
    """The same top-`k` most popular items for every user (ties: lower item id first)."""
    top = np.lexsort((np.arange(len(popularity)), -popularity))[:k]
    return np.tile(top, (n_users, 1))


def hits_table(users: np.ndarray, targets: np.ndarray, ranked: np.ndarray, filtered: np.ndarray,
               k: int = 10) -> pd.DataFrame:
    """Per user: whether the target is in the top-k as ranked (`hit@k`) and with history items
    removed (`hit@k_filtered`), as 0/1 floats: what paired statistics between models need."""
    return pd.DataFrame({"user_id": np.asarray(users), f"hit@{k}": (hit_rank(ranked[:, :k], targets) >= 0).astype(float),
                         f"hit@{k}_filtered": (hit_rank(filtered[:, :k], targets) >= 0).astype(float)})
