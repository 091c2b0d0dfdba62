"""Logged impressions as ranker training data.

A request = one slate shown to a user at a time; its history = the user's interactions
strictly before the request's timestamp. Requests are split so that nothing the policy is
evaluated on leaks into the ranker:

- `test`: the request in which the user clicked their test target (last interaction);
- `valid`: the request in which the user clicked their valid target (second to last);
- `train`: every other request whose history stops before the valid target;
- later requests (no held-out click, but a history that already holds a held-out item) are
  left out.

Histories are packed as the SASRec token ids of `adagrpo_pipeline.sasrec.model`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from adagrpo_pipeline.recdata.prepare import user_segments
from adagrpo_pipeline.sasrec.model import BOS, OFFSET, PAD


@dataclass
class EventIndex:
    """Every user's interactions in order, as one array with per-user [start, end)."""

    items: np.ndarray
    timestamps: np.ndarray
    starts: np.ndarray  # indexed by user id; users without events have start == end
    ends: np.ndarray

    @classmethod
    def from_interactions(cls, interactions: pd.DataFrame, n_users: int | None = None) -> EventIndex:
        users = interactions["user_id"].to_numpy(np.int64)
        if len(users) and np.any(np.diff(users) < 0):
            raise ValueError("interactions must be ordered by user (then time), as ingest writes them")
        n_users = int(users.max()) + 1 if n_users is None and len(users) else (n_users or 0)
        s, e = user_segments(users)
        starts = np.zeros(n_users, dtype=np.int64)
        ends = np.zeros(n_users, dtype=np.int64)
        present = users[s]
        starts[present], ends[present] = s, e
        return cls(interactions["item_id"].to_numpy(np.int64), interactions["timestamp"].to_numpy(np.int64), starts, ends)

    def cuts_before(self, users: np.ndarray, timestamps: np.ndarray) -> np.ndarray:
        """Per (user, time): how many of the user's events happened strictly before `time`."""
        out = np.empty(len(users), dtype=np.int64)
        order = np.argsort(users, kind="stable")
        u_sorted = users[order]
        bounds = np.searchsorted(u_sorted, np.arange(len(self.starts) + 1))
        for u in np.unique(u_sorted):
            rows = order[bounds[u] : bounds[u + 1]]
            ts = self.timestamps[self.starts[u] : self.ends[u]]
            out[rows] = np.searchsorted(ts, timestamps[rows], side="left")
        return out

    def histories(self, users: np.ndarray, cuts: np.ndarray, max_history: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Packed (n, max_history + 1) token ids [BOS, oldest … newest, PAD …] and lengths
        (including BOS); vectorised gather."""
        starts = self.starts[users]
        length = np.minimum(cuts, max_history)
        first = starts + cuts - length
        pos = np.arange(max_history)[None, :]
        idx = first[:, None] + pos
        inside = pos < length[:, None]
        tokens = np.where(inside, self.items[np.where(inside, idx, 0)] + OFFSET, PAD)
        packed = np.concatenate([np.full((len(users), 1), BOS), tokens], axis=1)
        return torch.as_tensor(packed, dtype=torch.long), torch.as_tensor(length + 1, dtype=torch.long)


@dataclass
class Requests:
    """One row per request: user, history cut, the slate (padded with -1) and its clicks."""

    users: np.ndarray
    cuts: np.ndarray
    slates: np.ndarray  # (n, S) item ids, -1 = padding
    clicked: np.ndarray  # (n, S) bool
    split: np.ndarray  # "train" | "valid" | "test" | "after"

    def subset(self, mask: np.ndarray) -> Requests:
        return Requests(self.users[mask], self.cuts[mask], self.slates[mask], self.clicked[mask], self.split[mask])

    def __len__(self) -> int:
        return len(self.users)


def build_requests(impressions: pd.DataFrame, events: EventIndex, valid: pd.DataFrame, test: pd.DataFrame) -> Requests:
    """Group impressions into requests and split them (module docstring). `valid`/`test`:
    the leave-one-out sequences tables (user_id, target)."""
    if impressions.empty:
        raise ValueError("impressions is empty: the ranker needs logged (or derived) impressions")
    imp = impressions.sort_values(["request_id", "position"], kind="stable")
    req_ids, first, sizes = np.unique(imp["request_id"].to_numpy(), return_index=True, return_counts=True)
    n, width = len(req_ids), int(sizes.max())
    slot = np.arange(len(imp)) - np.repeat(first, sizes)
    row = np.repeat(np.arange(n), sizes)
    slates = np.full((n, width), -1, dtype=np.int64)
    clicked = np.zeros((n, width), dtype=bool)
    slates[row, slot] = imp["item_id"].to_numpy(np.int64)
    clicked[row, slot] = imp["clicked"].to_numpy(bool)
    users = imp["user_id"].to_numpy(np.int64)[first]
    ts = imp["timestamp"].to_numpy(np.int64)[first]
    cuts = events.cuts_before(users, ts)

    def clicks_target(table: pd.DataFrame) -> np.ndarray:
        target = np.full(len(events.starts), -2, dtype=np.int64)
        target[table["user_id"].to_numpy(np.int64)] = table["target"].to_numpy(np.int64)
        return ((slates == target[users][:, None]) & clicked).any(axis=1)

    n_events = (events.ends - events.starts)[users]
    split = np.where(cuts <= n_events - 2, "train", "after").astype(object)
    split[clicks_target(valid)] = "valid"
    split[clicks_target(test)] = "test"
    return Requests(users, cuts, slates, clicked, split.astype(str))


def flat_scores_labels(scores: torch.Tensor | np.ndarray, requests: Requests) -> tuple[np.ndarray, np.ndarray]:
    """(n, S) slate scores -> 1-D scores and labels of the real (unpadded) slots."""
    s = scores.detach().float().cpu().numpy() if torch.is_tensor(scores) else np.asarray(scores)
    mask = requests.slates >= 0
    return s[mask], requests.clicked[mask].astype(np.float64)
