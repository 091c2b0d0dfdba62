"""The documented exposure policy (docs/architecture.md, "Data contracts").

Exposure policy, for sources without impression logs: every interaction becomes one request
whose slate holds `slate_size` items: the interacted item plus `slate_size - 1` distinct other
items drawn without replacement with probability proportional to popularity ** gamma
(popularity = interaction count of the item). Positions are a seeded random permutation, so
the interacted item is equally likely at every position.

Personalised (`personalized_share` ρ > 0), as a production logging policy is: each draw of a
slate's candidate stream comes with probability ρ from the user's own neighbourhood — one of
the user's last `recent` items before the request, uniformly, then one of its `neighbors`
strongest co-occurrence neighbours ∝ cosine similarity (co-occurrences / √(n_a · n_b), as
item-based collaborative filtering ranks neighbours; two items co-occur when at most
`window` events apart in a user's sequence, counted on the training events only: every user's
last two events, the valid and test targets, are left out) — and with probability 1 − ρ ∝
popularity ** gamma. The first `slate_size - 1` distinct candidates other than the interacted
item fill the slate. A request without history, or a row whose stream is too short, is filled
∝ popularity ** gamma as above.

Sampling: for each request, items are drawn *with* replacement ∝ weight (a binary search in
the cumulative weights), and the first `slate_size - 1` distinct draws other than the
interacted item are kept. Skipping repeats is exactly sequential sampling without
replacement, so this is the same distribution as the Gumbel-top-k trick, at O(draws · log n)
per request instead of O(n_items) (`benchmarks/exposure_policy.py` measures both).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .schema import IMPRESSIONS, conform


def expected_draws(weights: np.ndarray, k: int) -> float:
    """Expected draws with replacement to see k + 1 distinct items when the heaviest items come
    first (the likely order): sum over j = 0..k of 1 / (1 - mass of the j heaviest items)."""
    top = np.sort(weights)[::-1][: k + 1] / weights.sum()
    head = np.concatenate([[0.0], np.cumsum(top)[:-1]])
    return float(np.sum(1.0 / np.clip(1.0 - head, 1e-12, None)))


def sample_distinct(cum_weights: np.ndarray, exclude: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """For each row, `k` distinct items other than `exclude[row]`, sampled sequentially
    without replacement with probability ∝ weight (`cum_weights` = cumsum of the weights).

    Draws with replacement and keeps first occurrences, in draw order, which is exactly
    sequential sampling without replacement; rows that saw fewer than `k` distinct admissible
    items are drawn again with twice as many draws. When the weights are so concentrated that
    the draws needed approach the catalog size, rows use the Gumbel-top-k trick instead (the
    same distribution, O(n_items) per row).
    """
    n_rows, n_items = len(exclude), len(cum_weights)
    out = np.empty((n_rows, k), dtype=np.int64)
    if k == 0 or n_rows == 0:
        return out
    weights = np.diff(cum_weights, prepend=0.0)
    budget = n_items / 8  # past this many draws per row, Gumbel-top-k is cheaper
    m = int(np.ceil(2 * expected_draws(weights, k))) + 8
    todo = np.arange(n_rows)
    while todo.size and m <= budget:
        picks = np.searchsorted(cum_weights, rng.random((todo.size, m)) * cum_weights[-1], side="right")
        chosen, done = first_distinct(picks, exclude[todo], k)
        out[todo[done]] = chosen[done]
        todo, m = todo[~done], 2 * m
    if todo.size:
        out[todo] = gumbel_top_k(weights, exclude[todo], k, rng)
    return out


def gumbel_top_k(weights: np.ndarray, exclude: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """`k` distinct items per row other than `exclude[row]` (if >= 0), without replacement
    ∝ weight: the top k of log(weight) + Gumbel noise. Chunked to ~128 MB of keys."""
    with np.errstate(divide="ignore"):
        log_w = np.log(weights)
    out = np.empty((len(exclude), k), dtype=np.int64)
    chunk = max(1, 2**24 // len(weights))
    for lo in range(0, len(exclude), chunk):
        hi = min(lo + chunk, len(exclude))
        keys = log_w[None, :] + rng.gumbel(size=(hi - lo, len(weights)))
        rows, excluded = np.arange(hi - lo), exclude[lo:hi]
        keys[rows[excluded >= 0], excluded[excluded >= 0]] = -np.inf
        out[lo:hi] = np.argpartition(-keys, k - 1, axis=1)[:, :k]
    return out


def cooccurrence_neighbors(interactions: pd.DataFrame, n_items: int, window: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each item's `k` most similar items by cosine-normalised co-occurrence (n_items, k) and
    their cumulative similarities (n_items, k), from every user's events but the last two
    (`interactions` ordered by user then time). Items that co-occur with nothing have zero weights."""
    users = interactions["user_id"].to_numpy(np.int64)
    items = interactions["item_id"].to_numpy(np.int64)
    rank_from_end = interactions.groupby("user_id").cumcount(ascending=False).to_numpy()
    keep = rank_from_end >= 2
    users, items = users[keep], items[keep]
    counts = np.zeros((n_items, n_items), dtype=np.float32)
    for lag in range(1, window + 1):
        same = users[lag:] == users[:-lag]
        a, b = items[:-lag][same], items[lag:][same]
        np.add.at(counts, (a, b), 1.0)
        np.add.at(counts, (b, a), 1.0)
    np.fill_diagonal(counts, 0.0)
    freq = np.bincount(items, minlength=n_items).astype(np.float32)
    norm = np.sqrt(np.maximum(freq, 1.0))
    counts /= norm[:, None] * norm[None, :]  # cosine item-item similarity, as item-based CF ranks neighbours
    k = min(k, n_items - 1)
    idx = np.argpartition(-counts, k - 1, axis=1)[:, :k] if k > 0 else np.zeros((n_items, 0), dtype=np.int64)
    weights = np.take_along_axis(counts, idx, axis=1).astype(np.float64)
    return idx.astype(np.int64), np.cumsum(weights, axis=1)


