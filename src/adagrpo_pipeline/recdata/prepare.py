"""From validated raw tables to the derived tables: value filter, unknown-item policy,
k-core filter, contiguous id remapping (mapping tables kept), impressions (read or derived),
and leave-one-out sequences."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .config import IngestParams
from .events import id_format_hints
from .exposure_policy import derive_impressions
from .schema import (
    IMPRESSIONS,
    INTERACTIONS,
    ITEMS,
    RELEVANCE,
    USERS,
    RawTables,
    conform,
    empty_frame,
    sequences_frame,
)

log = logging.getLogger(__name__)

# Leave-one-out (docs/architecture.md, "Data contracts"): how many of a user's last events each split holds out.
HELD_OUT_TEST = 1  # the test target is the last event
HELD_OUT_VALID = 2  # the valid target is the second to last: training and validation see neither


@dataclass
class DerivedTables:
    interactions: pd.DataFrame
    impressions: pd.DataFrame
    items: pd.DataFrame
    user_map: pd.DataFrame
    item_map: pd.DataFrame
    relevance: pd.DataFrame
    users: pd.DataFrame
    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame
    impressions_derived: bool


def order_events(interactions: pd.DataFrame) -> pd.DataFrame:
    """Sort by user, then timestamp; ties keep the source file's order (stable)."""
    out = interactions.reset_index(drop=True)
    order = np.lexsort((np.arange(len(out)), out["timestamp"].to_numpy(), out["user_id"].to_numpy()))
    return out.iloc[order].reset_index(drop=True)


def kcore(interactions: pd.DataFrame, user_core: int, item_core: int) -> pd.DataFrame:
    """Iteratively drop users with < user_core and items with < item_core interactions."""
    df = interactions
    while True:
        u_counts = df["user_id"].map(df["user_id"].value_counts())
        i_counts = df["item_id"].map(df["item_id"].value_counts())
        keep = (u_counts >= user_core) & (i_counts >= item_core)
        if keep.all():
            return df
        df = df[keep]


def id_map(raw_ids: pd.Series) -> tuple[pd.DataFrame, np.ndarray]:
    """Contiguous ids 0..n-1 in sorted order of the raw ids: (mapping table with the raw ids
    as strings, sorted unique raw ids for `_lookup`)."""
    uniq = np.sort(raw_ids.unique())
    return pd.DataFrame({"id": np.arange(len(uniq), dtype=np.int64), "raw_id": pd.Series(uniq).astype(str)}), uniq


def _lookup(values: pd.Series, uniq: np.ndarray) -> np.ndarray:
    pos = np.searchsorted(uniq, values.to_numpy())
    pos = np.clip(pos, 0, len(uniq) - 1)
    found = uniq[pos] == values.to_numpy()
    return np.where(found, pos, -1).astype(np.int64)


