"""Leave-one-out training samples (`user_id`, `history`, `target`) as a training loop reads them:
in memory (`FrameSamples`, a DataFrame) or streamed from a parquet file (`ParquetSamples`), a
window of row groups at a time, so memory does not grow with the number of samples.

Both give the loop the same two things: the rows of each step's global batch (`rows(step)`,
seeded and resumable, the same for any number of processes) and the samples of a set of rows
(`fetch`). The order of an epoch:
- in memory, a permutation of all rows seeded by (seed, epoch) (`loop.batch_indices`);
- streamed, a block shuffle: the file's row groups in an order seeded by (seed, epoch), cut into
  windows of at most `window_rows` rows (at least one row group each), and the rows of each window
  in an order seeded by (seed, epoch, window). When one window holds the whole file its order is
  the in-memory one, so a small data set trains identically either way.
Only the windows a batch touches are held (the current one and, across a boundary, the next).

Kedro-free."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import fsspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .loop import batch_indices

COLUMNS = ("user_id", "history", "target")


@dataclass
class Fetched:
    histories: list[np.ndarray]
    users: np.ndarray
    targets: np.ndarray


class FrameSamples:
    """Samples held in a DataFrame."""

    def __init__(self, frame: pd.DataFrame):
        self.frame = frame
        self._histories = frame["history"].to_list()
        self._users, self._targets = frame["user_id"].to_numpy(), frame["target"].to_numpy()

    def __len__(self) -> int:
        return len(self.frame)

    def rows(self, step: int, batch_size: int, seed: int) -> np.ndarray:
        return batch_indices(step, len(self), batch_size, seed)

    def fetch(self, rows: np.ndarray) -> Fetched:
        return Fetched([self._histories[i] for i in rows], self._users[rows], self._targets[rows])

    def column_chunks(self, column: str) -> Iterator[np.ndarray]:
        yield _column(self.frame, column)


def _column(frame: pd.DataFrame | pa.Table, column: str) -> np.ndarray:
    """user_id / target as int64, or `history_length` (items per history) as int64."""
    if column == "history_length":
        if isinstance(frame, pa.Table):
            return pa.compute.list_value_length(frame["history"]).to_numpy(zero_copy_only=False).astype(np.int64)
        return np.fromiter((len(x) for x in frame["history"]), dtype=np.int64, count=len(frame))
    values = frame[column]
    return (values.to_numpy() if isinstance(frame, pa.Table) else values.to_numpy()).astype(np.int64)


@dataclass(frozen=True)
class _Window:
    groups: tuple[int, ...]  # row groups, in the epoch's order
    start: int  # first position of the window in the epoch


class ParquetSamples:
    """Samples in a parquet file (`path` on `fs`, local by default), read by row groups."""

    def __init__(self, path: str, window_rows: int = 1_000_000, fs: Any = None):
        if window_rows < 1:
            raise ValueError(f"window_rows must be >= 1, got {window_rows}")
        self.path, self.window_rows = path, window_rows
        self.fs = fs if fs is not None else fsspec.filesystem("file")
        with self.fs.open(path, "rb") as fh:
            file = pq.ParquetFile(fh)
            meta, names = file.metadata, file.schema_arrow.names
        missing = [c for c in COLUMNS if c not in names]
        if missing:
            raise ValueError(f"{path}: the samples file lacks column(s) {missing} (it has {names})")
        self.group_rows = np.array([meta.row_group(i).num_rows for i in range(meta.num_row_groups)], dtype=np.int64)
        self.group_start = np.concatenate([[0], np.cumsum(self.group_rows)])
        self._windows: dict[tuple[int, int], list[_Window]] = {}  # (seed, epoch) -> windows
        self._orders: dict[tuple[int, int, int], np.ndarray] = {}  # (seed, epoch, window) -> rows
        self._groups: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {}

    def __len__(self) -> int:
        return int(self.group_start[-1])

    @property
    def _file(self) -> pq.ParquetFile:
        """The open file, opened again in a new process (launched processes must not share a
        file position with their parent)."""
        if getattr(self, "_pid", None) != os.getpid():
            self._pid, self._handle = os.getpid(), pq.ParquetFile(self.fs.open(self.path, "rb"))
            self._groups = {}
        return self._handle

    # ------------------------------------------------------------------ the schedule
    def windows(self, epoch: int, seed: int) -> list[_Window]:
        """The epoch's windows: row groups in a (seed, epoch) order, ≤ window_rows rows each."""
        if (seed, epoch) not in self._windows:
            order = np.random.default_rng([seed, epoch]).permutation(len(self.group_rows))
            windows, current, rows, start = [], [], 0, 0
            for g in order:
                if current and rows + self.group_rows[g] > self.window_rows:
                    windows.append(_Window(tuple(current), start))
                    start, current, rows = start + rows, [], 0
                current.append(int(g))
                rows += int(self.group_rows[g])
            windows.append(_Window(tuple(current), start))
            self._windows = {(seed, epoch): windows}  # one epoch at a time
        return self._windows[(seed, epoch)]

    def _window_order(self, epoch: int, seed: int, w: int) -> np.ndarray:
        """Global row indices of window `w` of the epoch, in the order the epoch visits them."""
        key = (seed, epoch, w)
        if key not in self._orders:
            windows = self.windows(epoch, seed)
            if len(windows) == 1:  # the whole file: the in-memory order (loop.batch_indices)
                rows = np.arange(len(self))
                perm = np.random.default_rng([seed, epoch]).permutation(len(rows))
            else:
                rows = np.concatenate([np.arange(self.group_start[g], self.group_start[g + 1])
                                       for g in windows[w].groups])
                perm = np.random.default_rng([seed, epoch, w]).permutation(len(rows))
            self._orders = {k: v for k, v in self._orders.items() if k[:2] == (seed, epoch) and k[2] >= w - 1}
            self._orders[key] = rows[perm]
        return self._orders[key]

    def rows(self, step: int, batch_size: int, seed: int) -> np.ndarray:
        """Global rows of training step `step` (batches of `batch_size`, the remainder of an epoch
        dropped, as in memory)."""
        n = len(self)
        per_epoch = max(1, n // batch_size)
        epoch, pos = divmod(step, per_epoch)
        lo, hi = pos * batch_size, min((pos + 1) * batch_size, n)
        windows = self.windows(epoch, seed)
        starts = np.array([w.start for w in windows])
        out = []
        w = int(np.searchsorted(starts, lo, side="right") - 1)
        while lo < hi:
            order = self._window_order(epoch, seed, w)
            take = order[lo - windows[w].start : hi - windows[w].start]
            out.append(take)
            lo += len(take)
            w += 1
        return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)

    # ------------------------------------------------------------------ the data
    def _group(self, g: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(users, targets, history offsets, history values) of row group g; the groups of the last
        two windows read are kept."""
        if g not in self._groups:
            table = self._file.read_row_group(g, columns=list(COLUMNS))
            hist = table["history"].combine_chunks()
            offsets = hist.offsets.to_numpy().astype(np.int64)
            values = hist.values.to_numpy(zero_copy_only=False).astype(np.int64)
            self._groups[g] = (_column(table, "user_id"), _column(table, "target"), offsets - offsets[0], values)
            keep = set(self._recent_groups())
            self._groups = {k: v for k, v in self._groups.items() if k in keep or k == g}
        return self._groups[g]

    def _recent_groups(self) -> list[int]:
        """The row groups of the (at most two) windows whose order is held."""
        windows = next(iter(self._windows.values()), [])
        return [g for *_, w in self._orders for g in windows[w].groups] if windows else []

    def fetch(self, rows: np.ndarray) -> Fetched:
        groups = np.searchsorted(self.group_start, rows, side="right") - 1
        histories, users, targets = [], np.empty(len(rows), np.int64), np.empty(len(rows), np.int64)
        for i, (r, g) in enumerate(zip(rows, groups)):
            u, t, off, val = self._group(int(g))
            j = int(r - self.group_start[g])
            histories.append(val[off[j] : off[j + 1]])
            users[i], targets[i] = u[j], t[j]
        return Fetched(histories, users, targets)

    def column_chunks(self, column: str) -> Iterator[np.ndarray]:
        """One column (user_id, target, history_length) a row group at a time."""
        read = "history" if column == "history_length" else column
        for g in range(len(self.group_rows)):
            yield _column(self._file.read_row_group(g, columns=[read]), column)

    def to_pandas(self) -> pd.DataFrame:
        """The whole file in memory (for code that needs a DataFrame)."""
        return self._file.read(columns=list(COLUMNS)).to_pandas()


Samples = FrameSamples | ParquetSamples


def as_samples(train: pd.DataFrame | ParquetSamples) -> Samples:
    return train if isinstance(train, ParquetSamples) else FrameSamples(train)
