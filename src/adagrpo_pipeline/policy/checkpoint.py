"""The policy as a checkpoint (safetensors weights + JSON config, see
`adagrpo_pipeline.training.checkpoint`) and back."""

from __future__ import annotations

from typing import Any

import torch
from transformers import T5Config, T5ForConditionalGeneration

from adagrpo_pipeline.training import cpu_state_dict
from adagrpo_pipeline.training.checkpoint import Checkpoint

from .model import PolicyLayout


def policy_checkpoint(model: T5ForConditionalGeneration, layout: PolicyLayout, **metadata: Any) -> Checkpoint:
    return Checkpoint({"kind": "t5_policy", "t5_config": model.config.to_dict(), "layout": layout.to_json(), **metadata},
                      cpu_state_dict(model))


def load_policy(ckpt: Checkpoint, device: torch.device | str = "cpu") -> tuple[T5ForConditionalGeneration, PolicyLayout]:
    if ckpt.config.get("kind") != "t5_policy":
        raise ValueError(f"not a policy checkpoint (kind {ckpt.config.get('kind')!r})")
    model = T5ForConditionalGeneration(T5Config.from_dict(ckpt.config["t5_config"]))
    missing, unexpected = model.load_state_dict(ckpt.tensors, strict=False)
    missing = [k for k in missing if k not in ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight")]
    if missing or unexpected:
        raise ValueError(f"checkpoint does not match its config: missing {missing}, unexpected {unexpected}")
    return model.to(device).eval(), PolicyLayout.from_json(ckpt.config["layout"])
