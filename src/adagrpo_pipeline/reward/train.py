"""Training the ranker on logged impressions (clicked vs shown-and-not-clicked, BCE) on HF
Accelerate, with validation AUC every `eval_every` steps, early stopping and the best
weights kept. Batches come from a per-epoch permutation seeded by (seed, epoch)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from adagrpo_pipeline.training import batch_indices, make_accelerator

from .config import RankerTrainParams
from .data import EventIndex, Requests, flat_scores_labels
from .metrics import auc
from .model import SASRec

log = logging.getLogger(__name__)


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


@torch.no_grad()
def score_requests(model: SASRec, events: EventIndex, req: Requests, batch_size: int, device: torch.device) -> torch.Tensor:
    """(n, S) raw scores of every slate slot (padding slots included; mask them with slates >= 0)."""
    model.eval()
    out = []
    for lo in range(0, len(req), batch_size):
        idx = np.arange(lo, min(lo + batch_size, len(req)))
        out.append(model(*_batch(events, req, idx, model.max_history, device)).float().cpu())
    return torch.cat(out) if out else torch.zeros((0, req.slates.shape[1]))


def train_ranker(n_items: int, events: EventIndex, train: Requests, valid: Requests, params: RankerTrainParams,
                 log_fn: Callable[[dict[str, float], int], None] | None = None) -> RankerResult:
    if len(train) == 0 or len(valid) == 0:
        raise ValueError(f"the ranker needs train and valid requests, got {len(train)} train and {len(valid)} valid")
    accelerator = make_accelerator(params.device)
    device = accelerator.device
    torch.manual_seed(params.seed)
    model = SASRec(n_items, params.max_history, params.model).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=params.lr, weight_decay=params.weight_decay)
    model, optimizer = accelerator.prepare(model, optimizer)
    raw = accelerator.unwrap_model(model)
    best = {"auc": -1.0, "step": 0, "state": None}
    history, running, n_running, bad = [], 0.0, 0, 0
    bar = tqdm(total=params.max_steps, desc="ranker", unit="step", disable=None)
    step = 0
    while step < params.max_steps:
        idx = batch_indices(step, len(train), params.batch_size, params.seed)
        tokens, lengths, items = _batch(events, train, idx, params.max_history, device)
        labels = torch.as_tensor(train.clicked[idx], dtype=torch.float32, device=device)
        real = items >= 0
        model.train()
        with accelerator.autocast():
            logits = model(tokens, lengths, items).float()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits[real], labels[real])
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(model.parameters(), params.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        running, n_running, step = running + loss.item(), n_running + 1, step + 1
        bar.update(1)
        if step % params.eval_every == 0 or step == params.max_steps:
            s, y = flat_scores_labels(score_requests(raw, events, valid, 1024, device), valid)
            row = {"step": step, "train_loss": running / n_running, "valid_auc": auc(y, s)}
            history.append(row)
            running, n_running = 0.0, 0
            if row["valid_auc"] > best["auc"]:
                best = {"auc": row["valid_auc"], "step": step,
                        "state": {k: v.detach().clone() for k, v in raw.state_dict().items()}}
                bad = 0
            else:
                bad += 1
            log.info("ranker step %d: train_loss %.4f, valid AUC %.4f (best %.4f at step %d)", step, row["train_loss"],
                     row["valid_auc"], best["auc"], best["step"])
            if log_fn is not None:
                log_fn({k: float(v) for k, v in row.items() if k != "step"}, step)
            if bad >= params.patience:
                log.info("ranker: early stop at step %d", step)
                break
    bar.close()
    raw.load_state_dict(best["state"])
    return RankerResult(raw.eval(), pd.DataFrame(history), best["step"], best["auc"])
