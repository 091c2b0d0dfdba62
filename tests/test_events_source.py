"""The `events` source on bad and unusual input: every error names the file, the line (or
parquet row) and the column, the cause and the fix; every handled case gives the right values.
Library-level (no Kedro session): the session-level drills are in test_bad_inputs.py and
test_publication.py."""

from __future__ import annotations

import gzip
import logging
from pathlib import Path

import pandas as pd
import pytest

from adagrpo_pipeline.pipelines.ingest.nodes import validate_raw_tables
from adagrpo_pipeline.recdata.config import EventsSource, IngestParams
from adagrpo_pipeline.recdata.errors import DataValidationError, SourceProblemsError, SourceReadError
from adagrpo_pipeline.recdata.events import EventsOptions, read_events
from adagrpo_pipeline.recdata.prepare import prepare
from adagrpo_pipeline.recdata.validation import raw_interactions_suite

ITEMS = "item_id,title\n00096,NA\n96,None\n97,Heat\n"


def _files(tmp_path: Path, interactions: str, items: str = ITEMS, suffix: str = ".csv",
           encoding: str = "utf-8") -> tuple[Path, Path]:
    inter, it = tmp_path / f"interactions{suffix}", tmp_path / "items.csv"
    inter.write_bytes(interactions.encode(encoding))
    it.write_text(items)
    return inter, it


def _problems(tmp_path: Path, interactions: str, items: str = ITEMS, **options: object) -> str:
    inter, it = _files(tmp_path, interactions, items)
    with pytest.raises(SourceReadError) as err:
        read_events(inter, it, options=EventsOptions(**options))
    return str(err.value)


# --------------------------------------------------------------------------- ids and text as written
def test_ids_and_titles_are_kept_exactly_as_written(tmp_path: Path) -> None:
    inter, items = _files(tmp_path, "user_id,item_id,timestamp\n007,00096,100\n7,96,101\n7,97,102\n")
    raw = read_events(inter, items)
    assert raw.interactions["user_id"].tolist() == ["007", "7", "7"]  # two users, not one
    assert raw.interactions["item_id"].tolist() == ["00096", "96", "97"]
    assert raw.items["title"].tolist() == ["NA", "None", "Heat"]  # text, not nulls
    assert raw.interactions.index.tolist() == [2, 3, 4] and raw.interactions.index.name == "line"


def test_csv_and_parquet_give_the_same_ids(tmp_path: Path) -> None:
    frame = pd.DataFrame({"user_id": ["007", "7"], "item_id": ["00096", "96"], "timestamp": [100, 101]})
    frame.to_csv(tmp_path / "a.csv", index=False)
    frame.to_parquet(tmp_path / "a.parquet")
    (tmp_path / "items.csv").write_text(ITEMS)
    csv_ids = read_events(tmp_path / "a.csv", tmp_path / "items.csv").interactions[["user_id", "item_id"]]
    pq_ids = read_events(tmp_path / "a.parquet", tmp_path / "items.csv").interactions[["user_id", "item_id"]]
    assert csv_ids.to_numpy().tolist() == pq_ids.to_numpy().tolist() == [["007", "00096"], ["7", "96"]]


def test_item_map_keeps_the_raw_id_byte_for_byte(tmp_path: Path) -> None:
    rows = "".join(f"{u},{i},{t}\n" for u in ("007", "7", "u3") for t, i in enumerate(("00096", "96", "97"), start=100))
    inter, items = _files(tmp_path, "user_id,item_id,timestamp\n" + rows)
    d = prepare(read_events(inter, items), IngestParams(user_core=3, item_core=1))
    assert sorted(d.item_map["raw_id"]) == ["00096", "96", "97"]
    assert sorted(d.user_map["raw_id"]) == ["007", "7", "u3"]


def test_float_ids_in_parquet_are_refused_with_the_fix(tmp_path: Path) -> None:
    pd.DataFrame({"user_id": [7.0, 8.0], "item_id": ["96", "97"], "timestamp": [1, 2]}).to_parquet(tmp_path / "i.parquet")
    (tmp_path / "items.csv").write_text(ITEMS)
    with pytest.raises(SourceProblemsError, match=r"i\.parquet', column 'user_id': ids stored as floating-point numbers "
                                                  r"\(e\.g\. 7\.0\).*Fix: write the ids as integers or strings"):
        read_events(tmp_path / "i.parquet", tmp_path / "items.csv")