def _personal_draws(interactions: pd.DataFrame, idx: np.ndarray, cum: np.ndarray, recent: int, m: int,
                    rng: np.random.Generator) -> np.ndarray:
    """(n_requests, m) neighbour draws of one of the user's last `recent` items before each
    request; -1 where the request has no history or its anchor has no neighbour."""
    users = interactions["user_id"].to_numpy(np.int64)
    items = interactions["item_id"].to_numpy(np.int64)
    n = len(users)
    first = np.r_[0, np.flatnonzero(users[1:] != users[:-1]) + 1]
    start = np.repeat(first, np.diff(np.r_[first, n]))
    before = np.arange(n) - start  # events of the same user before this one
    span = np.minimum(before, recent)
    back = 1 + np.floor(rng.random((n, m)) * np.maximum(span, 1)[:, None]).astype(np.int64)
    anchors = items[np.clip(np.arange(n)[:, None] - back, 0, None)]
    total = cum[anchors, -1]
    u = rng.random((n, m)) * total
    col = (cum[anchors] <= u[..., None]).sum(axis=-1).clip(max=idx.shape[1] - 1)
    out = idx[anchors, col]
    return np.where((span[:, None] > 0) & (total > 0), out, -1)


def first_distinct(picks: np.ndarray, exclude: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the first `k` distinct entries of `picks` (in order) that are >= 0 and not
    `exclude[row]`; and which rows had `k` of them. Rows without get undefined entries."""
    order = np.argsort(picks, axis=1, kind="stable")
    ordered = np.take_along_axis(picks, order, axis=1)
    repeat_sorted = np.zeros_like(ordered, dtype=bool)
    repeat_sorted[:, 1:] = ordered[:, 1:] == ordered[:, :-1]
    repeat = np.empty_like(repeat_sorted)
    np.put_along_axis(repeat, order, repeat_sorted, axis=1)
    keep = ~repeat & (picks != exclude[:, None]) & (picks >= 0)
    rank = np.cumsum(keep, axis=1)
    done = rank[:, -1] >= k if picks.shape[1] else np.zeros(len(picks), dtype=bool)
    out = np.zeros((len(picks), k), dtype=np.int64)
    chosen = keep[done] & (rank[done] <= k)
    out[done] = picks[done][chosen].reshape(-1, k)
    return out, done


def derive_impressions(
    interactions: pd.DataFrame,
    n_items: int,
    slate_size: int,
    popularity_gamma: float,
    seed: int,
    chunk_size: int = 65536,
    personalized_share: float = 0.0,
    neighbors: int = 50,
    recent: int = 5,
    window: int = 3,
) -> pd.DataFrame:
    """Impressions for logs without them, by the exposure policy above.

    `interactions` must use contiguous item ids in [0, n_items), ordered by user then time. One
    request per row, in row order; request_id = row number.
    """
    items = interactions["item_id"].to_numpy(np.int64)
    popularity = np.bincount(items, minlength=n_items).astype(np.float64)
    weights = np.ones(n_items) if popularity_gamma == 0.0 else popularity**popularity_gamma
    eligible = int(np.count_nonzero(weights))
    if slate_size < 1 or slate_size > eligible:
        raise ValueError(
            f"slate_size must be in [1, {eligible}] (items that can be shown: popularity ** gamma > 0), got {slate_size}"
        )
    rng = np.random.default_rng(seed)
    cum_weights = np.cumsum(weights)
    n_req = len(items)
    slates = np.empty((n_req, slate_size), dtype=np.int64)
    slates[:, 0] = items
    for lo in tqdm(range(0, n_req, chunk_size), desc="exposure policy", unit="chunk", disable=None if n_req > chunk_size else True):
        hi = min(lo + chunk_size, n_req)
        slates[lo:hi, 1:] = sample_distinct(cum_weights, items[lo:hi], slate_size - 1, rng)
    if personalized_share > 0 and slate_size > 1:  # the personalised stream replaces the slates it can fill
        idx, cum = cooccurrence_neighbors(interactions, n_items, window, neighbors)
        m = 4 * (slate_size - 1) + 8
        personal = _personal_draws(interactions, idx, cum, recent, m, rng)
        popular = np.searchsorted(cum_weights, rng.random((n_req, m)) * cum_weights[-1], side="right")
        stream = np.where(rng.random((n_req, m)) < personalized_share, personal, popular)
        chosen, done = first_distinct(stream, items, slate_size - 1)
        slates[done, 1:] = chosen[done]
    perm = np.argsort(rng.random((n_req, slate_size)), axis=1)  # random position of each slot
    positions = np.empty_like(perm)
    np.put_along_axis(positions, perm, np.arange(slate_size)[None, :].repeat(n_req, 0), axis=1)
    clicked = np.zeros((n_req, slate_size), dtype=bool)
    clicked[:, 0] = True
    out = pd.DataFrame(
        {
            "request_id": np.repeat(np.arange(n_req, dtype=np.int64), slate_size),
            "user_id": np.repeat(interactions["user_id"].to_numpy(np.int64), slate_size),
            "timestamp": np.repeat(interactions["timestamp"].to_numpy(np.int64), slate_size),
            "item_id": slates.ravel(),
            "position": positions.ravel(),
            "clicked": clicked.ravel(),
        }
    )
    out = out.sort_values(["request_id", "position"], kind="stable")
    return conform(out, IMPRESSIONS)
