"""Great Expectations suites: what passes, and that failures name table, expectation and rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from adagrpo_pipeline.recdata import validation as v
from adagrpo_pipeline.recdata.errors import DataValidationError

TS = (1, 2_000_000_000)


def _inter(**overrides) -> pd.DataFrame:
    df = pd.DataFrame({"user_id": [1, 1, 2], "item_id": [10, 11, 10], "timestamp": [100, 200, 300], "event": ["c", "c", "c"]})
    return df.assign(**overrides)


def test_clean_raw_interactions_pass() -> None:
    summary = v.raw_interactions_suite(_inter(), pd.Series([10, 11]), TS).validate()
    assert summary["rows"] == 3 and summary["expectations"] == 12


def test_string_ids_are_accepted_in_raw_tables() -> None:
    df = _inter(user_id=["a", "a", "b"], item_id=["x", "y", "x"])
    assert v.raw_interactions_suite(df, pd.Series(["x", "y"]), TS).validate()["rows"] == 3


@pytest.mark.parametrize(
    ("df", "expected"),
    [
        (_inter().drop(columns="timestamp"), ["expect_table_columns_to_match_set", "'missing': ['timestamp']"]),
        (_inter(user_id=[1.0, np.nan, 2.0]), ["expect_column_values_to_not_be_null(column='user_id')", "1 bad row(s) of 3",
                                             "observed 'float64'"]),
        (_inter(timestamp=["2020-01-01", "b", "c"]), ["expect_column_values_to_be_in_type_list(column='timestamp'", "observed 'str'"]),
        (_inter(timestamp=[-5, 200, 4_000_000_000]), ["expect_column_values_to_be_between(column='timestamp'", "2 bad row(s)", "-5", "4000000000"]),
        (_inter(item_id=[10, 10, 10], timestamp=[100, 100, 300], user_id=[1, 1, 2]), ["expect_compound_columns_to_be_unique", "2 bad row(s)"]),
        (_inter(item_id=[10, 99, 10]), ["expect_column_values_to_be_in_set(column='item_id'", "99"]),
    ],
    ids=["missing-column", "null-id", "wrong-dtype", "impossible-timestamp", "duplicate-event", "unknown-item"],
)
def test_raw_interaction_failures_are_explained(df: pd.DataFrame, expected: list[str]) -> None:
    with pytest.raises(DataValidationError) as err:
        v.raw_interactions_suite(df, pd.Series([10, 11]), TS).validate()
    msg = str(err.value)
    assert msg.startswith("table 'raw_interactions' failed")
    for fragment in expected:
        assert fragment in msg, msg


def test_derived_suites_check_id_ranges_and_histories() -> None:
    seq = pd.DataFrame({"user_id": [0, 1], "history": [np.array([0, 1]), np.array([5])], "target": [1, 2]})
    suites = v.sequences_suites("train_sequences", seq, n_users=2, n_items=3, max_history=5)
    suites[0].validate()
    with pytest.raises(DataValidationError, match=r"(?s)table 'train_sequences.history'.*max_value=2.0"):
        suites[1].validate()
    empty_history = seq.assign(history=[np.array([0]), np.array([], dtype=np.int64)])
    with pytest.raises(DataValidationError, match=r"(?s)history_length.*min_value=1"):
        v.sequences_suites("train_sequences", empty_history, 2, 3, 5)[0].validate()


def test_items_suite_requires_every_contiguous_id() -> None:
    items = pd.DataFrame({"item_id": [0, 1, 3], "title": ["a", "b", "c"], "text": ["a", "b", ""]})
    with pytest.raises(DataValidationError) as err:
        v.items_suite(items, n_items=3).validate()
    msg = str(err.value)
    assert "max_value=2" in msg and "expect_column_value_lengths_to_be_between(column='text'" in msg
