"""Data parallelism of the training loops over the processes of a `torch.distributed` group,
as HF Accelerate sets it up (`accelerate launch`, torchrun, or `launch` below): CPU with gloo,
GPUs with nccl, one or several nodes.

The rule every loop follows (docs/architecture.md, "Several processes"):
- the seeded batch schedule is global: step s has the same batch, in the same order, whatever
  the number of processes; each rank takes a contiguous part of it (`Ranks.part`);
- each rank computes its part's loss (a mean over its rows) and gradients; the gradients are
  summed over the ranks weighted by each part's size, in one all-reduce (`Ranks.reduce_gradients`),
  so every rank applies the gradient of the global batch's mean loss and the weights stay
  identical on every rank (the model is not wrapped in DDP: the RL step runs the policy several
  times before one backward, which DDP does not allow);
- logged values are weighted means over the ranks (`Ranks.mean`); evaluation decodes a part of
  the validation users on each rank and gathers the lists (`Ranks.gather`), so every rank sees
  the same metrics and takes the same selection and early-stopping decisions;
- only rank 0 writes files (state, checkpoints, catalog outputs, MLflow); the others wait.

Kedro-free."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.distributed as dist

log = logging.getLogger(__name__)


def launched_rank() -> int:
    """This process's global rank as `accelerate launch` / torchrun set it (RANK), 0 otherwise."""
    return int(os.environ.get("RANK", "0"))


def check_processes(processes: int, batch_size: int) -> None:
    """Each of `processes` ranks needs at least one row of every batch."""
    if processes > batch_size:
        raise ValueError(f"processes ({processes}) must not exceed batch_size ({batch_size}): each process "
                         "trains on a part of every batch")


@dataclass(frozen=True)
class Part:
    """A rank's part of a global batch: its rows, and where they sit in the batch."""

    rows: np.ndarray
    start: int  # position of the first row in the global batch
    total: int  # size of the global batch

    @property
    def span(self) -> slice:
        return slice(self.start, self.start + len(self.rows))


@dataclass(frozen=True)
class Ranks:
    """This process's place in the group (rank 0 of 1 without one) and the collectives the
    loops use. `device`: where the collectives' tensors live (CUDA for nccl, CPU for gloo)."""

    rank: int = 0
    world: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @classmethod
    def of(cls, accelerator) -> Ranks:
        """The ranks of an `accelerate.Accelerator` (or its `PartialState`)."""
        return cls(accelerator.process_index, accelerator.num_processes, accelerator.device)

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    def bounds(self, n: int, rank: int | None = None) -> tuple[int, int]:
        """[start, stop) of `rank`'s (default: this rank's) contiguous part of n rows; the parts
        differ in size by at most one (as `np.array_split`)."""
        r = self.rank if rank is None else rank
        q, extra = divmod(n, self.world)
        start = r * q + min(r, extra)
        return start, start + q + (1 if r < extra else 0)

    def part(self, rows: np.ndarray) -> Part:
        start, stop = self.bounds(len(rows))
        return Part(rows[start:stop], start, len(rows))

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def _all_sum(self, t: torch.Tensor) -> torch.Tensor:
        t = t.to(self.device)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t

    def mean(self, values: dict[str, float], weight: float) -> dict[str, float]:
        """Weighted mean over the ranks of each value (`weight`: this rank's, e.g. its rows)."""
        if not self.distributed or not values:
            return values
        keys = list(values)  # the same keys in the same order on every rank
        packed = torch.tensor([values[k] * weight for k in keys] + [weight], dtype=torch.float64)
        total = self._all_sum(packed).cpu()
        return {k: float(total[i] / total[-1]) for i, k in enumerate(keys)}

    def share(self, count: torch.Tensor, n: int) -> float:
        """Σ count over the ranks / Σ n over the ranks (e.g. the admitted share of the global batch)."""
        packed = torch.tensor([float(count), float(n)], dtype=torch.float64)
        if self.distributed:
            packed = self._all_sum(packed).cpu()
        return float(packed[0] / packed[1])

    def reduce_gradients(self, params: Iterable[torch.nn.Parameter], weight: float) -> None:
        """Replace every rank's gradients by Σ_r weight_r · grad_r / Σ_r weight_r (one all-reduce
        of one flat buffer). A parameter without a gradient on a rank counts as zero there."""
        if not self.distributed:
            return
        params = [p for p in params if p.requires_grad]
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([g.detach().float().reshape(-1) * weight for g in grads]
                         + [torch.tensor([float(weight)], device=grads[0].device)])
        flat = self._all_sum(flat)
        flat = flat[:-1] / flat[-1]
        offset = 0
        for p, g in zip(params, grads):
            n = g.numel()
            p.grad = flat[offset : offset + n].view_as(g).to(g.dtype).to(p.device)
            offset += n

    def broadcast_weights(self, model: torch.nn.Module) -> None:
        """Rank 0's weights on every rank (the ranks built them from the same seed and checkpoint;
        this makes it so whatever happened)."""
        if self.distributed:
            for t in model.state_dict().values():
                moved = t.to(self.device)
                dist.broadcast(moved, src=0)
                t.copy_(moved)

    def gather(self, local: np.ndarray, n: int) -> np.ndarray:
        """The rows of every rank's part (`bounds(n, r)`), in rank order: the whole (n, ...) array
        on every rank."""
        if not self.distributed:
            return local
        sizes = [b - a for a, b in (self.bounds(n, r) for r in range(self.world))]
        padded = np.zeros((max(sizes), *local.shape[1:]), dtype=local.dtype)
        padded[: len(local)] = local
        t = torch.as_tensor(padded).to(self.device)
        out = [torch.empty_like(t) for _ in range(self.world)]
        dist.all_gather(out, t)
        return np.concatenate([o.cpu().numpy()[:s] for o, s in zip(out, sizes)])


def _free_port() -> int:
    """A port no one listens on now (two runs on one machine must not share a rendezvous)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(fn: Callable, threads: int, args: tuple) -> None:
    torch.set_num_threads(threads)
    fn(*args)


def launch(fn: Callable, args: tuple, processes: int) -> None:
    """Run `fn(*args)` on `processes` processes of one machine with HF Accelerate's launcher
    (`accelerate.notebook_launcher`: one process per GPU with nccl when CUDA is present, else
    CPU processes with gloo). Each process gets cpu_count // processes torch threads. Nothing is
    returned: `fn` leaves its result on disk (rank 0 writes it) for the caller to read."""
    from accelerate import notebook_launcher
    from accelerate.state import AcceleratorState

    if processes < 2:
        raise ValueError(f"launch needs 2 or more processes, got {processes}")
    if dist.is_available() and dist.is_initialized():
        raise RuntimeError("launch: already inside a process group (run under `accelerate launch`?): "
                           "set processes: 1 there, the launcher already started the processes")
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        raise RuntimeError(
            "launch: CUDA was used in this process before the training processes could be forked "
            "(an earlier node ran on the GPU): run the training pipeline in a process of its own "
            "(kedro run --pipeline=...), or start every process with `accelerate launch` "
            "(README, 'Several processes')")
    # the launcher refuses to start while an Accelerator of this process exists (earlier nodes made
    # theirs); it only holds the device choice, which each launched process makes afresh
    AcceleratorState._reset_state(reset_partial_state=True)
    threads = max(1, (os.cpu_count() or 1) // processes)
    log.info("launching %d processes (%d torch thread(s) each)", processes, threads)
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # its banner names CUDA devices on a CPU machine
            notebook_launcher(_worker, (fn, threads, args), num_processes=processes, use_port=str(_free_port()))
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)
