"""One optimiser set-up and one update rule for every training loop (SFT, ranker, `sasrec`, RL)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from accelerate import Accelerator
from torch.profiler import record_function

from .device import make_accelerator
from .distributed import Ranks


@dataclass
class Trainee:
    """A model on Accelerate's device with its AdamW optimiser and learning-rate schedule.

    With several processes the model is not wrapped (see `distributed`): `update` all-reduces
    the gradients itself, so `model` is the module every stage trains, evaluates and saves."""

    accelerator: Accelerator
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any  # None: a constant learning rate
    grad_clip: float

    @property
    def device(self) -> torch.device:
        return self.accelerator.device

    @property
    def ranks(self) -> Ranks:
        return Ranks.of(self.accelerator)

    def update(self, loss: torch.Tensor, weight: float = 1.0) -> None:
        """Backward, gradients of the global batch (the ranks' gradients weighted by `weight`,
        this rank's share of the batch: its rows, or the elements its mean loss averages), clip
        the global gradient norm, one optimiser (and schedule) step, clear the gradients. The two
        phases are labelled `train.backward` and `train.optimiser` for the torch profiler
        (`benchmarks/rl_step.py`, `benchmarks/sft_step.py`)."""
        with record_function("train.backward"):
            self.accelerator.backward(loss)
        with record_function("train.optimiser"):
            self.ranks.reduce_gradients(self.model.parameters(), weight)
            self.accelerator.clip_grad_norm_(self.model.parameters(), self.grad_clip)
            self.optimizer.step()
            if self.scheduler is not None:
                self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)


def prepare_training(model: torch.nn.Module, device: str, lr: float, weight_decay: float, grad_clip: float,
                     schedule: Callable[[torch.optim.Optimizer], Any] | None = None) -> Trainee:
    """`model` on `device` (see `make_accelerator`; under several processes, rank 0's weights on
    every rank) with AdamW; `schedule` builds the learning-rate scheduler from the optimiser
    (None: constant)."""
    accelerator = make_accelerator(device)
    model = model.to(accelerator.device)
    Ranks.of(accelerator).broadcast_weights(model)
    optimizer = accelerator.prepare(torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay))
    scheduler = schedule(optimizer) if schedule is not None else None
    return Trainee(accelerator, model, optimizer, scheduler, grad_clip)
