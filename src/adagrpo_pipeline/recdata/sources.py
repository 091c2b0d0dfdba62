"""Dispatch `params:ingest.source` to its reader."""

from __future__ import annotations

from .config import IngestParams
from .events import EventsOptions, read_events
from .readers import read_amazon_reviews, read_movielens_1m, read_movielens_100k
from .schema import RawTables
from .simulator import simulate


def load_source(p: IngestParams) -> RawTables:
    if p.source == "movielens_100k":
        return read_movielens_100k(p.movielens_100k.path)
    if p.source == "movielens_1m":
        return read_movielens_1m(p.movielens_1m.path)
    if p.source == "amazon_reviews":
        a = p.amazon_reviews
        return read_amazon_reviews(a.path, a.reviews_file, a.meta_file)
    if p.source == "events":
        e = p.events
        options = EventsOptions(rename=e.rename, encoding=e.encoding, timestamp_unit=e.timestamp_unit,
                                drop_duplicate_events=e.drop_duplicate_events, event_types=e.event_types)
        return read_events(e.interactions_path, e.items_path, e.impressions_path, options)
    if p.source == "synthetic":
        return simulate(p.synthetic)
    raise ValueError(f"unknown ingest.source '{p.source}'")  # unreachable: IngestParams validates it
