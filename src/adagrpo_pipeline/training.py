"""Device and Accelerate set-up shared by the training loops (SFT, ranker, AdaGRPO)."""

from __future__ import annotations

from accelerate import Accelerator

from adagrpo_pipeline.semantic_ids.embeddings import resolve_device


def make_accelerator(device: str) -> Accelerator:
    """`device`: auto | cpu | cuda[:n]. bf16 mixed precision on CUDA, full precision on CPU."""
    dev = resolve_device(device)
    return Accelerator(cpu=dev.type == "cpu", mixed_precision="bf16" if dev.type == "cuda" else "no")
