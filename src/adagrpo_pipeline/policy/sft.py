"""Supervised fine-tuning (NLL of the next item's tokens) on HF Accelerate.

AdamW, linear warmup + cosine decay, gradient clipping, bf16 autocast on GPU; validation
(NDCG@10 on the valid split) every `eval_every` steps with early stopping; the full training
state (weights, optimizer moments, scheduler, RNG, counters) every `checkpoint_every` steps,
from which a re-run with the same configuration resumes. Batches come from a per-epoch
permutation seeded by (seed, epoch), so a resumed run sees the same batches as an
uninterrupted one.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm
from transformers import get_cosine_schedule_with_warmup

from adagrpo_pipeline.semantic_ids.trie import SidTrie
from adagrpo_pipeline.training import batch_indices, cpu_state_dict, make_accelerator

from .checkpoint import load_training_state, save_training_state
from .config import SftParams
from .evaluation import decode_lists, list_metrics
from .model import HistoryEncoder, encoder_inputs

log = logging.getLogger(__name__)

LogFn = Callable[[dict[str, float], int], None]


@dataclass
class SftResult:
    model: torch.nn.Module
    history: pd.DataFrame  # one row per evaluation: step, train_loss, lr, valid metrics
    best_step: int
    resumed_from: int  # 0 for a fresh run
    stopped_early: bool


def fingerprint(params: SftParams, encoder: HistoryEncoder, train: pd.DataFrame) -> str:
    """Identity of a training run: parameters, layout, every item's tokens and the training
    samples. A saved state is resumed only when this matches."""
    h = hashlib.sha256()
    h.update(json.dumps({"params": params.model_dump(exclude={"state_dir"}), "layout": encoder.layout.to_json()},
                        sort_keys=True).encode())
    h.update(np.ascontiguousarray(encoder.item_tokens).tobytes())
    h.update(train["user_id"].to_numpy(np.int64).tobytes())
    h.update(train["target"].to_numpy(np.int64).tobytes())
    h.update(np.fromiter((len(x) for x in train["history"]), dtype=np.int64, count=len(train)).tobytes())
    return h.hexdigest()[:16]


def _best_path(state_dir: Path, step: int) -> Path:
    return state_dir / f"best-step{step}.safetensors"


def validation_metrics(model, encoder: HistoryEncoder, trie: SidTrie, valid: pd.DataFrame, seen: list[set[int]] | None,
                       beams: int, device: torch.device) -> dict[str, float]:
    ranked = decode_lists(model, encoder, valid, trie, beams, constrained=False, batch_size=256, device=device)
    m = list_metrics(ranked, valid["target"].to_numpy(), [10], seen)
    m["score"] = m["ndcg@10_filtered"] if seen is not None else m["ndcg@10"]
    return m


def train_sft(
    model: torch.nn.Module,
    encoder: HistoryEncoder,
    train: pd.DataFrame,
    valid: pd.DataFrame,
    trie: SidTrie,
    params: SftParams,
    seen_valid: list[set[int]] | None = None,
    log_fn: LogFn | None = None,
) -> SftResult:
    accelerator = make_accelerator(params.device)
    device = accelerator.device
    optimizer = torch.optim.AdamW(model.parameters(), lr=params.lr, weight_decay=params.weight_decay)
    scheduler = get_cosine_schedule_with_warmup(optimizer, params.warmup_steps, params.max_steps)
    model = model.to(device)
    model, optimizer = accelerator.prepare(model, optimizer)
    raw_model = accelerator.unwrap_model(model)

    if params.eval_users is not None and params.eval_users < len(valid):
        valid_idx = np.sort(np.random.default_rng(params.seed).choice(len(valid), params.eval_users, replace=False))
        valid = valid.iloc[valid_idx].reset_index(drop=True)
        seen_valid = [seen_valid[i] for i in valid_idx] if seen_valid is not None else None

    state_dir = Path(params.state_dir)
    fp = fingerprint(params, encoder, train)
    counters = {"step": 0, "best_score": -1.0, "best_step": -1, "bad_evals": 0, "history": [], "fingerprint": fp}
    resumed_from = 0
    if (state_dir / "state.json").exists():
        saved = json.loads((state_dir / "state.json").read_text())["counters"]
        if saved.get("fingerprint") == fp:
            counters = load_training_state(state_dir, raw_model, optimizer, scheduler)
            resumed_from = counters["step"]
            log.info("resuming SFT from step %d (%s)", resumed_from, state_dir)
        else:
            log.warning("training state in %s belongs to another configuration or data: starting afresh", state_dir)

    histories, users, targets = train["history"].to_list(), train["user_id"].to_numpy(), train["target"].to_numpy()
    stopped_early = False
    running, n_running = 0.0, 0
    bar = tqdm(total=params.max_steps, initial=counters["step"], desc="sft", unit="step", disable=None)
    model.train()
    while counters["step"] < params.max_steps and not stopped_early:
        step = counters["step"]
        idx = batch_indices(step, len(train), params.batch_size, params.seed)
        x, mask = encoder([histories[i] for i in idx], users[idx])
        labels = encoder.targets(targets[idx])
        with accelerator.autocast():
            loss = model(**encoder_inputs(raw_model, x.to(device)), attention_mask=mask.to(device), labels=labels.to(device)).loss
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(model.parameters(), params.grad_clip)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        running, n_running = running + loss.item(), n_running + 1
        counters["step"] = step = step + 1
        bar.update(1)

        if step % params.eval_every == 0 or step == params.max_steps:
            model.eval()
            m = validation_metrics(raw_model, encoder, trie, valid, seen_valid, params.eval_beams, device)
            model.train()
            row = {"step": step, "train_loss": running / max(n_running, 1), "lr": scheduler.get_last_lr()[0],
                   **{f"valid_{k}": v for k, v in m.items() if k != "score"}}
            counters["history"].append(row)
            running, n_running = 0.0, 0
            if m["score"] > counters["best_score"]:
                counters.update(best_score=m["score"], best_step=step, bad_evals=0)
                state_dir.mkdir(parents=True, exist_ok=True)
                save_file(cpu_state_dict(raw_model), _best_path(state_dir, step))
            else:
                counters["bad_evals"] += 1
                stopped_early = counters["bad_evals"] >= params.patience
            log.info("sft step %d: train_loss %.4f, valid ndcg@10 %.4f (best %.4f at step %d)%s", step, row["train_loss"],
                     m["score"], counters["best_score"], counters["best_step"], ", early stop" if stopped_early else "")
            if log_fn is not None:
                log_fn({k: float(v) for k, v in row.items() if k != "step"}, step)
        if step % params.checkpoint_every == 0 or step == params.max_steps or stopped_early:
            save_training_state(state_dir, raw_model, optimizer, scheduler, counters)
            for stale in state_dir.glob("best-step*.safetensors"):  # e.g. from an interrupted run
                if stale != _best_path(state_dir, counters["best_step"]):
                    stale.unlink()
    bar.close()

    if counters["best_step"] > 0:
        best = load_file(_best_path(state_dir, counters["best_step"]))
        raw_model.load_state_dict({k: v.to(device) for k, v in best.items()})
    return SftResult(raw_model.eval(), pd.DataFrame(counters["history"]), counters["best_step"], resumed_from, stopped_early)
