"""Offline evaluation of a policy on leave-one-out samples (docs/architecture.md,
"Evaluation protocol")."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from adagrpo_pipeline.metrics import RewardFn, list_metrics, list_quality
from adagrpo_pipeline.semantic_ids.trie import SidTrie
from adagrpo_pipeline.training.distributed import Ranks

from .decoding import beam_search
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
