"""Supervised fine-tuning of the policy: NLL of the next item's tokens, on HF Accelerate.

AdamW, linear warmup + cosine decay, gradient clipping, bf16 autocast on GPU. It runs in the
project's training-loop scaffold (`adagrpo_pipeline.training`): seeded batches, validation
NDCG@10 every `eval_every` steps with early stopping and the best weights kept, and the full
training state every `checkpoint_every` steps, from which a re-run with the same
configuration, semantic IDs and data resumes exactly. A step's phases carry torch profiler labels:
`sft.batch` (samples to tensors), `sft.forward`, `train.backward`, `train.optimiser`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.profiler import record_function
from transformers import get_cosine_schedule_with_warmup

from adagrpo_pipeline.semantic_ids.trie import SidTrie
from adagrpo_pipeline.training import (
    Part,
    Schedule,
    Selection,
    TrainingLoop,
    fingerprint,
    prepare_training,
    selection_metric,
    validation_subset,
)
from adagrpo_pipeline.training.loop import LogFn, on_processes
from adagrpo_pipeline.training.samples import ParquetSamples, Samples, as_samples

from .config import SftParams
from .evaluation import validation_metrics
from .model import HistoryEncoder, encoder_inputs


@dataclass
class SftResult:
    model: torch.nn.Module
    history: pd.DataFrame  # one row per evaluation: step, train_loss, lr, valid metrics
    best_step: int
    resumed_from: int  # 0 for a fresh run
    stopped_early: bool


def sft_fingerprint(params: SftParams, encoder: HistoryEncoder, train: Samples) -> str:
    """Parameters, layout, every item's tokens and the training samples."""
    return fingerprint({"params": params.model_dump(exclude={"state_dir", "processes"}), "layout": encoder.layout.to_json()},
                       [encoder.item_tokens.astype(np.int64), train.column_chunks("user_id"),
                        train.column_chunks("target"), train.column_chunks("history_length")])


@on_processes()
def train_sft(model: torch.nn.Module, encoder: HistoryEncoder, train: pd.DataFrame | ParquetSamples,
              valid: pd.DataFrame, trie: SidTrie, params: SftParams, seen_valid: list[set[int]] | None = None,
              log_fn: LogFn | None = None) -> SftResult:
    """Train `model` from its current weights on `train` (a DataFrame, or samples streamed from a
    parquet file, see `training.samples`); returns it with the best validation weights.
    `params.processes` > 1: the training runs data-parallel on that many launched processes
    (`training.launch`), then this process reads rank 0's finished run from `state_dir` (a
    resume that runs no step) and logs its history."""
    # set-up: device, optimiser and schedule, the validation users
    t = prepare_training(model, params.device, params.lr, params.weight_decay, params.grad_clip,
                         lambda opt: get_cosine_schedule_with_warmup(opt, params.warmup_steps, params.max_steps))
    net, device, ranks = t.model, t.device, t.ranks
    valid, seen_valid = validation_subset(valid, seen_valid, params.eval_users, params.eval_seed)
    samples = as_samples(train)

    def step(part: Part, _: int) -> dict[str, float]:
        rows = part.rows
        with record_function("sft.batch"):
            batch = samples.fetch(rows)
            x, mask = encoder(batch.histories, batch.users)
            labels = encoder.targets(batch.targets)
        with record_function("sft.forward"):
            with t.accelerator.autocast():
                out = net(**encoder_inputs(net, x.to(device)), attention_mask=mask.to(device), labels=labels.to(device))
            loss = out.loss if params.label_smoothing == 0 else torch.nn.functional.cross_entropy(
                out.logits.float().flatten(0, 1), labels.to(device).flatten(), label_smoothing=params.label_smoothing)
        t.update(loss, len(rows))  # every sample has the same number of target tokens
        return {"train_loss": loss.item()}

    def evaluate() -> dict[str, float]:
        return {"lr": t.scheduler.get_last_lr()[0],
                **validation_metrics(net, encoder, trie, valid, seen_valid, params.eval_beams, device, ranks=ranks)}

    # the metric that picks the best step: history-filtered NDCG@10 where items are not re-consumed
    metric = selection_metric(filtered=seen_valid is not None)
    loop = TrainingLoop("sft", Schedule(len(samples), params.batch_size, params.seed, params.max_steps,
                                        params.eval_every, params.checkpoint_every, samples.rows),
                        net, t.optimizer, t.scheduler, state_dir=Path(params.state_dir),
                        fingerprint=sft_fingerprint(params, encoder, samples),
                        selection=Selection(metric, params.patience), log_fn=log_fn, shown=("train_loss", metric),
                        ranks=ranks)
    res = loop.run(step, evaluate)
    return SftResult(net.eval(), res.history, res.best_step, res.resumed_from, res.stopped_early)