def user_segments(users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(starts, ends) of each run of equal user ids in an array ordered by user."""
    users = np.asarray(users)
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]]) if len(users) else np.array([], dtype=np.int64)
    return starts, np.r_[starts[1:], len(users)].astype(np.int64)


def leave_one_out(interactions: pd.DataFrame, max_history: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Last event = test, second to last = valid, every earlier prefix of length >= 1 = train.

    `interactions` must already be ordered by `order_events`. Histories keep the last
    `max_history` items, oldest first.
    """
    users = interactions["user_id"].to_numpy(np.int64)
    items = interactions["item_id"].to_numpy(np.int64)
    starts, ends = user_segments(users)
    out: dict[str, tuple[list, list, list]] = {k: ([], [], []) for k in ("train", "valid", "test")}
    for s, e in zip(starts, ends, strict=True):
        n = e - s
        if n <= HELD_OUT_VALID:  # no training prefix would be left
            continue
        seq = items[s:e]
        for t in range(1, n):
            split = "test" if t == n - HELD_OUT_TEST else "valid" if t == n - HELD_OUT_VALID else "train"
            u, h, y = out[split]
            u.append(users[s])
            h.append(seq[max(0, t - max_history) : t])
            y.append(seq[t])
    return tuple(sequences_frame(np.asarray(u), h, np.asarray(y)) for u, h, y in out.values())  # type: ignore[return-value]


def drop_held_out(interactions: pd.DataFrame, n_last: int = HELD_OUT_VALID) -> pd.DataFrame:
    """The training events of a leave-one-out split: each user's last `n_last` events removed
    (`interactions` ordered by user then time, as `ingest` writes it)."""
    rank_from_end = interactions.groupby("user_id").cumcount(ascending=False)
    return interactions[rank_from_end >= n_last]


def users_table(raw_users: pd.DataFrame | None, uniq: np.ndarray) -> pd.DataFrame:
    """One row per kept user (contiguous ids), with the source's user attributes as strings
    ('' for a user the attribute table does not list); user_id alone without attributes."""
    out = pd.DataFrame({"user_id": np.arange(len(uniq), dtype=np.int64)})
    if raw_users is None or raw_users.empty:
        return conform(out, USERS)
    raw = raw_users.drop_duplicates("user_id", keep="first")
    pos = _lookup(raw["user_id"], uniq)
    for c in raw.columns.drop("user_id"):
        col = np.full(len(uniq), "", dtype=object)
        col[pos[pos >= 0]] = raw.loc[pos >= 0, c].astype(str).to_numpy()
        out[c] = pd.Series(col, dtype="str")
    missing = len(uniq) - int((pos >= 0).sum())
    if missing:
        log.info("user attributes: %d of %d users are not in the source's user table (attributes '')", missing, len(uniq))
    return conform(out, USERS, keep_extra=True)


def prepare(raw: RawTables, p: IngestParams) -> DerivedTables:
    inter = _filtered(raw, p)
    user_map, users = id_map(inter["user_id"])
    item_map, items_u = id_map(inter["item_id"])
    inter = inter.assign(user_id=_lookup(inter["user_id"], users), item_id=_lookup(inter["item_id"], items_u))
    inter = order_events(conform(inter, INTERACTIONS))

    items = raw.items[raw.items["item_id"].isin(items_u)].copy()
    items["item_id"] = _lookup(items["item_id"], items_u)
    items = conform(items.sort_values("item_id"), ITEMS, keep_extra=True)
    impressions, derived = _impressions(raw, p, inter, users, items_u)
    relevance = _relevance(raw.relevance, users, items_u)
    train, valid, test = leave_one_out(inter, p.max_history)
    return DerivedTables(
        users=users_table(raw.users, users),
        interactions=inter,
        impressions=impressions,
        items=items,
        user_map=user_map.rename(columns={"id": "user_id"}),
        item_map=item_map.rename(columns={"id": "item_id"}),
        relevance=relevance,
        train=train,
        valid=valid,
        test=test,
        impressions_derived=derived,
    )


def _filtered(raw: RawTables, p: IngestParams) -> pd.DataFrame:
    """The raw interactions kept by the value filter, the unknown-item policy and the k-core
    filter (raw ids)."""
    inter = raw.interactions.copy()
    n0 = len(inter)
    if p.min_value is not None:
        if "value" not in inter:
            raise ValueError(f"ingest.min_value is set but source '{raw.source}' has no interaction value (rating)")
        inter = inter[inter["value"] >= p.min_value]
        log.info("min_value %.2f kept %d of %d interactions", p.min_value, len(inter), n0)
    inter = _known_items(inter, raw)
    inter = kcore(inter, p.user_core, p.item_core)
    if inter.empty:
        raise ValueError(f"the {p.user_core}/{p.item_core}-core filter left no interactions of {n0}; lower ingest.user_core/item_core")
    log.info("%d-%d core: %d interactions, %d users, %d items (from %d interactions)", p.user_core, p.item_core,
             len(inter), inter["user_id"].nunique(), inter["item_id"].nunique(), n0)
    return inter


def _known_items(inter: pd.DataFrame, raw: RawTables) -> pd.DataFrame:
    """The interactions of items in the catalog; none at all is an error that names the likely
    cause (ids written differently in the two files)."""
    known = inter["item_id"].isin(raw.items["item_id"])
    if known.all():
        return inter
    # only reachable with drop_unknown_items (else the raw suite fails)
    log.warning("dropping %d interactions of %d items missing from the catalog", (~known).sum(), inter.loc[~known, "item_id"].nunique())
    if not known.any():
        hint = id_format_hints(inter["item_id"], raw.items["item_id"])
        where = f" ('{raw.files['interactions']}' vs '{raw.files['items']}')" if raw.files else ""
        examples = ", ".join(repr(i) for i in inter["item_id"].drop_duplicates().head(3))
        catalog = ", ".join(repr(i) for i in raw.items["item_id"].head(3))
        raise ValueError(
            f"ingest.drop_unknown_items: none of the {len(inter)} interactions' item ids is in the items table{where}: "
            f"interactions name e.g. {examples}, the items table has e.g. {catalog}. "
            + (hint if hint else "Check that both files describe the same catalog and write item ids the same way."))
    return inter[known]


def _impressions(raw: RawTables, p: IngestParams, inter: pd.DataFrame, users: np.ndarray,
                 items_u: np.ndarray) -> tuple[pd.DataFrame, bool]:
    """The source's impressions of kept users and items (contiguous ids), or, when it has none,
    impressions derived by the exposure policy; and whether they were derived."""
    if raw.impressions is not None:
        imp = raw.impressions.copy()
        imp["user_id"] = _lookup(imp["user_id"], users)
        imp["item_id"] = _lookup(imp["item_id"], items_u)
        keep = (imp["user_id"] >= 0) & (imp["item_id"] >= 0)
        if not keep.all():
            log.info("dropping %d of %d impressions of users/items removed by the core filter", (~keep).sum(), len(imp))
        return conform(imp[keep], IMPRESSIONS), False
    ep = p.exposure_policy
    impressions = derive_impressions(inter, len(items_u), min(ep.slate_size, len(items_u)), ep.popularity_gamma, ep.seed,
                                     personalized_share=ep.personalized_share, neighbors=ep.neighbors,
                                     recent=ep.recent, window=ep.window)
    log.info("derived %d impressions (%d requests, slate %d, gamma %.2f, personalised share %.2f) by the exposure policy",
             len(impressions), len(inter), ep.slate_size, ep.popularity_gamma, ep.personalized_share)
    return impressions, True


def _relevance(raw_relevance: pd.DataFrame | None, users: np.ndarray, items_u: np.ndarray) -> pd.DataFrame:
    """The source's ground-truth relevance of kept users and items (contiguous ids); empty when
    it has none."""
    if raw_relevance is None:
        return empty_frame(RELEVANCE)
    rel = raw_relevance.assign(user_id=_lookup(raw_relevance["user_id"], users), item_id=_lookup(raw_relevance["item_id"], items_u))
    return conform(rel[(rel["user_id"] >= 0) & (rel["item_id"] >= 0)], RELEVANCE)
