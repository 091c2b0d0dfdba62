"""Each raw-source reader on small files written here in that source's exact format."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pandas as pd
import pytest

from adagrpo_pipeline.recdata.errors import SourceReadError
from adagrpo_pipeline.recdata.events import EventsOptions, read_events
from adagrpo_pipeline.recdata.readers import (
    read_amazon_reviews,
    read_movielens_1m,
    read_movielens_100k,
    read_table,
)


def write_ml100k_atomic(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ml-100k.inter").write_text(
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
        "196\t242\t3\t881250949\n186\t302\t3\t891717742\n196\t302\t5\t881250949\n"
    )
    (folder / "ml-100k.item").write_text(
        "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
        "242\tKolya\t1996\tComedy\n302\tL.A. Confidential\t1997\tCrime Film-Noir Mystery Thriller\n"
        "267\tunknown\t\tunknown\n"
    )


def test_movielens_100k_atomic(tmp_path: Path) -> None:
    write_ml100k_atomic(tmp_path)
    raw = read_movielens_100k(tmp_path)
    assert raw.source == "movielens_100k" and raw.impressions is None and raw.relevance is None
    assert raw.interactions["timestamp"].dtype == "int64"
    assert raw.interactions[["user_id", "item_id", "timestamp"]].values.tolist() == [
        [196, 242, 881250949], [186, 302, 891717742], [196, 302, 881250949]]
    assert raw.interactions["value"].tolist() == [3.0, 3.0, 5.0]
    la = raw.items.set_index("item_id").loc[302]
    assert la["title"] == "L.A. Confidential"
    assert la["text"] == "L.A. Confidential. Release year: 1997. Genres: Crime, Film-Noir, Mystery, Thriller"
    assert raw.items.set_index("item_id").loc[267, "text"] == "unknown. Genres: unknown"


def test_movielens_100k_original_layout(tmp_path: Path) -> None:
    (tmp_path / "u.data").write_text("196\t242\t3\t881250949\n186\t302\t3\t891717742\n")
    flags_kolya = ["0"] * 19
    flags_kolya[5] = "1"  # Comedy
    flags_la = ["0"] * 19
    for g in (6, 10, 13, 16):  # Crime, Film-Noir, Mystery, Thriller
        flags_la[g] = "1"
    lines = [
        "|".join(["242", "Kolya (1996)", "24-Jan-1997", "", "http://x", *flags_kolya]),
        "|".join(["302", "L.A. Confidential (1997)", "01-Jan-1997", "", "http://y", *flags_la]),
        "|".join(["303", "Café Society (1995)", "01-Jan-1995", "", "http://z", *flags_kolya]),
    ]
    (tmp_path / "u.item").write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
    raw = read_movielens_100k(tmp_path)
    items = raw.items.set_index("item_id")
    assert items.loc[302, "genres"] == "Crime, Film-Noir, Mystery, Thriller"
    assert items.loc[303, "title"] == "Café Society (1995)"  # latin-1 decoded
    assert raw.interactions["item_id"].tolist() == [242, 302]


def test_movielens_100k_missing_folder_content(tmp_path: Path) -> None:
    with pytest.raises(SourceReadError, match="neither RecBole's 'ml-100k.inter' nor the original 'u.data'"):
        read_movielens_100k(tmp_path)


def test_movielens_1m(tmp_path: Path) -> None:
    (tmp_path / "ratings.dat").write_text("1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978298413\n")
    (tmp_path / "movies.dat").write_bytes(
        "1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n661::James and the Giant Peach (1996)::Animation|Children's|Musical\n"
        "3::Les Misérables: Part 2 (1995)::Drama\n".encode("latin-1")
    )
    raw = read_movielens_1m(tmp_path)
    assert raw.interactions.dtypes["timestamp"] == "int64"
    assert raw.interactions[["user_id", "item_id"]].values.tolist() == [[1, 1193], [1, 661], [2, 1193]]
    items = raw.items.set_index("item_id")
    assert items.loc[661, "genres"] == "Animation, Children's, Musical"
    assert items.loc[3, "title"] == "Les Misérables: Part 2 (1995)"


def test_movielens_1m_truncated_line(tmp_path: Path) -> None:
    (tmp_path / "ratings.dat").write_text("1::1193::5::978300760\n1::661::3")
    (tmp_path / "movies.dat").write_text("1193::A (1975)::Drama\n")
    with pytest.raises(SourceReadError, match=r"ratings.dat.*line 2 has 3 '::'-separated fields, expected 4"):
        read_movielens_1m(tmp_path)


def _jsonl(path: Path, records: list, gz: bool, literal: bool = False) -> None:
    text = "\n".join(repr(r) if literal else json.dumps(r) for r in records) + "\n"
    if gz:
        with gzip.open(path, "wt", encoding="utf-8") as fh:
            fh.write(text)
    else:
        path.write_text(text)


def test_amazon_2014_gzip_with_python_literal_metadata(tmp_path: Path) -> None:
    _jsonl(tmp_path / "reviews_Beauty_5.json.gz", [
        {"reviewerID": "A1", "asin": "B01", "overall": 5.0, "unixReviewTime": 1389225600, "reviewText": "ok"},
        {"reviewerID": "A2", "asin": "B02", "overall": 3.0, "unixReviewTime": 1389312000},
    ], gz=True)
    _jsonl(tmp_path / "meta_Beauty.json.gz", [
        {"asin": "B01", "title": "Rose Water", "brand": "Acme", "categories": [["Beauty", "Skin Care"]], "price": 9.5},
        {"asin": "B02", "categories": [["Beauty"]]},  # no title: falls back to the asin
    ], gz=True, literal=True)
    raw = read_amazon_reviews(tmp_path)
    assert raw.interactions[["user_id", "item_id", "timestamp"]].values.tolist() == [
        ["A1", "B01", 1389225600], ["A2", "B02", 1389312000]]
    items = raw.items.set_index("item_id")
    assert items.loc["B01", "text"] == "Rose Water. Brand: Acme. Categories: Beauty > Skin Care. Price: 9.5"
    assert items.loc["B02", "title"] == "item B02"


def test_amazon_2018_plain_json(tmp_path: Path) -> None:
    _jsonl(tmp_path / "Luxury_Beauty_5.json", [
        {"reviewerID": "U9", "asin": "X1", "overall": 4.0, "unixReviewTime": 1500000000, "verified": True, "vote": "2"},
    ], gz=False)
    _jsonl(tmp_path / "meta_Luxury_Beauty.json", [
        {"asin": "X1", "title": "Serum", "category": ["Luxury Beauty", "Face"], "description": ["Light.", "Fresh."], "price": "$12.00"},
    ], gz=False)
    raw = read_amazon_reviews(tmp_path)
    assert raw.items.iloc[0]["text"] == "Serum. Categories: Luxury Beauty > Face. Price: $12.00. Description: Light. Fresh."


def test_amazon_truncated_gzip(tmp_path: Path) -> None:
    _jsonl(tmp_path / "reviews_X_5.json.gz", [{"reviewerID": f"A{i}", "asin": "B", "unixReviewTime": 1} for i in range(2000)], gz=True)
    data = (tmp_path / "reviews_X_5.json.gz").read_bytes()
    (tmp_path / "reviews_X_5.json.gz").write_bytes(data[: len(data) // 2])
    _jsonl(tmp_path / "meta_X.json", [{"asin": "B"}], gz=False)
    with pytest.raises(SourceReadError, match=r"reviews_X_5.json.gz.*truncated"):
        read_amazon_reviews(tmp_path)


def test_amazon_malformed_line_is_located(tmp_path: Path) -> None:
    (tmp_path / "reviews_X_5.json").write_text('{"reviewerID": "A", "asin": "B", "unixReviewTime": 1}\n{"reviewerID": "A", "as\n')
    _jsonl(tmp_path / "meta_X.json", [{"asin": "B"}], gz=False)
    with pytest.raises(SourceReadError, match="line 2 is not a JSON object"):
        read_amazon_reviews(tmp_path)


def test_events_parquet_with_rename_and_datetimes(tmp_path: Path) -> None:
    pd.DataFrame({
        "uid": [1, 1, 2],
        "product": [10, 11, 10],
        "ts": pd.to_datetime(["2024-01-01T00:00:00", "2024-01-01T00:00:10", "2024-01-02T00:00:00"]),
    }).to_parquet(tmp_path / "inter.parquet")
    pd.DataFrame({"product": [10, 11], "title": ["a", "b"]}).to_csv(tmp_path / "items.csv", index=False)
    pd.DataFrame({"request_id": [0, 0], "uid": [1, 1], "ts": pd.to_datetime(["2024-01-01", "2024-01-01"]),
                  "product": [10, 11], "position": [0, 1], "clicked": [True, False]}).to_parquet(tmp_path / "imp.parquet")
    raw = read_events(tmp_path / "inter.parquet", tmp_path / "items.csv", tmp_path / "imp.parquet",
                      EventsOptions(rename={"uid": "user_id", "product": "item_id", "ts": "timestamp"}))
    assert raw.interactions["timestamp"].tolist() == [1704067200, 1704067210, 1704153600]
    assert raw.interactions["event"].unique().tolist() == ["interaction"]
    assert raw.items["text"].tolist() == ["a", "b"]  # text defaults to the title
    assert raw.impressions["timestamp"].tolist() == [1704067200, 1704067200]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "file is empty"),
        (b"user_id,item_id,timestamp\n", "header but no rows"),
        (b"user_id,item_id,timestamp\n1,2,\xff\xfe\n", "undecodable text: byte 0xff"),
    ],
)
def test_read_table_errors_name_the_file(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "interactions.csv"
    path.write_bytes(content)
    with pytest.raises(SourceReadError, match=message) as err:
        read_table(path)
    assert str(path) in str(err.value)


def test_read_table_truncated_parquet(tmp_path: Path) -> None:
    path = tmp_path / "interactions.parquet"
    pd.DataFrame({"user_id": range(1000), "item_id": range(1000)}).to_parquet(path)
    path.write_bytes(path.read_bytes()[:-200])
    with pytest.raises(SourceReadError, match="truncated or corrupt file"):
        read_table(path)


def test_read_table_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SourceReadError, match="does not exist"):
        read_table(tmp_path / "nope.csv")