# --------------------------------------------------------------------------- malformed text files
def test_repeated_header_in_interactions_names_its_line(tmp_path: Path) -> None:
    msg = _problems(tmp_path, "user_id,item_id,timestamp\n1,96,100\nuser_id,item_id,timestamp\n2,97,101\n")
    assert "interactions.csv', line 3: the header row is repeated mid-file" in msg
    assert "Fix: delete those lines" in msg and "items.csv" not in msg.split("\n", 1)[1]


def test_repeated_header_in_items_blames_the_items_file(tmp_path: Path) -> None:
    msg = _problems(tmp_path, "user_id,item_id,timestamp\n1,96,100\n", items=ITEMS + "item_id,title\n98,Up\n")
    assert "items.csv', line 5: the header row is repeated mid-file" in msg
    assert "interactions.csv" not in msg


def test_a_trailing_delimiter_on_every_row_does_not_shift_columns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    inter, items = _files(tmp_path, "\nuser_id,item_id,timestamp\n1,96,100,\n2,97,101,\n")  # a blank first line too
    with caplog.at_level(logging.WARNING):
        raw = read_events(inter, items)
    assert raw.interactions[["user_id", "item_id"]].to_numpy().tolist() == [["1", "96"], ["2", "97"]]
    assert raw.interactions.index.tolist() == [3, 4]  # file lines: the header is on line 2
    assert raw.interactions["timestamp"].tolist() == [100, 101]
    assert "2 row(s) end with a delimiter after the last header column" in caplog.text


def test_quoted_values_spanning_lines_keep_each_records_start_line_in_gzip_tsv(tmp_path: Path,
                                                                              caplog: pytest.LogCaptureFixture) -> None:
    text = ('user_id\titem_id\ttimestamp\ttitle\n1\t96\t100\t"two\nlines"\n\n\t\t\t\n2\t97\t101\t"x"\t\n'
            '3\t96\t102\t"y\nz"\n')
    inter = tmp_path / "interactions.tsv.gz"
    inter.write_bytes(gzip.compress(text.encode()))
    (tmp_path / "items.csv").write_text(ITEMS)
    with caplog.at_level(logging.WARNING):
        raw = read_events(inter, tmp_path / "items.csv")
    df = raw.interactions
    assert df.index.tolist() == [2, 6, 7]  # where each record starts; the blank and the tab-only line are skipped
    assert df["title"].tolist() == ["two\nlines", "x", "y\nz"] and df["timestamp"].tolist() == [100, 101, 102]
    assert [(r.name, r.levelname) for r in caplog.records] == [("adagrpo_pipeline.recdata.events", "WARNING")]
    assert "1 row(s) end with a delimiter after the last header column" in caplog.text


def test_malformed_csv_names_the_line_it_stopped_after(tmp_path: Path) -> None:
    msg = _problems(tmp_path, 'user_id,item_id,timestamp\n1,"9\n6",100\n1,97,"' + "9" * 200_000 + '"\n')
    assert msg.endswith("interactions.csv': malformed CSV after line 4: field larger than field limit (131072)")


def test_shifted_columns_and_short_lines_are_located(tmp_path: Path) -> None:
    msg = _problems(tmp_path, "user_id,item_id,timestamp\n1,96,100\n2,Heat, the,101\n3,97\n4,97,102\n")
    assert "interactions.csv', line 3: more fields than the header's 3: the columns are shifted" in msg
    assert "interactions.csv', line 4: fewer fields than the header's 3 (a truncated line" in msg
    assert msg.startswith("2 problem(s)")


def test_a_column_named_twice_in_the_header(tmp_path: Path) -> None:
    msg = _problems(tmp_path, "user_id,item_id,timestamp,item_id\n1,96,100,97\n")
    assert "column 'item_id': the header names column 'item_id' twice (fields 2 and 4)" in msg


def test_rename_onto_an_existing_column_names_both(tmp_path: Path) -> None:
    msg = _problems(tmp_path, "user_id,item_id,timestamp,ts\n1,96,100,200\n", rename={"ts": "timestamp"})
    assert "interactions.csv', column 'timestamp': ingest.events.rename maps 'ts' onto 'timestamp', but the file " \
           "already has a column 'timestamp'" in msg
    assert "Fix: drop one of the two" in msg


def test_a_rename_of_a_column_no_file_has(tmp_path: Path) -> None:
    msg = _problems(tmp_path, "user_id,item_id,timestamp\n1,96,100\n", rename={"tss": "timestamp"})
    assert "ingest.events.rename names column(s) ['tss'] that no file has" in msg


