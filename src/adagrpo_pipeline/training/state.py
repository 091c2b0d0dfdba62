"""The resumable training state (weights, optimizer moments, scheduler, RNG, counters) and the
fingerprint that says whether a saved state belongs to the run being started.

Everything is written as safetensors + JSON: nothing is ever unpickled."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

STATE_FILE = "state.json"


def cpu_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A detached, contiguous CPU copy of every tensor of the state dict (each its own storage:
    safetensors refuses tensors that share memory, e.g. T5's tied embeddings)."""
    return {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}


def fingerprint(config: Mapping[str, Any],
                parts: Iterable[np.ndarray | Mapping[str, torch.Tensor] | Iterator[np.ndarray]]) -> str:
    """Identity of a training run: a JSON-able `config` and the arrays / state dicts it trains
    from (data, initial weights, a reward model's weights). A saved state is resumed only when
    this matches, so a changed configuration, data set or starting model starts afresh. An
    iterator part is an array in chunks (a streamed column): the same bytes as the whole array."""
    h = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode())
    for part in parts:
        if isinstance(part, Mapping):
            for key in sorted(part):
                h.update(key.encode())
                h.update(part[key].detach().cpu().float().numpy().tobytes())
        elif isinstance(part, Iterator):
            for chunk in part:
                h.update(np.ascontiguousarray(chunk).tobytes())
        else:
            h.update(np.ascontiguousarray(part).tobytes())
    return h.hexdigest()[:16]


def saved_fingerprint(path: Path) -> str | None:
    """The fingerprint of the state saved in `path`, or None when there is none."""
    state = path / STATE_FILE
    return json.loads(state.read_text())["counters"].get("fingerprint") if state.exists() else None


def save_training_state(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
                        counters: dict[str, Any]) -> None:
    """Write model, optimizer moments, scheduler (None: none) and RNG state; the JSON is written
    last, so a folder without an up-to-date state.json is never taken for a complete state."""
    path.mkdir(parents=True, exist_ok=True)
    tmp = path / f"{STATE_FILE}.part"
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
            "scheduler": scheduler.state_dict() if scheduler is not None else None}
    tmp.write_text(json.dumps(meta))
    tmp.replace(path / STATE_FILE)


def load_training_state(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                        scheduler: Any) -> dict[str, Any]:
    """Restore what `save_training_state` wrote into `model`, `optimizer`, `scheduler` and the
    torch RNG; returns the saved counters."""
    meta = json.loads((path / STATE_FILE).read_text())
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
    if scheduler is not None:
        scheduler.load_state_dict(meta["scheduler"])
    return meta["counters"]
