"""The reward function AdaGRPO calls: calibrated click probabilities of candidate items given
histories, batched on the ranker's device; candidates that name no item get `invalid_reward`.
`RewardModel.from_artifacts` is the one way the pipelines build it (every setting from
`params:reward`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from adagrpo_pipeline.sasrec.model import SASRec, pack_histories
from adagrpo_pipeline.training.checkpoint import Checkpoint

from .calibration import apply_calibrator
from .config import RewardParams
from .model import load_ranker


class RewardModel:
    def __init__(self, ranker: SASRec, calibrator: dict[str, Any] | None, invalid_reward: float = 0.0,
                 batch_size: int = 512):
        self.ranker = ranker.eval()
        self.calibrator = calibrator
        self.invalid_reward = float(invalid_reward)
        self.batch_size = batch_size

    @classmethod
    def from_artifacts(cls, ranker_model: Checkpoint, reward_calibration: dict[str, Any], params: RewardParams,
                       device: torch.device | str = "cpu") -> RewardModel:
        """The calibrated reward of the `reward` stage's outputs: the ranker checkpoint, the chosen
        calibrator, and `params.invalid_reward` / `params.batch_size`."""
        return cls(load_ranker(ranker_model, device), reward_calibration["chosen"], params.invalid_reward,
                   params.batch_size)

    @property
    def device(self) -> torch.device:
        return next(self.ranker.parameters()).device

    @torch.no_grad()
    def raw_scores(self, histories: list[np.ndarray] | pd.Series, candidate_item_ids: torch.Tensor) -> torch.Tensor:
        """(B, G) ranker logits; meaningless where a candidate is < 0."""
        cand = torch.as_tensor(candidate_item_ids, device=self.device).long()
        if cand.dim() != 2 or cand.shape[0] != len(histories):
            raise ValueError(f"candidate_item_ids must be (len(histories), G), got {tuple(cand.shape)} for {len(histories)} histories")
        if (cand >= self.ranker.n_items).any():
            raise ValueError(f"candidate item ids must be < {self.ranker.n_items} (the ranker's catalog), or < 0 for invalid")
        out = torch.empty(cand.shape, device=self.device)
        for lo in range(0, len(histories), self.batch_size):
            hi = min(lo + self.batch_size, len(histories))
            tokens, lengths = pack_histories(histories[lo:hi], self.ranker.max_history)
            out[lo:hi] = self.ranker(tokens.to(self.device), lengths.to(self.device), cand[lo:hi]).float()
        return out

    def __call__(self, histories: list[np.ndarray] | pd.Series, candidate_item_ids: torch.Tensor) -> torch.Tensor:
        """(B, G) rewards in [0, 1] (calibrated probabilities); `invalid_reward` where the
        candidate id is < 0."""
        cand = torch.as_tensor(candidate_item_ids, device=self.device).long()
        probs = apply_calibrator(self.calibrator, self.raw_scores(histories, cand))
        return torch.where(cand >= 0, probs, torch.full_like(probs, self.invalid_reward))

