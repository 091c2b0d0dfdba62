"""Where the training and scoring code runs: one device rule for every stage."""

from __future__ import annotations

import os

import torch
from accelerate import Accelerator


def resolve_device(device: str) -> torch.device:
    """`device`: auto (CUDA when present, else CPU) | cpu | cuda[:n]. Under `accelerate launch` /
    torchrun, auto is this process's own GPU (LOCAL_RANK), as Accelerate picks for training."""
    if device == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count())
    return torch.device(device)


def make_accelerator(device: str) -> Accelerator:
    """`device` as in `resolve_device`. bf16 mixed precision on CUDA, full precision on CPU."""
    dev = resolve_device(device)
    return Accelerator(cpu=dev.type == "cpu", mixed_precision="bf16" if dev.type == "cuda" else "no")
