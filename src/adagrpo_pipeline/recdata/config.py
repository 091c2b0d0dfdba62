"""Typed parameters of the `ingest` stage (`params:ingest`)."""

from __future__ import annotations

import codecs
from typing import Literal

from pydantic import Field, model_validator

from adagrpo_pipeline.params import Strict

from .simulator import SyntheticParams

SourceName = Literal["movielens_100k", "movielens_1m", "amazon_reviews", "events", "synthetic"]


class FolderSource(Strict):
    path: str = Field(description="folder holding the source's files")


class AmazonSource(FolderSource):
    reviews_file: str | None = Field(None, description="5-core reviews file name; found by pattern if null")
    meta_file: str | None = Field(None, description="metadata file name; found by pattern if null")


class EventsSource(Strict):
    interactions_path: str = "data/01_raw/events/interactions.parquet"
    items_path: str = "data/01_raw/events/items.parquet"
    impressions_path: str | None = Field(None, description="impression log; derived by the exposure policy if null")
    rename: dict[str, str] = Field(default_factory=dict, description="your column name -> contract column name")
    encoding: str = Field("utf-8", description="text encoding of CSV/TSV files (e.g. latin-1, cp1252, utf-8-sig)")
    timestamp_unit: Literal["auto", "s", "ms"] = Field(
        "auto", description="unix numbers in seconds or milliseconds; auto: milliseconds when a file's largest |t| >= 1e11")
    drop_duplicate_events: bool = Field(False, description="drop interaction rows that repeat an earlier row exactly "
                                        "(else validation reports them)")
    event_types: list[str] | None = Field(None, description="keep only interactions whose `event` is listed; null: all")

    @model_validator(mode="after")
    def _known_encoding(self) -> EventsSource:
        try:
            codecs.lookup(self.encoding)
        except LookupError as err:
            raise ValueError(f"ingest.events.encoding '{self.encoding}' is not an encoding Python knows") from err
        if self.event_types is not None and not self.event_types:
            raise ValueError("ingest.events.event_types is an empty list: list the event types to keep, or null for all")
        return self


class ExposurePolicy(Strict):
    """How impressions are derived for sources that have no impression log."""

    slate_size: int = Field(10, ge=2)
    popularity_gamma: float = Field(1.0, ge=0.0, description="items drawn with probability ∝ popularity ** gamma")
    personalized_share: float = Field(0.0, ge=0.0, le=1.0, description="share of a slate's other items drawn from the "
                                      "co-occurrence neighbours of the user's recent items (the rest ∝ popularity ** gamma)")
    neighbors: int = Field(50, ge=1, description="co-occurrence neighbours kept per item")
    recent: int = Field(5, ge=1, description="the user's last N items before the request whose neighbours are candidates")
    window: int = Field(3, ge=1, description="two items co-occur when at most this many events apart in a user's sequence")
    seed: int = 0


class ExposureThreshold(Strict):
    warn: float | None = None
    fail: float | None = None
    direction: Literal["max", "min"] = Field("max", description="'max': bad when above; 'min': bad when below")


class ValidationSettings(Strict):
    min_timestamp: int = Field(1, description="earliest plausible unix time (s); 0 and negatives are impossible")
    max_timestamp: int | None = Field(None, description="latest plausible unix time (s); null = now + 1 day")
    max_examples: int = Field(5, ge=1, description="bad rows quoted per failed expectation")


class IngestParams(Strict):
    source: SourceName = "movielens_100k"
    movielens_100k: FolderSource = FolderSource(path="data/01_raw/ml-100k")
    movielens_1m: FolderSource = FolderSource(path="data/01_raw/ml-1m")
    amazon_reviews: AmazonSource = AmazonSource(path="data/01_raw/amazon")
    events: EventsSource = EventsSource()
    synthetic: SyntheticParams = SyntheticParams()

    min_value: float | None = Field(None, description="keep interactions whose value (rating) is >= this")
    drop_unknown_items: bool = Field(False, description="drop interactions/impressions of items missing from the catalog instead of failing")
    user_core: int = Field(5, ge=1, description="k-core: minimum interactions per user")
    item_core: int = Field(5, ge=1, description="k-core: minimum interactions per item")
    max_history: int = Field(50, ge=1, description="longest history kept in a sequence sample")
    exposure_policy: ExposurePolicy = ExposurePolicy()
    exposure_thresholds: dict[str, ExposureThreshold] = Field(
        default_factory=lambda: {
            "gini_exposure": ExposureThreshold(warn=0.6, fail=0.98, direction="max"),
            "top10pct_share_exposure": ExposureThreshold(warn=0.5, fail=0.95, direction="max"),
            "top1pct_share_exposure": ExposureThreshold(warn=0.2, fail=0.8, direction="max"),
            "catalog_coverage": ExposureThreshold(warn=0.8, fail=0.2, direction="min"),
        },
        description="warn/fail bounds per exposure metric (direction max: bad above; min: bad below)")
    validation: ValidationSettings = ValidationSettings()

    @model_validator(mode="after")
    def _cores_leave_a_split(self) -> IngestParams:
        if self.user_core < 3:
            raise ValueError("user_core must be >= 3: leave-one-out needs a train, a valid and a test item per user")
        return self
