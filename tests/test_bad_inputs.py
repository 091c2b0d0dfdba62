"""Malformed inputs through a real Kedro session (`events` source): each fails with a message
naming what is wrong and where, and leaves no new derived version behind."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from adagrpo_pipeline.recdata.errors import DataValidationError, SourceProblemsError, SourceReadError
from adagrpo_pipeline.recdata.simulator import SyntheticParams, simulate

from conftest import derived_files, make_project, run_session

pytestmark = pytest.mark.slow


def _write_good_events(folder: Path) -> None:
    sim = simulate(SyntheticParams(n_users=40, n_items=60, n_categories=3, n_brands=4, requests_per_user=15, seed=5))
    folder.mkdir(parents=True, exist_ok=True)
    sim.interactions.to_csv(folder / "interactions.csv", index=False)
    sim.items[["item_id", "title", "text", "category"]].to_csv(folder / "items.csv", index=False)
    sim.impressions.to_parquet(folder / "impressions.parquet")


def _params(folder: Path) -> dict:
    return {"ingest": {"source": "events", "events": {
        "interactions_path": str(folder / "interactions.csv"),
        "items_path": str(folder / "items.csv"),
        "impressions_path": str(folder / "impressions.parquet"),
    }}}


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory, mlflow_db: Path) -> Path:
    """A project that already holds one good run's derived versions."""
    root = tmp_path_factory.mktemp("bad_inputs")
    project = make_project(root / "project", mlflow_db)
    _write_good_events(root / "good")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(project)
        run_session(project, params=_params(root / "good"))
    assert len(derived_files(project)) >= 12
    return project


def _edit_csv(name: str, edit: Callable[[pd.DataFrame], pd.DataFrame]) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        path = folder / name
        edit(pd.read_csv(path)).to_csv(path, index=False)
    return apply


def _edit_parquet(name: str, edit: Callable[[pd.DataFrame], pd.DataFrame]) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        path = folder / name
        edit(pd.read_parquet(path)).to_parquet(path)
    return apply


def _set(df: pd.DataFrame, row: int, col: str, value: object) -> pd.DataFrame:
    df = df.astype({col: object})
    df.loc[row, col] = value
    return df


def _write_bytes(name: str, content: Callable[[bytes], bytes]) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        path = folder / name
        path.write_bytes(content(path.read_bytes()))
    return apply


def _drop_item_from_catalog_and_impressions(folder: Path) -> None:
    """Only the interactions still name the dropped item."""
    items = pd.read_csv(folder / "items.csv")
    gone = int(items["item_id"].iloc[0])
    items.iloc[1:].to_csv(folder / "items.csv", index=False)
    imp = pd.read_parquet(folder / "impressions.parquet")
    imp[imp["item_id"] != gone].to_parquet(folder / "impressions.parquet")


CASES = {
    "missing-column": (
        _edit_csv("interactions.csv", lambda d: d.drop(columns="timestamp")),
        DataValidationError, ["table 'raw_interactions'", "expect_table_columns_to_match_set", "'missing': ['timestamp']"],
    ),
    "wrong-dtype": (
        _edit_csv("interactions.csv", lambda d: d.assign(timestamp=pd.to_datetime(d["timestamp"], unit="s").dt.strftime("%d/%m/%Y"))),
        SourceProblemsError, ["interactions.csv', lines 2, 3, 4, 5, 6 (and ", "column 'timestamp': not an ISO-8601 date-time ('",
                              "Fix: write e.g. 2024-05-01T12:30:00Z"],
    ),
    "null-ids": (
        _edit_csv("interactions.csv", lambda d: _set(d, 7, "user_id", None)),
        DataValidationError, ["(read from '", "expect_column_values_to_not_be_null(column='user_id')", "1 bad row(s)",
                              "examples (by file line):", "\n      9 "],  # row 7 = file line 9 (header on line 1)
    ),
    "duplicate-events": (
        _edit_csv("interactions.csv", lambda d: pd.concat([d, d.iloc[[3]]], ignore_index=True)),
        DataValidationError, ["expect_compound_columns_to_be_unique(column_list=['user_id', 'item_id', 'timestamp', 'event'])", "2 bad row(s)"],
    ),
    "impossible-timestamps": (
        _edit_csv("interactions.csv", lambda d: _set(_set(d, 0, "timestamp", -86400), 1, "timestamp", 4_102_444_800)),
        DataValidationError, ["expect_column_values_to_be_between(column='timestamp', min_value=1", "2 bad row(s)", "4102444800"],
    ),
    "impression-items-missing-from-catalog": (
        _edit_parquet("impressions.parquet", lambda d: _set(d, 5, "item_id", 99_999).astype({"item_id": "int64"})),
        DataValidationError, ["table 'raw_impressions'", "expect_column_values_to_be_in_set(column='item_id'", "99999"],
    ),
    "interaction-items-missing-from-catalog": (
        _drop_item_from_catalog_and_impressions,
        DataValidationError, ["table 'raw_interactions'", "expect_column_values_to_be_in_set(column='item_id'"],
    ),
    "duplicate-item-ids": (
        _edit_csv("items.csv", lambda d: pd.concat([d, d.iloc[[0]]], ignore_index=True)),
        DataValidationError, ["table 'raw_items'", "expect_column_values_to_be_unique(column='item_id')"],
    ),
    "clicked-not-boolean": (
        _edit_parquet("impressions.parquet", lambda d: d.assign(clicked=d["clicked"].map({True: "yes", False: "no"}))),
        SourceProblemsError, ["impressions.parquet', rows 1, 2, 3, 4, 5 (and ", "column 'clicked': not a boolean ('",
                              "Fix: write true/false or 1/0"],
    ),
    "empty-file": (
        _write_bytes("interactions.csv", lambda b: b""),
        SourceReadError, ["interactions.csv", "file is empty (0 bytes)"],
    ),
    "header-only-file": (
        _write_bytes("interactions.csv", lambda b: b.split(b"\n")[0] + b"\n"),
        SourceReadError, ["interactions.csv", "file has a header but no rows"],
    ),
    "undecodable-text": (
        _write_bytes("items.csv", lambda b: b.replace(b"Category", b"Cat\xe9gory", 1)),
        SourceReadError, ["items.csv", "undecodable text at line ", "byte 0xe9 is not valid utf-8", "ingest.events.encoding"],
    ),
    "truncated-parquet": (
        _write_bytes("impressions.parquet", lambda b: b[: len(b) // 2]),
        SourceReadError, ["impressions.parquet", "truncated or corrupt file"],
    ),
    "truncated-csv": (
        _write_bytes("interactions.csv", lambda b: b[: b.rfind(b"\n", 0, len(b) - 1) + 4]),
        SourceProblemsError, ["interactions.csv', line ", "fewer fields than the header's 4 (a truncated line"],
    ),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_malformed_input_fails_cleanly(case: str, seeded: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    corrupt, error, fragments = CASES[case]
    folder = tmp_path / "events"
    _write_good_events(folder)
    corrupt(folder)
    before = derived_files(seeded)
    monkeypatch.chdir(seeded)
    with pytest.raises(error) as err:
        run_session(seeded, params=_params(folder))
    message = str(err.value)
    for fragment in fragments:
        assert fragment in message, message
    assert derived_files(seeded) == before
