"""The reward function AdaGRPO calls: calibrated click probabilities of candidate items given
histories, batched on the ranker's device; candidates that name no item get `invalid_reward`,
candidates already in the sample's history get `seen_item_reward` (docs/architecture.md, "The
algorithm"). `RewardModel.from_artifacts` is the one way the pipelines build it (every setting
from `params:reward`)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch

from adagrpo_pipeline.sasrec.model import SASRec, pack_histories
from adagrpo_pipeline.training.checkpoint import Checkpoint

from .calibration import apply_calibrator
from .config import RewardParams
from .model import load_ranker


def seen_mask(histories: list[np.ndarray] | pd.Series, candidate_item_ids: torch.Tensor) -> torch.Tensor:
    """(B, G) True where a candidate is one of its sample's history items."""
    cand = torch.as_tensor(candidate_item_ids)
    width = max((len(h) for h in histories), default=0)
    if width == 0:
        return torch.zeros(cand.shape, dtype=torch.bool, device=cand.device)
    padded = np.full((len(histories), width), -2, dtype=np.int64)  # -2: never a candidate (invalid is -1)
    for row, h in enumerate(histories):
        padded[row, : len(h)] = np.asarray(h, dtype=np.int64)
    hist = torch.as_tensor(padded, device=cand.device)
    return (cand[:, :, None] == hist[:, None, :]).any(dim=-1)


def ranking_keys(raw: torch.Tensor, fixed: torch.Tensor) -> torch.Tensor:
    """The ranking key of the reward diagnostic: the ranker's raw score where the ranker decides,
    −inf where the reward is fixed (invalid, seen), so that ranks follow the raw score
    (calibration is monotone; isotonic calibration would make ties)."""
    return torch.where(fixed, torch.full_like(raw, float("-inf")), raw)


@dataclass
class Scored:
    """Rewards of candidates, the ranker's raw scores (meaningless where the candidate is < 0)
    and where the reward is fixed rather than the ranker's (invalid, seen)."""

    rewards: torch.Tensor  # (B, G)
    raw: torch.Tensor  # (B, G)
    fixed: torch.Tensor  # (B, G) bool

    @property
    def keys(self) -> torch.Tensor:
        return ranking_keys(self.raw, self.fixed)


class RewardModel:
    def __init__(self, ranker: SASRec, calibrator: dict[str, Any] | None, invalid_reward: float = 0.0,
                 batch_size: int = 512, seen_item_reward: float | Literal["invalid", "ranker"] = "ranker"):
        self.ranker = ranker.eval()
        self.calibrator = calibrator
        self.invalid_reward = float(invalid_reward)
        self.batch_size = batch_size
        self.seen_item_reward = seen_item_reward

    @classmethod
    def from_artifacts(cls, ranker_model: Checkpoint, reward_calibration: dict[str, Any], params: RewardParams,
                       device: torch.device | str = "cpu") -> RewardModel:
        """The calibrated reward of the `reward` stage's outputs: the ranker checkpoint, the chosen
        calibrator, and `params.invalid_reward` / `seen_item_reward` / `batch_size`."""
        return cls(load_ranker(ranker_model, device), reward_calibration["chosen"], params.invalid_reward,
                   params.batch_size, params.seen_item_reward)

    @property
    def device(self) -> torch.device:
        return next(itertools.chain(self.ranker.parameters(), self.ranker.buffers())).device

    @property
    def fixed_seen_reward(self) -> float | None:
        """The reward of a history item, or None when the ranker scores it."""
        if self.seen_item_reward == "ranker":
            return None
        return self.invalid_reward if self.seen_item_reward == "invalid" else float(self.seen_item_reward)

    def _candidates(self, histories: list[np.ndarray] | pd.Series, candidate_item_ids: torch.Tensor) -> torch.Tensor:
        cand = torch.as_tensor(candidate_item_ids, device=self.device).long()
        if cand.dim() != 2 or cand.shape[0] != len(histories):
            raise ValueError(f"candidate_item_ids must be (len(histories), G), got {tuple(cand.shape)} for {len(histories)} histories")
        if (cand >= self.ranker.n_items).any():
            raise ValueError(f"candidate item ids must be < {self.ranker.n_items} (the ranker's catalog), or < 0 for invalid")
        return cand

    @torch.no_grad()
    def raw_scores(self, histories: list[np.ndarray] | pd.Series, candidate_item_ids: torch.Tensor,
                   users: np.ndarray | None = None) -> torch.Tensor:
        """(B, G) ranker logits; meaningless where a candidate is < 0. `users`: the samples' user
        ids (needed by a ranker that reads user attributes)."""
        cand = self._candidates(histories, candidate_item_ids)
        out = torch.empty(cand.shape, device=self.device)
        for lo in range(0, len(histories), self.batch_size):
            hi = min(lo + self.batch_size, len(histories))
            tokens, lengths = pack_histories(histories[lo:hi], self.ranker.max_history)
            reads = users is not None and getattr(self.ranker, "reads_users", False)
            extra = {"users": torch.as_tensor(np.array(users[lo:hi], dtype=np.int64), device=self.device)} if reads else {}
            out[lo:hi] = self.ranker(tokens.to(self.device), lengths.to(self.device), cand[lo:hi], **extra).float()
        return out

    def score(self, histories: list[np.ndarray] | pd.Series, candidate_item_ids: torch.Tensor,
              users: np.ndarray | None = None) -> Scored:
        """Rewards in [0, 1] (calibrated probabilities; `invalid_reward` where the candidate id is
        < 0, the seen-item reward where it is a history item) and the diagnostic's ranking keys."""
        cand = self._candidates(histories, candidate_item_ids)
        raw = self.raw_scores(histories, cand, users)
        rewards = apply_calibrator(self.calibrator, raw)
        fixed = cand < 0
        rewards = torch.where(fixed, torch.full_like(rewards, self.invalid_reward), rewards)
        seen_reward = self.fixed_seen_reward
        if seen_reward is not None:
            seen = seen_mask(histories, cand) & ~fixed
            rewards = torch.where(seen, torch.full_like(rewards, seen_reward), rewards)
            fixed = fixed | seen
        return Scored(rewards, raw, fixed)

    def __call__(self, histories: list[np.ndarray] | pd.Series, candidate_item_ids: torch.Tensor,
                 users: np.ndarray | None = None) -> torch.Tensor:
        """(B, G) rewards (see `score`)."""
        return self.score(histories, candidate_item_ids, users).rewards
