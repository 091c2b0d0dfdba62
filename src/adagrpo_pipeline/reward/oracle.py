"""The oracle reward of the controlled study (docs/architecture.md, "The controlled study"): the
simulator's ground-truth relevance used where the ranker would be.

`OracleRanker` has the ranker's scoring interface (`RewardModel` calls it as it calls the
SASRec or feature ranker) and scores a (user, item) pair by the logit of its true relevance,
so that `RewardModel`'s uncalibrated path (a sigmoid) returns the relevance itself: the oracle
reward is already a probability in [0, 1] and needs no calibration. Its checkpoint (kind
`oracle_relevance`) holds the relevance matrix, so every node that loads a ranker loads it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from adagrpo_pipeline.training.checkpoint import Checkpoint

KIND = "oracle_relevance"
EPS = 1e-6  # relevance is clipped to [EPS, 1 - EPS] before the logit (sigmoid(logit(r)) = r within float32)
CALIBRATION = {"chosen": None, "method": "oracle: the relevance is a probability, sigmoid(logit(r)) = r"}


class OracleRanker(nn.Module):
    """Scores = logit of the true relevance of (user, item): a ranker that knows the truth."""

    reads_users = True
    users_needed = True

    def __init__(self, relevance: torch.Tensor, max_history: int = 1):
        super().__init__()
        rel = torch.as_tensor(relevance, dtype=torch.float32)
        if rel.dim() != 2:
            raise ValueError(f"the oracle needs a (users, items) relevance matrix, got shape {tuple(rel.shape)}")
        self.register_buffer("logits", torch.logit(rel.clamp(EPS, 1 - EPS)).float())
        self.n_items = int(rel.shape[1])
        self.max_history = max_history  # histories are packed by the caller; the oracle reads none

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor, items: torch.Tensor,
                users: torch.Tensor | None = None) -> torch.Tensor:
        if users is None:
            raise ValueError("the oracle reward needs the samples' user ids")
        return self.logits[users.long()[:, None], items.clamp(min=0).long()]

    def score_all(self, state: torch.Tensor) -> torch.Tensor:  # pragma: no cover - not a retriever
        raise TypeError("the oracle is a reward, not a retriever")


def relevance_matrix(ground_truth_relevance: pd.DataFrame, n_users: int, n_items: int) -> np.ndarray:
    """(n_users, n_items) float32 matrix of the `ground_truth_relevance` table; every pair must
    be present exactly once."""
    rel = ground_truth_relevance
    if len(rel) != n_users * n_items:
        raise ValueError(f"ground_truth_relevance has {len(rel)} rows, expected {n_users} users x {n_items} items = "
                         f"{n_users * n_items}: the oracle needs the synthetic source's full relevance table")
    m = np.full((n_users, n_items), np.nan, dtype=np.float32)
    m[rel["user_id"].to_numpy(np.int64), rel["item_id"].to_numpy(np.int64)] = rel["relevance"].to_numpy(np.float32)
    if np.isnan(m).any():
        raise ValueError("ground_truth_relevance misses some (user, item) pairs (duplicates elsewhere)")
    return m


def oracle_checkpoint(ground_truth_relevance: pd.DataFrame, n_users: int, n_items: int, **metadata: Any) -> Checkpoint:
    model = OracleRanker(torch.as_tensor(relevance_matrix(ground_truth_relevance, n_users, n_items)))
    return Checkpoint({"kind": KIND, "n_users": n_users, "n_items": n_items, **metadata},
                      {"logits": model.logits.contiguous()})


def load_oracle(ckpt: Checkpoint, device: torch.device | str = "cpu") -> OracleRanker:
    model = OracleRanker(torch.zeros((int(ckpt.config["n_users"]), int(ckpt.config["n_items"]))))
    model.load_state_dict(ckpt.tensors)
    return model.to(device).eval()
