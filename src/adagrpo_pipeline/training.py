"""Device and Accelerate set-up shared by the training loops (SFT, ranker, AdaGRPO)."""

from __future__ import annotations

import numpy as np
import torch
from accelerate import Accelerator

from adagrpo_pipeline.semantic_ids.embeddings import resolve_device


def make_accelerator(device: str) -> Accelerator:
    """`device`: auto | cpu | cuda[:n]. bf16 mixed precision on CUDA, full precision on CPU."""
    dev = resolve_device(device)
    return Accelerator(cpu=dev.type == "cpu", mixed_precision="bf16" if dev.type == "cuda" else "no")


def batch_indices(step: int, n: int, batch_size: int, seed: int) -> np.ndarray:
    """Rows of training step `step`: slice `step mod epoch` of a permutation seeded by (seed,
    epoch), so a resumed run sees the same batches as an uninterrupted one."""
    per_epoch = max(1, n // batch_size)
    epoch, pos = divmod(step, per_epoch)
    perm = np.random.default_rng([seed, epoch]).permutation(n)
    return perm[pos * batch_size : (pos + 1) * batch_size]


def cpu_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A detached, contiguous CPU copy of every tensor of the state dict (each its own storage:
    safetensors refuses tensors that share memory, e.g. T5's tied embeddings)."""
    return {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
