"""The one training-loop scaffold of the project: SFT, the ranker and the RL stage run in it.

It owns what every loop shares and nothing else:
- the seeded batch schedule (`batch_indices`): step → rows of a (seed, epoch) permutation;
- resume by fingerprint: a saved state whose fingerprint matches continues with the same
  batches, RNG state and counters as an uninterrupted run; any other state is discarded;
- the evaluation cadence (every `eval_every` steps and at the last one), with optional
  selection of the best step (`selection`: the project's one rule) and early stopping (`patience`);
- the checkpoint cadence (every `checkpoint_every` steps, the last one and an early stop):
  the full training state, and for RL each step's weights as a file of its own (step 0, the
  starting model, included), written once and handed on as paths (the catalog streams them,
  nothing holds them all in memory);
- the history (one row per evaluation, or per step), the progress bar and the metric logger.

A loop supplies a `step(part, step)` function (one optimisation step on this process's part
of the step's batch, `part.rows`, returning its logged values as means over those rows) and an
`evaluate()` function (validation metrics). With several processes (`ranks`, see
`distributed`) every rank runs the loop on its part of the same global batches; the logged
values are averaged over the ranks, and only rank 0 writes files, logs and shows progress.
"""

from __future__ import annotations

import functools
import inspect
import logging
import shutil
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from .distributed import Part, Ranks, launch
from .selection import Selection, improves
from .state import (
    cpu_state_dict,
    load_training_state,
    save_training_state,
    saved_fingerprint,
)

log = logging.getLogger(__name__)

LogFn = Callable[[dict[str, float], int], None]
CHECKPOINTS = "checkpoints"


