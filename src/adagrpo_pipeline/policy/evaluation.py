"""Offline evaluation of a policy on leave-one-out samples (docs/architecture.md,
"Evaluation protocol")."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from adagrpo_pipeline.semantic_ids.trie import SidTrie
from adagrpo_pipeline.training.distributed import Ranks

from .decoding import beam_search
from .metrics import drop_seen, hits_table, hr_ndcg
from .model import HistoryEncoder


def decode_lists(model, encoder: HistoryEncoder, samples: pd.DataFrame, trie: SidTrie, beams: int, constrained: bool,
                 batch_size: int, device: torch.device, ranks: Ranks = Ranks()) -> np.ndarray:
    """(n, beams) item ids ranked best first; -1 where a sequence names no item. With several
    `ranks`, each decodes its part of the samples and every rank gets all the lists."""
    model.eval()
    trie = trie.to(device)
    lo_part, hi_part = ranks.bounds(len(samples))
    out = np.empty((hi_part - lo_part, beams), dtype=np.int64)
    users = samples["user_id"].to_numpy()[lo_part:hi_part]
    histories = samples["history"].to_list()[lo_part:hi_part]
    for lo in tqdm(range(0, len(out), batch_size), desc="decoding", unit="batch", leave=False,
                   disable=None if ranks.main else True):
        x, mask = encoder(histories[lo : lo + batch_size], users[lo : lo + batch_size])
        res = beam_search(model, x.to(device), mask.to(device), beams, trie.depth,
                          trie=trie if constrained else None, lookup_trie=trie)
        out[lo : lo + batch_size] = res.items.cpu().numpy()
    return ranks.gather(out, len(samples))


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


def validation_metrics(model, encoder: HistoryEncoder, trie: SidTrie, valid: pd.DataFrame, seen: list[set[int]] | None,
                       beams: int, device: torch.device, reward_fn: RewardFn | None = None,
                       ranks: Ranks = Ranks()) -> dict[str, float]:
    """What the training loops watch on the validation split, keys prefixed `valid_`: HR/NDCG@10
    as decoded and history-filtered, hallucination@10, coverage@10 and, with a reward function,
    the mean reward of the top-10, all from unconstrained beam search (the users decoded in
    parts over the `ranks`, the metrics the same on every rank)."""
    ranked = decode_lists(model, encoder, valid, trie, beams, constrained=False, batch_size=256, device=device,
                          ranks=ranks)
    m = list_metrics(ranked, valid["target"].to_numpy(), [10], seen)
    m.update(list_quality(ranked, valid["history"].to_list(), len(encoder.item_tokens), reward_fn,
                          users=valid["user_id"].to_numpy()))
    return {f"valid_{k}": v for k, v in m.items()}


def evaluate_policy(model, encoder: HistoryEncoder, trie: SidTrie, samples: pd.DataFrame, ks: list[int], beams: int,
                    batch_size: int, device: torch.device, seen: list[set[int]] | None = None,
                    reward_fn: RewardFn | None = None, constrained: bool = True) -> tuple[dict[str, float], np.ndarray]:
    """Unconstrained beam search (invalid = miss, hallucination visible) and, with
    `constrained`, constrained beam search on the same samples; coverage and mean reward of the
    unconstrained top-10. Returns the metrics and the unconstrained ranked lists."""
    targets = samples["target"].to_numpy()
    free = decode_lists(model, encoder, samples, trie, beams, False, batch_size, device)
    metrics = list_metrics(free, targets, ks, seen)
    if constrained:
        cm = list_metrics(decode_lists(model, encoder, samples, trie, beams, True, batch_size, device), targets, ks, seen)
        metrics.update({f"constrained_{k}": v for k, v in cm.items() if "hallucination" not in k})
    metrics.update(list_quality(free, samples["history"].to_list(), len(encoder.item_tokens), reward_fn,
                                users=samples["user_id"].to_numpy()))
    return metrics, free


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
    as `policy.evaluation.list_metrics`; a scorer never names a non-item)."""
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