def test_every_file_is_reported_in_one_error(tmp_path: Path) -> None:
    msg = _problems(tmp_path, "user_id,item_id,timestamp\n1,96,100\nuser_id,item_id,timestamp\n",
                    items="item_id,title\n96,A\n97,B,extra\n")
    assert msg.startswith("2 problem(s) in the source files") and "interactions.csv', line 3" in msg
    assert "items.csv', line 3: more fields than the header's 2" in msg


def test_undecodable_byte_is_located_and_encoding_fixes_it(tmp_path: Path) -> None:
    text = "user_id,item_id,timestamp\n1,96,100\n2,97,101\n"
    items = tmp_path / "items.csv"
    items.write_bytes("item_id,title\n96,Amélie\n97,Heat\n".encode("latin-1"))
    inter, _ = _files(tmp_path, text, items=items.read_bytes().decode("latin-1"))
    items.write_bytes("item_id,title\n96,Amélie\n97,Heat\n".encode("latin-1"))
    with pytest.raises(SourceReadError, match=r"items\.csv'.*undecodable text at line 2, character 6: byte 0xe9 is not "
                                              r"valid utf-8.*ingest\.events\.encoding"):
        read_events(inter, items)
    assert read_events(inter, items, options=EventsOptions(encoding="latin-1")).items["title"].tolist() == ["Amélie", "Heat"]


# --------------------------------------------------------------------------- timestamps
def test_iso_strings_with_offsets_become_utc_seconds(tmp_path: Path) -> None:
    inter, items = _files(tmp_path, "user_id,item_id,timestamp\n1,96,2024-01-01T02:00:00+02:00\n"
                                    "1,97,2024-01-01T00:00:01Z\n2,96,2024-01-01 00:00:02\n")
    assert read_events(inter, items).interactions["timestamp"].tolist() == [1704067200, 1704067201, 1704067202]


def test_tz_aware_parquet_and_nat_is_reported_as_null_with_its_row(tmp_path: Path) -> None:
    ts = pd.to_datetime(["2024-01-01T02:00:00", None, "2024-01-02T00:00:00"]).tz_localize("Europe/Paris")
    pd.DataFrame({"user_id": [1, 2, 3], "item_id": ["96", "97", "96"], "timestamp": ts}).to_parquet(tmp_path / "i.parquet")
    (tmp_path / "items.csv").write_text(ITEMS)
    raw = read_events(tmp_path / "i.parquet", tmp_path / "items.csv")
    values = raw.interactions["timestamp"]
    assert values.tolist()[0] == 1704070800 and pd.isna(values.tolist()[2])  # Paris is UTC+1; the NaT sorts last
    assert values.min() > 0  # never -9223372036854775808
    with pytest.raises(DataValidationError) as err:
        raw_interactions_suite(raw.interactions, None, (1, 2_000_000_000)).validate()
    assert "expect_column_values_to_not_be_null(column='timestamp')" in str(err.value)
    assert "examples (by file row):" in str(err.value) and "\n      2 " in str(err.value)


def test_milliseconds_are_detected_per_file_and_keep_their_order(tmp_path: Path) -> None:
    inter, items = _files(tmp_path, "user_id,item_id,timestamp\n1,97,1704067200900\n1,96,1704067200100\n")
    raw = read_events(inter, items)
    assert raw.interactions["timestamp"].tolist() == [1704067200, 1704067200]
    assert raw.interactions["item_id"].tolist() == ["96", "97"]  # same second: the millisecond order is kept
    forced = read_events(inter, items, options=EventsOptions(timestamp_unit="s")).interactions["timestamp"]
    assert forced.max() == 1704067200900  # taken at its word: validation then reports it out of range


def test_bad_and_mixed_timestamps_are_located(tmp_path: Path) -> None:
    msg = _problems(tmp_path, "user_id,item_id,timestamp\n1,96,2024-01-01\n1,97,yesterday\n")
    assert "interactions.csv', line 3, column 'timestamp': not an ISO-8601 date-time ('yesterday')" in msg
    msg = _problems(tmp_path, "user_id,item_id,timestamp\n1,96,1704067200\n1,97,2024-01-01\n")
    assert "line 3, column 'timestamp': unix numbers mixed with text timestamps (numbers at lines 2)" in msg


