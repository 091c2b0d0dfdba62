"""Ranking metrics for leave-one-out evaluation (one relevant item per user), of any ranker: lists
decoded by a policy or a full-catalog scorer (a reference retriever such as SASRec). Kedro-free;
the policy's decoding (`policy.evaluation`) and the retrievers (`sasrec`) both build on it."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import torch


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


def list_metrics(ranked: np.ndarray, targets: np.ndarray, ks: list[int], seen: list[set[int]] | None) -> dict[str, float]:
    """HR/NDCG@K as decoded, hallucination@K (share of the top-K that names no item) and, with
    `seen`, HR/NDCG@K after removing the user's history items (suffix `_filtered`)."""
    m = hr_ndcg(ranked, targets, ks)
    for k in ks:
        m[f"hallucination@{k}"] = float((ranked[:, :k] < 0).mean())
    if seen is not None:
        filtered = drop_seen(ranked, seen, max(ks))
        m.update({f"{k}_filtered": v for k, v in hr_ndcg(filtered, targets, ks).items()})
    return m


RewardFn = Callable[[list, torch.Tensor, np.ndarray], torch.Tensor]  # (histories, candidates, users) -> rewards


def list_quality(ranked: np.ndarray, histories: list, n_items: int, reward_fn: RewardFn | None, k: int = 10,
                 users: np.ndarray | None = None) -> dict[str, float]:
    """Catalog coverage of the top-k lists (distinct items named / catalog size) and, with a
    reward function, the mean reward of the top-k entries (invalid entries get its
    `invalid_reward`)."""
    top = ranked[:, :k]
    m = {f"coverage@{k}": float(len(np.unique(top[top >= 0])) / n_items)}
    if reward_fn is not None:
        m[f"reward@{k}"] = float(reward_fn(histories, torch.as_tensor(top), users).float().mean())
    return m


def catalog_rankings(scores: torch.Tensor, seen: list[set[int]], k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k item ids of each row of a full-catalog score matrix, as scored and with the row's
    `seen` items removed."""
    ranked = scores.topk(k, dim=1).indices.cpu().numpy()
    masked = scores.clone()
    rows = np.concatenate([np.full(len(s), i) for i, s in enumerate(seen)]) if seen else np.zeros(0, dtype=np.int64)
    cols = np.concatenate([np.fromiter(s, dtype=np.int64) for s in seen]) if seen else np.zeros(0, dtype=np.int64)
    masked[torch.as_tensor(rows, dtype=torch.long), torch.as_tensor(cols, dtype=torch.long)] = float("-inf")
    return ranked, masked.topk(k, dim=1).indices.cpu().numpy()


def _ranked_metrics(ranked: np.ndarray, filtered: np.ndarray, targets: np.ndarray, ks: list[int]) -> dict[str, float]:
    m = hr_ndcg(ranked, targets, ks)
    m.update({f"hallucination@{k}": 0.0 for k in ks})
    m.update({f"{key}_filtered": v for key, v in hr_ndcg(filtered, targets, ks).items()})
    return m


def retrieval_metrics(scores: torch.Tensor, targets: np.ndarray, seen: list[set[int]], ks: list[int]) -> dict[str, float]:
    """HR/NDCG@K of a full-catalog scorer, as ranked and with history items removed (same keys
    as `list_metrics`; a scorer never names a non-item)."""
    return _ranked_metrics(*catalog_rankings(scores, seen, max(ks)), targets, ks)


def evaluate_scores(scores: torch.Tensor, samples: pd.DataFrame, seen: list[set[int]], ks: list[int],
                    reward_fn: RewardFn | None = None) -> tuple[dict[str, float], pd.DataFrame]:
    """A full-catalog scorer (a reference retriever) on leave-one-out samples: the metrics of
    `retrieval_metrics`, coverage and mean reward of the top-10, and per-sample hits@10, from
    one ranking of the catalog."""
    targets = samples["target"].to_numpy()
    ranked, filtered = catalog_rankings(scores, seen, min(max(*ks, 10), scores.shape[1]))
    m = _ranked_metrics(ranked, filtered, targets, ks)
    m.update(list_quality(ranked, samples["history"].to_list(), scores.shape[1], reward_fn,
                          users=samples["user_id"].to_numpy()))
    return m, hits_table(samples["user_id"].to_numpy(), targets, ranked, filtered)
