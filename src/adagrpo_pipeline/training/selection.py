"""Checkpoint selection: the one rule for every loop, tuning trial, evaluation and study run.

The metric is the validation NDCG@10 with the user's history items removed (docs/architecture.md,
"Evaluation protocol"; where items are not re-consumed it is the headline's ranking metric).
A checkpoint is chosen when its score is strictly higher than every earlier evaluation's, so
ties keep the earliest step (the starting policy, step 0, may be chosen). The training loop
applies the rule as evaluations arrive (`improves`); tables of finished evaluations are read
with `best_row`, which folds the same function over the rows in step order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

SELECT_ON = "valid_ndcg@10_filtered"
VALID_PREFIX = "valid_"


def selection_metric(filtered: bool = True) -> str:
    """SELECT_ON; without the history filter (no seen-item sets: items may be re-consumed) its
    as-decoded twin."""
    return SELECT_ON if filtered else SELECT_ON.removesuffix("_filtered")


def improves(score: float, best: float | None) -> bool:
    """Whether an evaluation's `score` replaces the `best` so far (None: none yet; a NaN score
    never does). Strictly higher: ties keep the earlier step."""
    return not math.isnan(score) and (best is None or score > best)


def best_row(table: pd.DataFrame, metric: str = SELECT_ON, step: str = "step") -> pd.Series:
    """The row of `table` (one row per evaluation, a `step` column) chosen by `improves` over its
    rows in step order; a ValueError naming the metric when no row has a score for it."""
    chosen: pd.Series | None = None
    for _, row in table.sort_values(step, kind="stable").iterrows():
        if improves(float(row[metric]), None if chosen is None else float(chosen[metric])):
            chosen = row
    if chosen is None:
        raise ValueError(f"no evaluation has a value of {metric!r} to choose a checkpoint from "
                         f"({len(table)} rows, steps {sorted(table[step].tolist())})")
    return chosen


def best_step(table: pd.DataFrame, metric: str = SELECT_ON) -> int:
    """The step of `best_row`."""
    return int(best_row(table, metric)["step"])


@dataclass(frozen=True)
class Selection:
    """Keep the weights of the evaluation `improves` picks on `metric`; stop after `patience`
    evaluations without improvement (None: never stop early)."""

    metric: str = SELECT_ON
    patience: int | None = None
