"""k-core filter, id remapping, stable ordering and leave-one-out splitting."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from adagrpo_pipeline.recdata.config import IngestParams
from adagrpo_pipeline.recdata.prepare import kcore, leave_one_out, order_events, prepare
from adagrpo_pipeline.recdata.schema import RawTables


def test_kcore_is_iterative() -> None:
    # Pass 1 drops item z (1 interaction) and user c (1); that leaves user b with 1, so pass 2
    # drops b. A single pass would have kept (b, x).
    df = pd.DataFrame({
        "user_id": ["a", "a", "b", "b", "c", "d", "d"],
        "item_id": ["x", "y", "x", "z", "y", "x", "y"],
    })
    out = kcore(df, user_core=2, item_core=2)
    assert sorted(zip(out["user_id"], out["item_id"], strict=True)) == [("a", "x"), ("a", "y"), ("d", "x"), ("d", "y")]
    assert len(kcore(df, user_core=1, item_core=1)) == 7


def test_order_events_keeps_file_order_for_ties() -> None:
    df = pd.DataFrame({"user_id": [1, 0, 1, 1, 0], "item_id": [5, 6, 7, 8, 9], "timestamp": [10, 3, 10, 5, 3]})
    out = order_events(df)
    assert out["item_id"].tolist() == [6, 9, 8, 5, 7]


def test_leave_one_out_and_max_history() -> None:
    df = pd.DataFrame({"user_id": [0] * 5 + [1] * 3 + [2] * 2, "item_id": [1, 2, 3, 4, 5, 7, 8, 9, 1, 2],
                       "timestamp": np.arange(10)})
    train, valid, test = leave_one_out(order_events(df), max_history=2)
    assert test.set_index("user_id")["target"].to_dict() == {0: 5, 1: 9}  # user 2 has < 3 events
    assert [h.tolist() for h in test["history"]] == [[3, 4], [7, 8]]
    assert valid["target"].tolist() == [4, 8] and [h.tolist() for h in valid["history"]] == [[2, 3], [7]]
    assert train["target"].tolist() == [2, 3]
    assert [h.tolist() for h in train["history"]] == [[1], [1, 2]]
    assert train["history"].map(len).min() >= 1


def test_prepare_remaps_to_contiguous_ids_and_keeps_maps() -> None:
    users = ["u9", "u9", "u9", "u3", "u3", "u3", "u3"]
    items = ["b", "c", "a", "a", "b", "c", "d"]
    raw = RawTables(
        "events",
        pd.DataFrame({"user_id": users, "item_id": items, "timestamp": [5, 6, 7, 1, 2, 3, 4], "event": "click"}),
        pd.DataFrame({"item_id": ["a", "b", "c", "d", "e"], "title": list("ABCDE"), "text": list("ABCDE"), "color": list("rgbyk")}),
    )
    p = IngestParams(source="events", user_core=3, item_core=1, exposure_policy={"slate_size": 3, "seed": 0})
    d = prepare(raw, p)
    assert d.user_map.to_dict("list") == {"user_id": [0, 1], "raw_id": ["u3", "u9"]}
    assert d.item_map.to_dict("list") == {"item_id": [0, 1, 2, 3], "raw_id": ["a", "b", "c", "d"]}
    assert d.items["item_id"].tolist() == [0, 1, 2, 3] and d.items["color"].tolist() == list("rgby")  # "e" unused
    assert d.interactions["item_id"].tolist() == [0, 1, 2, 3, 1, 2, 0]
    assert d.impressions_derived and len(d.impressions) == 7 * 3
    assert d.test["target"].tolist() == [3, 0] and d.valid["target"].tolist() == [2, 2]
    assert d.relevance.empty


def test_prepare_min_value_needs_values() -> None:
    raw = RawTables("events", pd.DataFrame({"user_id": [1], "item_id": [1], "timestamp": [1], "event": "x"}),
                    pd.DataFrame({"item_id": [1], "title": ["a"], "text": ["a"]}))
    with pytest.raises(ValueError, match="ingest.min_value is set but source 'events' has no interaction value"):
        prepare(raw, IngestParams(min_value=4.0))


def test_prepare_drops_unknown_items_when_asked() -> None:
    raw = RawTables(
        "events",
        pd.DataFrame({"user_id": [1] * 4, "item_id": [10, 11, 99, 12], "timestamp": [1, 2, 3, 4], "event": "x"}),
        pd.DataFrame({"item_id": [10, 11, 12], "title": list("abc"), "text": list("abc")}),
        impressions=pd.DataFrame({"request_id": [0, 0], "user_id": [1, 1], "timestamp": [3, 3], "item_id": [99, 12],
                                  "position": [0, 1], "clicked": [True, False]}),
    )
    d = prepare(raw, IngestParams(source="events", drop_unknown_items=True, user_core=3, item_core=1))
    assert d.item_map["raw_id"].tolist() == ["10", "11", "12"]
    assert len(d.interactions) == 3
    assert d.impressions["item_id"].tolist() == [2]  # the impression of item 99 is dropped