def batch_indices(step: int, n: int, batch_size: int, seed: int) -> np.ndarray:
    """Rows of training step `step`: slice `step mod epoch` of a permutation seeded by (seed,
    epoch), so a resumed run sees the same batches as an uninterrupted one."""
    per_epoch = max(1, n // batch_size)
    epoch, pos = divmod(step, per_epoch)
    perm = np.random.default_rng([seed, epoch]).permutation(n)
    return perm[pos * batch_size : (pos + 1) * batch_size]


def validation_subset(valid: pd.DataFrame, seen: list[set[int]] | None, n: int | None,
                      seed: int) -> tuple[pd.DataFrame, list[set[int]] | None]:
    """`n` validation samples drawn with `seed` (in their original order), with their seen-item
    sets; all of them when `n` is None or not smaller than the split."""
    if n is None or n >= len(valid):
        return valid, seen
    idx = np.sort(np.random.default_rng(seed).choice(len(valid), n, replace=False))
    return valid.iloc[idx].reset_index(drop=True), [seen[i] for i in idx] if seen is not None else None


@dataclass(frozen=True)
class Schedule:
    """How long a loop runs and when it evaluates and saves."""

    n_train: int
    batch_size: int
    seed: int
    max_steps: int
    eval_every: int
    checkpoint_every: int
    order: Callable[[int, int, int], np.ndarray] | None = None  # (step, batch_size, seed) -> rows; None: batch_indices

    def rows(self, step: int) -> np.ndarray:
        if self.order is not None:  # e.g. `samples.ParquetSamples.rows`: a block shuffle of a streamed file
            return self.order(step, self.batch_size, self.seed)
        return batch_indices(step, self.n_train, self.batch_size, self.seed)

    def evaluates(self, step: int) -> bool:
        return step % self.eval_every == 0 or step == self.max_steps

    def checkpoints(self, step: int) -> bool:
        return step % self.checkpoint_every == 0 or step == self.max_steps


@dataclass
class Counters:
    """What the saved state remembers besides tensors (JSON)."""

    step: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    best_score: float = -1.0
    best_step: int = -1
    bad_evals: int = 0
    stopped_early: bool = False
    fingerprint: str = ""


@dataclass
class LoopResult:
    history: pd.DataFrame
    best_step: int  # -1 without a selection metric
    resumed_from: int  # 0 for a fresh run
    stopped_early: bool
    checkpoints: dict[int, Path]  # step -> weights file (keep_checkpoints only)


class TrainingLoop:
    """Runs `step` from the saved step (or 0) to `schedule.max_steps`.

    `model` is the plain (unwrapped) module whose weights are saved; `optimizer` and
    `scheduler` (None: none) are saved and restored with it. `state_dir` None keeps nothing on
    disk (no resume; the best weights stay in memory). `per_step_history`: one history row per
    step (plus step 0 when `eval_at_start`), else one per evaluation with the mean of the step
    values since the previous one. `train_mode`: dropout on during steps (SFT, ranker) or off
    (RL: rollout and update log-probabilities must come from the same network)."""

    def __init__(self, name: str, schedule: Schedule, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 scheduler: Any = None, *, state_dir: Path | None, fingerprint: str, selection: Selection | None = None,
                 per_step_history: bool = False, eval_at_start: bool = False, keep_checkpoints: bool = False,
                 train_mode: bool = True, log_fn: LogFn | None = None, shown: Iterable[str] = (), ranks: Ranks = Ranks()):
        if keep_checkpoints and state_dir is None:
            raise ValueError("keep_checkpoints needs a state_dir to write the checkpoints to")
        self.name, self.schedule, self.model = name, schedule, model
        self.optimizer, self.scheduler = optimizer, scheduler
        self.state_dir, self.selection = state_dir, selection
        self.per_step_history, self.eval_at_start = per_step_history, eval_at_start
        self.keep_checkpoints, self.train_mode = keep_checkpoints, train_mode
        self.log_fn, self.shown, self.ranks = log_fn, tuple(shown), ranks
        self.counters = Counters(fingerprint=fingerprint)
        self._best_in_memory: dict[str, torch.Tensor] | None = None

    # ------------------------------------------------------------------ state on disk
    def _best_path(self, step: int) -> Path:
        assert self.state_dir is not None
        return self.state_dir / f"best-step{step}.safetensors"

    def checkpoint_path(self, step: int) -> Path:
        assert self.state_dir is not None
        return self.state_dir / CHECKPOINTS / f"step-{step:06d}.safetensors"

    def _resume(self) -> int:
        """Load a matching saved state (returns its step), or clear a stale one (returns 0)."""
        if self.state_dir is None:
            return 0
        saved = saved_fingerprint(self.state_dir)
        if saved == self.counters.fingerprint:  # every rank reads the same state (any number of ranks)
            counters = load_training_state(self.state_dir, self.model, self.optimizer, self.scheduler)
            self.counters = Counters(**counters)
            if self.ranks.main:
                log.info("%s: resuming from step %d (%s)", self.name, self.counters.step, self.state_dir)
            self.ranks.barrier()
            return self.counters.step
        self.ranks.barrier()  # every rank has read the fingerprint before rank 0 clears the folder
        if self.ranks.main:
            if saved is not None:
                log.warning("%s: the state in %s belongs to another configuration, data or starting model: "
                            "starting afresh", self.name, self.state_dir)
            shutil.rmtree(self.state_dir / CHECKPOINTS, ignore_errors=True)
            for stale in self.state_dir.glob("best-step*.safetensors"):
                stale.unlink()
        self.ranks.barrier()
        return 0

    def _write_checkpoint(self, step: int) -> None:
        if self.ranks.main:
            self.checkpoint_path(step).parent.mkdir(parents=True, exist_ok=True)
            save_file(cpu_state_dict(self.model), self.checkpoint_path(step))
        self.ranks.barrier()

    def _save(self) -> None:
        if self.state_dir is None:
            return
        if self.keep_checkpoints:
            self._write_checkpoint(self.counters.step)
        if self.ranks.main:  # the ranks hold the same weights, optimiser and counters
            save_training_state(self.state_dir, self.model, self.optimizer, self.scheduler, asdict(self.counters))
            for stale in self.state_dir.glob("best-step*.safetensors"):  # e.g. from an interrupted run
                if stale != self._best_path(self.counters.best_step):
                    stale.unlink()
        self.ranks.barrier()

    def _keep_best(self) -> None:
        if self.state_dir is None:
            self._best_in_memory = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            return
        if self.ranks.main:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            save_file(cpu_state_dict(self.model), self._best_path(self.counters.step))
        self.ranks.barrier()

    def _restore_best(self) -> None:
        if self.selection is None or self.counters.best_step <= 0:
            return
        device = next(self.model.parameters()).device
        best = self._best_in_memory if self.state_dir is None else load_file(self._best_path(self.counters.best_step))
        self.model.load_state_dict({k: v.to(device) for k, v in best.items()})

    # ------------------------------------------------------------------ evaluation and logging
    def _evaluate(self, evaluate: Callable[[], dict[str, float]]) -> dict[str, float]:
        self.model.eval()
        metrics = evaluate()
        self.model.train(self.train_mode)
        return metrics

    def _select(self, row: dict[str, float]) -> None:
        c, sel = self.counters, self.selection
        if sel is None:
            return
        if improves(row[sel.metric], None if c.best_step < 0 else c.best_score):
            c.best_score, c.best_step, c.bad_evals = float(row[sel.metric]), c.step, 0
            self._keep_best()
        else:
            c.bad_evals += 1
            c.stopped_early = sel.patience is not None and c.bad_evals >= sel.patience

    def _log(self, row: dict[str, float]) -> None:
        if not self.ranks.main:
            return
        c = self.counters
        shown = ", ".join(f"{k} {row[k]:.4f}" for k in self.shown if k in row)
        best = f" (best {c.best_score:.4f} at step {c.best_step})" if self.selection is not None else ""
        log.info("%s step %d: %s%s%s", self.name, c.step, shown, best, ", early stop" if c.stopped_early else "")

    def _emit(self, row: dict[str, float], step: int) -> None:
        if self.log_fn is not None and self.ranks.main:
            self.log_fn({k: float(v) for k, v in row.items() if k != "step"}, step)

    # ------------------------------------------------------------------ the loop
    def run(self, step: Callable[[Part, int], dict[str, float]],
            evaluate: Callable[[], dict[str, float]]) -> LoopResult:
        resumed_from = self._resume()
        c, s = self.counters, self.schedule
        if self.keep_checkpoints and c.step == 0:  # the starting model is the first checkpoint of the series
            self._write_checkpoint(0)
        if self.eval_at_start and c.step == 0:  # the starting model: step 0 of the training curves
            start = self._evaluate(evaluate)
            c.history.append({"step": 0, **start})
            self._emit(start, 0)
        pending: list[dict[str, float]] = []  # step values since the last evaluation
        bar = tqdm(total=s.max_steps, initial=c.step, desc=self.name, unit="step",
                   disable=None if self.ranks.main else True)
        self.model.train(self.train_mode)
        while c.step < s.max_steps and not c.stopped_early:
            part = self.ranks.part(s.rows(c.step))
            values = self.ranks.mean(step(part, c.step), len(part.rows))
            c.step += 1
            pending.append(values)
            evaluates = s.evaluates(c.step)
            if evaluates or self.per_step_history:
                row = {"step": c.step, **(values if self.per_step_history else _mean(pending))}
                if evaluates:
                    row.update(self._evaluate(evaluate))
                    pending = []
                    self._select(row)
                    self._log(row)
                c.history.append(row)
                self._emit(row, c.step)
            bar.update(1)
            bar.set_postfix({k: f"{values[k]:.3f}" for k in self.shown if k in values}, refresh=False)
            if s.checkpoints(c.step) or c.stopped_early:
                self._save()
        bar.close()
        self._restore_best()
        checkpoints = {}
        if self.keep_checkpoints:
            files = sorted((self.state_dir / CHECKPOINTS).glob("step-*.safetensors"))
            checkpoints = {int(f.stem.split("-")[1]): f for f in files}
            checkpoints = {k: v for k, v in checkpoints.items() if k <= s.max_steps}
        return LoopResult(pd.DataFrame(c.history), c.best_step, resumed_from, c.stopped_early, checkpoints)


def on_processes(params: str = "params", check: Callable[[dict[str, Any]], None] | None = None):
    """Decorate a loop's entry point `train(..., <params>, ..., log_fn=None, ...)` whose
    parameters have a `processes` field: with `processes` > 1, run `train` with those parameters
    set to 1 process (so the launched processes do not launch again) and no `log_fn` on that many
    launched processes (`distributed.launch`), then once here, where it finds rank 0's finished
    state in the state folder and resumes it without a step; that run's history goes to `log_fn`
    once. `check(arguments)` runs first, so bad input fails before any process starts."""

    def decorate(train: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(train)

        @functools.wraps(train)
        def run(*args: Any, **kwargs: Any) -> Any:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            if check is not None:
                check(bound.arguments)
            settings = bound.arguments[params]
            if settings.processes <= 1:
                return train(*bound.args, **bound.kwargs)
            log_fn = bound.arguments["log_fn"]
            bound.arguments.update({params: settings.model_copy(update={"processes": 1}), "log_fn": None})
            launch(train, bound.args, settings.processes)
            result = train(*bound.args)
            emit_history(result.history, log_fn)
            return result

        return run

    return decorate


def emit_history(history: pd.DataFrame, log_fn: LogFn | None) -> None:
    """Send every row of a finished run's history to `log_fn` (a run trained by launched
    processes is logged by the process that launched them, once they are done)."""
    if log_fn is None:
        return
    for row in history.to_dict("records"):
        log_fn({k: float(v) for k, v in row.items() if k != "step" and v == v}, int(row["step"]))


def _mean(rows: list[dict[str, float]]) -> dict[str, float]:
    """Mean of each key over `rows`, summed in order (as a running sum would)."""
    return {k: sum(r[k] for r in rows) / len(rows) for k in rows[0]} if rows else {}
