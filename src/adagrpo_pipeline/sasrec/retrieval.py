"""SASRec as a full-catalog retriever: the reference baseline of `evaluate`.

Trained the strong modern way (SASRec with full-catalog softmax cross-entropy, as in
Klenitskiy & Vasilev, RecSys 2023, "Turning Dross Into Gold Loss: is BERT4Rec really better
than SASRec?"): each user's training events (everything before the valid and test targets) are
cut, from the most recent backwards, into windows of `max_history + 1` items; every position
of a window predicts its next item over the whole catalog, so one forward pass trains up to
`max_history` transitions. Windows overlap by one item, so every training transition (all but
each user's first event) is a target exactly once. Early stopping and the best step on the
valid split's NDCG@10 with history items removed; runs in the project's training-loop scaffold
(seeded batches, resumable state).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from adagrpo_pipeline.metrics import retrieval_metrics
from adagrpo_pipeline.recdata.prepare import user_segments
from adagrpo_pipeline.training import SELECT_ON, Part, Schedule, Selection, TrainingLoop, fingerprint, prepare_training
from adagrpo_pipeline.training.loop import LogFn

from .config import SasrecParams
from .model import BOS, OFFSET, PAD, SASRec, catalog_scores

KIND = "sasrec_retriever"


@dataclass
class SasrecResult:
    model: SASRec
    history: pd.DataFrame  # one row per evaluation: step, train_loss, valid metrics
    best_step: int


def training_windows(train_events: pd.DataFrame, max_history: int) -> np.ndarray:
    """(n_windows, max_history + 1) item ids, -1 padded at the end: each user's training
    events (ordered by user then time) cut from the most recent backwards into windows that
    overlap by one item."""
    users = train_events["user_id"].to_numpy()
    items = train_events["item_id"].to_numpy(np.int64)
    width = max_history + 1
    rows = []
    for s, e in zip(*user_segments(users), strict=True):
        for end in range(e, s + 1, -max_history):
            start = max(s, end - width)
            row = np.full(width, -1, dtype=np.int64)
            row[: end - start] = items[start:end]
            rows.append(row)
    return np.stack(rows) if rows else np.zeros((0, width), dtype=np.int64)


def window_batch(windows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Packed inputs [BOS, c_0 … c_{m-1}] and targets [ignored, c_1 … c_m] (-1 = no target): the
    state at position p has seen c_0 … c_{p-1} and predicts c_p."""
    w = torch.as_tensor(windows)
    tokens = torch.cat([torch.full_like(w[:, :1], BOS), torch.where(w[:, :-1] >= 0, w[:, :-1] + OFFSET, PAD)], dim=1)
    targets = w.clone()
    targets[:, 0] = -1  # the first item of a window has no history inside it
    return tokens, targets


def train_sasrec(n_items: int, train_events: pd.DataFrame, valid: pd.DataFrame, seen_valid: list[set[int]],
                 params: SasrecParams, log_fn: LogFn | None = None) -> SasrecResult:
    """Train on `train_events` (the interactions before each user's valid and test targets);
    returns the weights of the best validation step."""
    windows = training_windows(train_events, params.max_history)
    if len(windows) == 0:
        raise ValueError("SASRec needs training events: every user has fewer than two")
    torch.manual_seed(params.seed)
    t = prepare_training(SASRec(n_items, params.max_history, params.model), params.device, params.lr,
                         params.weight_decay, params.grad_clip)
    raw, device = t.model, t.device
    histories, targets = valid["history"].to_list(), valid["target"].to_numpy()

    def step(part: Part, _: int) -> dict[str, float]:
        tokens, labels = (x.to(device) for x in window_batch(windows[part.rows]))
        with t.accelerator.autocast():
            logits = raw.score_all(raw.states(tokens))  # (B, T, n_items): every position's next item
        loss = torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), ignore_index=-1)
        t.update(loss, float((labels >= 0).sum()))  # the mean over the global batch's labelled positions
        return {"train_loss": loss.item()}

    def evaluate() -> dict[str, float]:
        scores = catalog_scores(raw, histories, 512)
        return {f"valid_{k}": v for k, v in retrieval_metrics(scores, targets, seen_valid, [10]).items()
                if not k.startswith("hallucination")}

    fp = fingerprint({"params": params.model_dump(exclude={"state_dir"}), "n_items": n_items}, [windows])
    loop = TrainingLoop("sasrec", Schedule(len(windows), params.batch_size, params.seed, params.max_steps,
                                           params.eval_every, params.checkpoint_every),
                        raw, t.optimizer, state_dir=Path(params.state_dir) if params.state_dir else None, fingerprint=fp,
                        selection=Selection(SELECT_ON, params.patience), log_fn=log_fn,
                        shown=("train_loss", "valid_hr@10_filtered", SELECT_ON), ranks=t.ranks)
    res = loop.run(step, evaluate)
    return SasrecResult(raw.eval(), res.history, res.best_step)
