"""Column contracts of the tables the project writes (docs/architecture.md, "Data contracts")."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

INTERACTIONS = {"user_id": "int64", "item_id": "int64", "timestamp": "int64", "event": "str"}
IMPRESSIONS = {
    "request_id": "int64",
    "user_id": "int64",
    "timestamp": "int64",
    "item_id": "int64",
    "position": "int16",
    "clicked": "bool",
}
ITEMS = {"item_id": "int64", "title": "str", "text": "str"}
RELEVANCE = {"user_id": "int64", "item_id": "int64", "relevance": "float64"}
USERS = {"user_id": "int64"}  # plus one string column per user attribute the source has (none: user_id only)

# Raw tables carry the source's own ids (integers or strings) and may carry `value`
# (a rating or review score) used by `min_value` filtering.
RAW_INTERACTIONS = ("user_id", "item_id", "timestamp", "event")
RAW_IMPRESSIONS = ("request_id", "user_id", "timestamp", "item_id", "position", "clicked")
RAW_ITEMS = ("item_id", "title", "text")


def empty_frame(columns: dict[str, str]) -> pd.DataFrame:
    """An empty table with the given contract's columns and dtypes."""
    return pd.DataFrame({c: pd.Series([], dtype=d) for c, d in columns.items()})


def conform(df: pd.DataFrame, columns: dict[str, str], keep_extra: bool = False) -> pd.DataFrame:
    """Order and cast the contract columns; extra columns are kept after them if asked."""
    out = pd.DataFrame({c: df[c].astype(d) for c, d in columns.items()}, index=df.index)
    if keep_extra:
        for c in df.columns:
            if c not in columns:
                out[c] = df[c]
    return out.reset_index(drop=True)


@dataclass
class RawTables:
    """What a raw-source reader returns, with the source's own ids.

    `impressions` is None when the source has no impression log (they are then derived by
    the exposure policy). `relevance` is the simulator's ground truth, None for real sources.
    `users` holds user attributes where the source has them (what a production ranker sees and
    the policy does not), else None.
    """

    source: str
    interactions: pd.DataFrame
    items: pd.DataFrame
    impressions: pd.DataFrame | None = None
    relevance: pd.DataFrame | None = None
    users: pd.DataFrame | None = None  # user_id + attribute columns (e.g. MovieLens age, gender, occupation, zip)
    files: dict[str, str] | None = None  # table -> the file it was read from (`events`: rows indexed by file line)


def sequences_frame(user_ids: np.ndarray, histories: list[np.ndarray], targets: np.ndarray) -> pd.DataFrame:
    """A sequences table: user_id int64, history list<int64> (oldest first), target int64."""
    return pd.DataFrame(
        {
            "user_id": np.asarray(user_ids, dtype=np.int64),
            "history": [np.asarray(h, dtype=np.int64) for h in histories],
            "target": np.asarray(targets, dtype=np.int64),
        }
    )
