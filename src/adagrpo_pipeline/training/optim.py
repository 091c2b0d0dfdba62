"""One optimiser set-up and one update rule for every training loop (SFT, ranker, `sasrec`, RL)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from accelerate import Accelerator

from .device import make_accelerator


@dataclass
class Trainee:
    """A model prepared by Accelerate with its AdamW optimiser and learning-rate schedule."""

    accelerator: Accelerator
    model: torch.nn.Module  # as prepared by Accelerate: the training forward pass
    raw: torch.nn.Module  # the same module unwrapped: evaluation, decoding, state dicts
    optimizer: torch.optim.Optimizer
    scheduler: Any  # None: a constant learning rate
    grad_clip: float

    @property
    def device(self) -> torch.device:
        return self.accelerator.device

    def update(self, loss: torch.Tensor) -> None:
        """Backward, clip the global gradient norm, one optimiser (and schedule) step, clear the gradients."""
        self.accelerator.backward(loss)
        self.accelerator.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)


def prepare_training(model: torch.nn.Module, device: str, lr: float, weight_decay: float, grad_clip: float,
                     schedule: Callable[[torch.optim.Optimizer], Any] | None = None) -> Trainee:
    """`model` on `device` (see `make_accelerator`) with AdamW; `schedule` builds the learning-rate
    scheduler from the optimiser (None: constant)."""
    accelerator = make_accelerator(device)
    model = model.to(accelerator.device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    scheduler = schedule(optimizer) if schedule is not None else None
    prepared, optimizer = accelerator.prepare(model, optimizer)
    return Trainee(accelerator, prepared, accelerator.unwrap_model(prepared), optimizer, scheduler, grad_clip)
