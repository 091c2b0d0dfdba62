"""Where the training and scoring code runs: one device rule for every stage."""

from __future__ import annotations

import torch
from accelerate import Accelerator


def resolve_device(device: str) -> torch.device:
    """`device`: auto (CUDA when present, else CPU) | cpu | cuda[:n]."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def make_accelerator(device: str) -> Accelerator:
    """`device` as in `resolve_device`. bf16 mixed precision on CUDA, full precision on CPU."""
    dev = resolve_device(device)
    return Accelerator(cpu=dev.type == "cpu", mixed_precision="bf16" if dev.type == "cuda" else "no")
