"""What the controlled study measures per test user (docs/architecture.md, "The controlled
study"): the ranker's view of the latent vectors, and each policy's list outcomes with the
simulator's truth. Kedro-free.

Per test user, from one unconstrained beam search of `beams` sequences (as `evaluate` decodes):
- `hit@10`, `hit@10_filtered`, `ndcg@10_filtered` of the held-out item (as decoded; with the
  user's history items and invalid sequences removed, the list filled from the deeper beams);
- `hallucination@10`: the share of the decoded top 10 that names no item;
- `utility@10`: the **true utility of the list**, the mean ground-truth relevance of the decoded
  top 10, where a hallucinated slot and an item already in the history count 0 (the oracle
  reward with `seen_item_reward: invalid` and `invalid_reward: 0`);
- `utility@10_filtered`: the same over the history-filtered top 10 (empty slots 0).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from adagrpo_pipeline.metrics import drop_seen, hit_rank, hits_table
from adagrpo_pipeline.policy.evaluation import decode_lists
from adagrpo_pipeline.policy.model import HistoryEncoder
from adagrpo_pipeline.recdata.simulator import LATENT_PREFIX
from adagrpo_pipeline.reward.reward import RewardModel
from adagrpo_pipeline.semantic_ids.trie import SidTrie


def ranker_view(table: pd.DataFrame, noise: float | None, rng: np.random.Generator) -> pd.DataFrame:
    """`table` (users or items) as a ranker at one information level sees it: the latent columns
    (`latent_*`) dropped (`noise` None), or each plus Gaussian noise of `noise` times that
    column's std (0 = the exact latent vector). Other columns unchanged."""
    latent = [c for c in table.columns if c.startswith(LATENT_PREFIX)]
    if noise is None:
        return table.drop(columns=latent)
    if not latent:
        raise ValueError(f"the table has no {LATENT_PREFIX}* columns to show the ranker: simulate with "
                         "latent_attributes: true (the study does)")
    out = table.copy()
    for c in latent:
        x = pd.to_numeric(out[c], errors="raise").to_numpy(np.float64)
        noisy = x + noise * x.std() * rng.standard_normal(len(x))
        out[c] = noisy.astype(str) if out[c].dtype == object or pd.api.types.is_string_dtype(out[c]) else noisy
    return out


def list_outcomes(model, encoder: HistoryEncoder, trie: SidTrie, samples: pd.DataFrame, seen: list[set[int]],
                  oracle: RewardModel, beams: int, batch_size: int, device: torch.device) -> pd.DataFrame:
    """One row per sample (module docstring)."""
    targets = samples["target"].to_numpy()
    users = samples["user_id"].to_numpy()
    histories = samples["history"].to_list()
    ranked = decode_lists(model, encoder, samples, trie, beams, False, batch_size, device)
    top, filtered = ranked[:, :10], drop_seen(ranked, seen, 10)
    rank_f = hit_rank(filtered, targets)
    utility = oracle(histories, torch.as_tensor(top), users).float().cpu().numpy()
    kept = filtered >= 0
    utility_f = np.where(kept, oracle(histories, torch.as_tensor(filtered), users).float().cpu().numpy(), 0.0)
    return hits_table(users, targets, ranked, filtered).assign(**{
        "ndcg@10_filtered": np.where(rank_f >= 0, 1.0 / np.log2(np.maximum(rank_f, 0) + 2.0), 0.0),
        "hallucination@10": (top < 0).mean(axis=1),
        "utility@10": utility.mean(axis=1),
        "utility@10_filtered": utility_f.mean(axis=1),
    })
