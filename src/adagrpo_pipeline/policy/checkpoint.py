"""Model checkpoints as safetensors weights + a JSON config (never a pickle), and the
resumable training state (weights, optimizer moments, RNG state, counters)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from transformers import T5Config, T5ForConditionalGeneration

from adagrpo_pipeline.training import cpu_state_dict

from .model import PolicyLayout


@dataclass
class Checkpoint:
    """`config`: JSON-able description (model kind, transformers config, layout, metadata);
    `tensors`: the state dict."""

    config: dict[str, Any]
    tensors: dict[str, torch.Tensor] = field(repr=False)


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


# --------------------------------------------------------------------------- training state
def save_training_state(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                        scheduler: Any, counters: dict[str, Any]) -> None:
    """Write model, optimizer moments, scheduler and RNG state; the JSON is written last, so a
    folder without an up-to-date state.json is never taken for a complete state."""
    path.mkdir(parents=True, exist_ok=True)
    tmp = path / "state.json.part"
    save_file(cpu_state_dict(model), path / "model.safetensors")
    opt = optimizer.state_dict()
    names = [n for n, _ in model.named_parameters()]
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, float]] = {}
    for idx, st in opt["state"].items():
        for key, value in st.items():
            if torch.is_tensor(value) and value.dim() > 0:
                tensors[f"{names[idx]}::{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(names[idx], {})[key] = float(value)
    tensors["__torch_rng_state__"] = torch.get_rng_state()
    save_file(tensors, path / "optimizer.safetensors")
    meta = {"counters": counters, "optimizer_scalars": scalars, "param_groups": opt["param_groups"],
            "scheduler": scheduler.state_dict()}
    tmp.write_text(json.dumps(meta))
    tmp.replace(path / "state.json")


def load_training_state(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any) -> dict[str, Any]:
    meta = json.loads((path / "state.json").read_text())
    device = next(model.parameters()).device
    model.load_state_dict({k: v.to(device) for k, v in load_file(path / "model.safetensors").items()})
    tensors = load_file(path / "optimizer.safetensors")
    torch.set_rng_state(tensors.pop("__torch_rng_state__"))
    names = [n for n, _ in model.named_parameters()]
    state: dict[int, dict[str, Any]] = {}
    for idx, name in enumerate(names):
        entry = {key.split("::", 1)[1]: t.to(device) for key, t in tensors.items() if key.split("::", 1)[0] == name}
        for key, value in meta["optimizer_scalars"].get(name, {}).items():
            entry[key] = torch.tensor(value)
        if entry:
            state[idx] = entry
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    scheduler.load_state_dict(meta["scheduler"])
    return meta["counters"]
