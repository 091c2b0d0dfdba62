"""What the benchmarks share: the policy sizes, a random catalog, timing with device
synchronisation, and the per-phase times of a torch profiler run (the library labels its loops'
phases with `torch.profiler.record_function`: `sft.*`, `rl.*`, `train.*`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

from adagrpo_pipeline.policy.model import PolicyLayout, PolicySize
from adagrpo_pipeline.semantic_ids.quantize import add_dedup_level
from adagrpo_pipeline.semantic_ids.vocab import SidVocab

ROOT = Path(__file__).resolve().parents[1]
SIZES = {"small": ROOT / "conf/base/parameters_sft.yml", "tiger": ROOT / "conf/gpu/parameters_sft.yml"}


def policy_conf(size: str) -> dict:
    """The `sft` parameters of a size: conf/base (small, the main job's) or conf/gpu (tiger)."""
    return yaml.safe_load(SIZES[size].read_text())["sft"]


def policy_size(size: str, **update) -> PolicySize:
    return PolicySize(**policy_conf(size)["model"]).model_copy(update=update)


def catalog(rng: np.random.Generator, items: int, levels: int = 3, codebook: int = 256, dedup: int = 16,
            history: int = 20, encoder_input: str = "items") -> tuple[PolicyLayout, np.ndarray]:
    """`items` random items of `levels` levels of `codebook` codes plus a dedup level: the layout
    and every item's tokens."""
    vocab = SidVocab((codebook,) * levels + (dedup,))
    tokens = vocab.encode(add_dedup_level(rng.integers(0, codebook, size=(items, levels)), dedup))
    return PolicyLayout(vocab, max_items=history, encoder_input=encoder_input), tokens


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device) -> tuple[float, object]:
    """The wall seconds of one call of `fn` (the device synchronised before and after), and its result."""
    sync(device)
    start = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - start, out


def seconds(fn: Callable[[], object], device: torch.device) -> float:
    return timed(fn, device)[0]


def median_seconds(fn: Callable[[], object], device: torch.device, repeats: int) -> float:
    """One warm-up call, then the median seconds of `repeats` calls."""
    fn()
    return float(np.median([seconds(fn, device) for _ in range(repeats)]))


def samples_frame(rng: np.random.Generator, n: int, items: int, history: int, varied: bool = False) -> pd.DataFrame:
    """`n` random training samples (user_id, history, target) over `items` items: histories of
    `history` items, or of 1 to `history` items (`varied`)."""
    lengths = rng.integers(1, history + 1, n) if varied else np.full(n, history)
    return pd.DataFrame({"user_id": np.arange(n), "history": [rng.integers(0, items, k) for k in lengths],
                         "target": rng.integers(0, items, n)})


def phase_seconds(fn: Callable[[], object], device: torch.device, labels: tuple[str, ...]) -> dict[str, float]:
    """Run `fn` under the torch profiler; the total seconds spent inside each labelled range (the
    range's wall time on the host), plus `total` (the wall time of `fn`). On CUDA kernels run
    asynchronously, so a range holds the kernels it waits for, not its own: run the benchmark with
    CUDA_LAUNCH_BLOCKING=1 for a per-phase breakdown (the totals without it)."""
    activities = [torch.profiler.ProfilerActivity.CPU]
    sync(device)
    with torch.profiler.profile(activities=activities) as prof:
        total = seconds(fn, device)
    found = {e.key: e.cpu_time_total / 1e6 for e in prof.key_averages() if e.key in labels}
    return {**{label: found.get(label, float("nan")) for label in labels}, "total": total}
