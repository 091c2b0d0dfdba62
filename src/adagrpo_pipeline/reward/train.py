"""Training the ranker on logged impressions (clicked vs shown-and-not-clicked, BCE) on HF
Accelerate, in the project's training-loop scaffold: seeded batches, validation AUC every
`eval_every` steps, early stopping with the best weights kept, and a resumable state in
`state_dir` (None: nothing on disk)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from adagrpo_pipeline.sasrec.model import SASRec
from adagrpo_pipeline.training import (
    Part,
    Ranks,
    Schedule,
    Selection,
    TrainingLoop,
    fingerprint,
    prepare_training,
)
from adagrpo_pipeline.training.loop import LogFn, on_processes

from .config import RankerTrainParams
from .data import EventIndex, Requests, flat_scores_labels
from .metrics import auc


@dataclass
class RankerResult:
    model: SASRec
    history: pd.DataFrame  # step, train_loss, valid_auc
    best_step: int
    best_auc: float


def _batch(events: EventIndex, req: Requests, idx: np.ndarray, max_history: int, device: torch.device):
    tokens, lengths = events.histories(req.users[idx], req.cuts[idx], max_history)
    items = torch.as_tensor(req.slates[idx])
    return tokens.to(device), lengths.to(device), items.to(device)


def _scores(model, events: EventIndex, req: Requests, idx: np.ndarray, device: torch.device, position: bool = False):
    """Raw scores of the requests' slates; a feature ranker also reads the users and, in training
    with `position`, each slot's position (slates are ordered by position)."""
    tokens, lengths, items = _batch(events, req, idx, model.max_history, device)
    if not getattr(model, "reads_users", False):
        return model(tokens, lengths, items)
    users = torch.as_tensor(req.users[idx], device=device)
    positions = torch.arange(items.shape[1], device=device).expand_as(items) if position else None
    return model(tokens, lengths, items, users=users, positions=positions)


@torch.no_grad()
def score_requests(model, events: EventIndex, req: Requests, batch_size: int, device: torch.device,
                   ranks: Ranks = Ranks()) -> torch.Tensor:
    """(n, S) raw scores of every slate slot (padding slots included; mask them with slates >= 0),
    without the position (what the reward sees). With several `ranks`, each scores its part of
    the requests and every rank gets all the scores."""
    model.eval()
    start, stop = ranks.bounds(len(req))
    out = []
    for lo in range(start, stop, batch_size):
        idx = np.arange(lo, min(lo + batch_size, stop))
        out.append(_scores(model, events, req, idx, device).float().cpu())
    local = torch.cat(out) if out else torch.zeros((0, req.slates.shape[1]))
    return torch.as_tensor(ranks.gather(local.numpy(), len(req)))


def _check_requests(arguments: dict) -> None:
    train, valid = arguments["train"], arguments["valid"]
    if len(train) == 0 or len(valid) == 0:
        raise ValueError(f"the ranker needs train and valid requests, got {len(train)} train and {len(valid)} valid")


@on_processes(check=_check_requests)
def train_ranker(n_items: int, events: EventIndex, train: Requests, valid: Requests, params: RankerTrainParams,
                 log_fn: LogFn | None = None, build: Callable[[], torch.nn.Module] | None = None) -> RankerResult:
    """Train the ranker built by `build` (default: the plain SASRec ranker), seeded by
    `params.seed` before it is built. `params.processes` > 1: data-parallel on that many launched
    processes, whose finished run this process then reads from `state_dir` (see `train_sft`)."""
    torch.manual_seed(params.seed)
    model = build() if build is not None else SASRec(n_items, params.max_history, params.model)
    t = prepare_training(model, params.device, params.lr, params.weight_decay, params.grad_clip)
    position = params.features.position
    net, device, ranks = t.model, t.device, t.ranks

    def step(part: Part, _: int) -> dict[str, float]:
        rows = part.rows
        labels = torch.as_tensor(train.clicked[rows], dtype=torch.float32, device=device)
        real = torch.as_tensor(train.slates[rows] >= 0, device=device)  # slates are padded with -1
        with t.accelerator.autocast():
            logits = _scores(net, events, train, rows, device, position).float()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits[real], labels[real])
        t.update(loss, float(real.sum()))  # the mean over the global batch's real slots
        return {"train_loss": loss.item()}

    def evaluate() -> dict[str, float]:
        s, y = flat_scores_labels(score_requests(net, events, valid, 1024, device, ranks), valid)
        return {"valid_auc": auc(y, s)}

    fp = fingerprint({"params": params.model_dump(exclude={"state_dir", "processes"}), "n_items": n_items},
                     [events.items, events.starts, train.users, train.cuts, train.slates, train.clicked,
                      *(b for _, b in net.named_buffers())])
    loop = TrainingLoop("ranker", Schedule(len(train), params.batch_size, params.seed, params.max_steps,
                                           params.eval_every, params.checkpoint_every),
                        net, t.optimizer, state_dir=Path(params.state_dir) if params.state_dir else None, fingerprint=fp,
                        selection=Selection("valid_auc", params.patience), log_fn=log_fn,
                        shown=("train_loss", "valid_auc"), ranks=ranks)
    res = loop.run(step, evaluate)
    best_auc = float(res.history.set_index("step").loc[res.best_step, "valid_auc"])
    return RankerResult(net.eval(), res.history, res.best_step, best_auc)