# --------------------------------------------------------------------------- options
def test_clicked_as_0_1_and_true_false_and_a_bad_value(tmp_path: Path) -> None:
    (tmp_path / "items.csv").write_text(ITEMS)
    (tmp_path / "inter.csv").write_text("user_id,item_id,timestamp\n1,96,100\n")
    imp = "request_id,user_id,timestamp,item_id,position,clicked\n0,1,100,96,0,1\n0,1,100,97,1,0\n1,1,101,96,0,TRUE\n"
    (tmp_path / "imp.csv").write_text(imp)
    raw = read_events(tmp_path / "inter.csv", tmp_path / "items.csv", tmp_path / "imp.csv")
    assert raw.impressions["clicked"].tolist() == [True, False, True]
    (tmp_path / "imp.csv").write_text(imp + "1,1,101,97,1,2\n")
    with pytest.raises(SourceProblemsError, match=r"imp\.csv', line 5, column 'clicked': not a boolean \('2'\)"):
        read_events(tmp_path / "inter.csv", tmp_path / "items.csv", tmp_path / "imp.csv")


def test_drop_duplicate_events_and_event_types(tmp_path: Path) -> None:
    inter, items = _files(tmp_path, "user_id,item_id,timestamp,event\n1,96,100,click\n1,96,100,click\n1,97,101,view\n")
    raw = read_events(inter, items)
    with pytest.raises(DataValidationError, match=r"expect_compound_columns_to_be_unique.*2 bad row\(s\)"):
        raw_interactions_suite(raw.interactions, None, (1, 10**10)).validate()
    kept = read_events(inter, items, options=EventsOptions(drop_duplicate_events=True, event_types=["click"])).interactions
    assert kept.index.tolist() == [2] and kept["event"].tolist() == ["click"]
    msg = _problems(tmp_path, "user_id,item_id,timestamp,event\n1,96,100,click\n", event_types=["Click"])
    assert "column 'event': ingest.events.event_types ['Click'] matches no event; the file has {'click': 1}" in msg


def test_events_options_are_validated() -> None:
    with pytest.raises(ValueError, match="'utf-9' is not an encoding Python knows"):
        EventsSource(encoding="utf-9")
    with pytest.raises(ValueError, match="event_types is an empty list"):
        EventsSource(event_types=[])


# --------------------------------------------------------------------------- across tables
def _raw_validation_error(inter: Path, items: Path) -> str:
    """The message of the `validate_raw_tables` node on what `read_events` read (it must fail)."""
    raw = read_events(inter, items)
    with pytest.raises(DataValidationError) as err:
        validate_raw_tables(raw.items, raw.interactions, pd.DataFrame(), raw.files, IngestParams(source="events"))
    return str(err.value)


def test_id_format_mismatch_is_named_as_the_cause(tmp_path: Path) -> None:
    inter, items = _files(tmp_path, "user_id,item_id,timestamp\n1,0097,100\n1,96,101\n", items="item_id,title\n96,A\n97,B\n")
    msg = _raw_validation_error(inter, items)
    assert f"table 'raw_interactions' (read from '{inter}')" in msg
    assert "expect_column_values_to_be_in_set(column='item_id'" in msg and "\n      2 " in msg  # file line 2
    assert "likely cause: 1 of the 1 unknown ids match a catalog id once their format is normalised ('0097' vs '97')" in msg


def test_every_failing_table_is_reported_at_once(tmp_path: Path) -> None:
    inter, items = _files(tmp_path, "user_id,item_id,timestamp\n,96,100\n1,97,101\n", items="item_id,title\n96,A\n96,B\n97,C\n")
    msg = _raw_validation_error(inter, items)
    assert msg.startswith("2 tables failed validation")
    assert f"table 'raw_items' (read from '{items}')" in msg and "expect_column_values_to_be_unique(column='item_id')" in msg
    assert f"table 'raw_interactions' (read from '{inter}')" in msg and "not_be_null(column='user_id')" in msg


def test_drop_unknown_items_with_no_match_names_the_format_not_the_kcore(tmp_path: Path) -> None:
    inter, items = _files(tmp_path, "user_id,item_id,timestamp\n1,0096,100\n1,0097,101\n", items="item_id,title\n96,A\n97,B\n")
    with pytest.raises(ValueError) as err:
        prepare(read_events(inter, items), IngestParams(source="events", drop_unknown_items=True, user_core=3, item_core=1))
    msg = str(err.value)
    assert "none of the 2 interactions' item ids is in the items table" in msg and str(items) in msg
    assert "'0096' vs '96'" in msg and "core" not in msg
