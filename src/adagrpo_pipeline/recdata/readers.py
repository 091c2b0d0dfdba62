"""Readers for every raw source. Each returns `RawTables` with the source's own ids.

Every failure to read names the file and the problem (`SourceReadError`); checking the
*content* (types, nulls, duplicates, ranges, referential integrity) is the job of the
validation suites, which run on what these readers return.
"""

from __future__ import annotations

import ast
import gzip
import io
import json
import logging
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from .errors import NO_DATA, NO_ROWS, SourceReadError
from .schema import RawTables

log = logging.getLogger(__name__)

# The 19 genre flags of MovieLens-100k's original `u.item`, in file order.
ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
    "Romance", "Sci-Fi", "Thriller", "War", "Western",
)


# --------------------------------------------------------------------------- file helpers
def require_file(path: Path) -> Path:
    if not path.exists():
        raise SourceReadError(path, "file does not exist")
    if not path.is_file():
        raise SourceReadError(path, "is not a regular file")
    if path.stat().st_size == 0:
        raise SourceReadError(path, "file is empty (0 bytes)")
    return path


def guarded(path: Path, read: Callable[[], pd.DataFrame]) -> pd.DataFrame:
    """Run a pandas/pyarrow read and turn its low-level errors into `SourceReadError`."""
    require_file(path)
    try:
        df = read()
    except SourceReadError:
        raise
    except UnicodeDecodeError as err:
        raise SourceReadError(
            path, f"undecodable text: byte 0x{err.object[err.start]:02x} at offset {err.start} is not valid {err.encoding}"
        ) from err
    except pd.errors.EmptyDataError as err:
        raise SourceReadError(path, NO_DATA) from err
    except pd.errors.ParserError as err:
        raise SourceReadError(path, f"malformed or truncated table: {err}") from err
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:
        raise SourceReadError(path, f"truncated or corrupt compressed file: {err}") from err
    except (pa.ArrowInvalid, pa.ArrowException, OSError) as err:
        raise SourceReadError(path, f"truncated or corrupt file: {err}") from err
    if len(df) == 0:
        raise SourceReadError(path, NO_ROWS)
    return df


def is_parquet(path: Path) -> bool:
    """Parquet by suffix (`.parquet`, `.pq`); anything else is read as text."""
    return path.suffix.lower() in (".parquet", ".pq")


def text_separator(path: Path, default: str = ",") -> str:
    """Tab for `.tsv` files (`.tsv.gz` included), else `default`."""
    return "\t" if ".tsv" in [s.lower() for s in path.suffixes] else default


def read_table(path: str | Path, sep: str = ",", encoding: str = "utf-8", **csv_args: object) -> pd.DataFrame:
    """Read a parquet or CSV/TSV file (by suffix; `.gz` allowed for text) with clear errors.
    `csv_args` go to `pandas.read_csv`."""
    path = Path(path)
    if is_parquet(path):
        return guarded(path, lambda: pd.read_parquet(path))
    sep = text_separator(path, sep)
    return guarded(path, lambda: pd.read_csv(path, sep=sep, encoding=encoding, encoding_errors="strict", **csv_args))


def open_text(path: Path, encoding: str = "utf-8") -> io.TextIOBase:
    """Text of a plain or gzip file; line endings are left to the reader (`newline=""`, as the
    `csv` module needs for quoted values that span lines)."""
    raw = gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")  # noqa: SIM115
    return io.TextIOWrapper(raw, encoding=encoding, errors="strict", newline="")


def iter_json_lines(path: Path) -> Iterator[dict]:
    """Yield one record per line of a JSON-lines file (gzip or plain).

    The 2014 Amazon metadata files are Python dict literals rather than strict JSON; those
    lines are parsed with `ast.literal_eval` (which evaluates literals only, never code).
    """
    require_file(path)
    lineno = 0
    try:
        with open_text(path) as fh:
            for lineno, line in enumerate(fh, start=1):
                line = line.strip()
                if not line:
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as err:
                    try:
                        record = ast.literal_eval(line)
                    except (ValueError, SyntaxError):
                        raise SourceReadError(
                            path, f"line {lineno} is not a JSON object (truncated or malformed): {err}"
                        ) from err
                if not isinstance(record, dict):
                    raise SourceReadError(path, f"line {lineno} is a {type(record).__name__}, not an object")
                yield record
    except UnicodeDecodeError as err:
        raise SourceReadError(
            path, f"undecodable text after line {lineno}: byte 0x{err.object[err.start]:02x} is not valid {err.encoding}"
        ) from err
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:
        raise SourceReadError(path, f"truncated or corrupt gzip stream after line {lineno}: {err}") from err


def _records(path: Path) -> pd.DataFrame:
    df = pd.DataFrame.from_records(list(iter_json_lines(path)))
    if df.empty:
        raise SourceReadError(path, "file has no records")
    return df


def _find(folder: Path, patterns: tuple[str, ...], what: str) -> Path:
    for pattern in patterns:
        hits = sorted(folder.glob(pattern))
        if hits:
            return hits[0]
    raise SourceReadError(folder, f"no {what} file found (looked for {', '.join(patterns)})")


def _require_columns(df: pd.DataFrame, columns: tuple[str, ...], path: Path) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise SourceReadError(path, f"missing column(s) {missing}; found {list(df.columns)}")


def _item_text(title: pd.Series, parts: dict[str, pd.Series]) -> pd.Series:
    """`text` = title plus 'Name: value' for each non-empty attribute (what the encoder embeds)."""
    text = title.fillna("").astype(str)
    for name, values in parts.items():
        values = values.fillna("").astype(str).str.strip()
        text = text.where(values.eq(""), text + ". " + name + ": " + values)
    return text


def _users_frame(users: pd.DataFrame | None) -> pd.DataFrame | None:
    """user_id as in the interactions (integers where they parse) and every attribute as a
    string ('' where missing)."""
    if users is None:
        return None
    out = users.copy()
    out["user_id"] = _numeric(out["user_id"])
    for c in out.columns.drop("user_id"):
        out[c] = out[c].fillna("").astype(str).str.strip()
    return out


def _items_frame(item_ids: pd.Series, title: pd.Series, attributes: dict[str, pd.Series]) -> pd.DataFrame:
    """item_id, title, text (title + attributes) and one snake_case column per attribute."""
    columns = {"item_id": item_ids, "title": title, "text": _item_text(title, attributes)}
    columns.update({name.lower().replace(" ", "_"): values for name, values in attributes.items()})
    return pd.DataFrame(columns)


# --------------------------------------------------------------------------- MovieLens-100k
def read_movielens_100k(folder: str | Path) -> RawTables:
    """MovieLens-100k, in RecBole's atomic layout (`ml-100k.inter`/`.item`) or the original
    GroupLens layout (`u.data`/`u.item`). Every rating is an interaction; `value` = rating."""
    folder = Path(folder)
    if (folder / "ml-100k.inter").exists():
        return _read_ml100k_atomic(folder)
    if (folder / "u.data").exists():
        return _read_ml100k_original(folder)
    raise SourceReadError(folder, "neither RecBole's 'ml-100k.inter' nor the original 'u.data' is there")


def _strip_atomic_types(df: pd.DataFrame) -> pd.DataFrame:
    return df.rename(columns=lambda c: str(c).split(":")[0])


def _read_ml100k_atomic(folder: Path) -> RawTables:
    inter_path, item_path = folder / "ml-100k.inter", folder / "ml-100k.item"
    inter = _strip_atomic_types(read_table(inter_path, sep="\t"))
    _require_columns(inter, ("user_id", "item_id", "rating", "timestamp"), inter_path)
    items = _strip_atomic_types(read_table(item_path, sep="\t", dtype={"release_year:token": str}))
    _require_columns(items, ("item_id", "movie_title", "release_year", "class"), item_path)
    interactions = _rating_interactions(inter)
    year = items["release_year"].fillna("").astype(str)
    genres = items["class"].fillna("").astype(str).str.split().str.join(", ")
    title = items["movie_title"].astype(str)
    users = None
    user_path = folder / "ml-100k.user"
    if user_path.exists():
        users = _strip_atomic_types(read_table(user_path, sep="\t", dtype=str, keep_default_na=False))
        _require_columns(users, ("user_id", "age", "gender", "occupation", "zip_code"), user_path)
    return RawTables("movielens_100k", interactions, _items_frame(items["item_id"], title, {"Release year": year, "Genres": genres}),
                     users=_users_frame(users))


def _read_ml100k_original(folder: Path) -> RawTables:
    data_path, item_path = folder / "u.data", folder / "u.item"
    inter = guarded(
        data_path,
        lambda: pd.read_csv(data_path, sep="\t", header=None, names=["user_id", "item_id", "rating", "timestamp"]),
    )
    columns = ["item_id", "title", "release_date", "video_release_date", "url", *ML100K_GENRES]
    items = guarded(
        item_path,
        lambda: pd.read_csv(item_path, sep="|", header=None, names=columns, encoding="latin-1"),
    )
    flags = items[list(ML100K_GENRES)].fillna(0).astype(bool).to_numpy()
    genres = pd.Series([", ".join(np.asarray(ML100K_GENRES)[row]) for row in flags], index=items.index)
    title = items["title"].astype(str)
    interactions = _rating_interactions(inter)
    release = items["release_date"].fillna("").astype(str)
    user_path, users = folder / "u.user", None
    if user_path.exists():
        users = guarded(user_path, lambda: pd.read_csv(user_path, sep="|", header=None, dtype=str, keep_default_na=False,
                                                       names=["user_id", "age", "gender", "occupation", "zip_code"]))
    return RawTables("movielens_100k", interactions, _items_frame(items["item_id"], title, {"Release date": release, "Genres": genres}),
                     users=_users_frame(users))


def _rating_interactions(ratings: pd.DataFrame) -> pd.DataFrame:
    """Raw interactions from a ratings table (user_id, item_id, rating, timestamp): every
    rating is an interaction (event 'rating') whose `value` is the rating."""
    return pd.DataFrame(
        {
            "user_id": ratings["user_id"],
            "item_id": ratings["item_id"],
            "timestamp": _integral_timestamps(ratings["timestamp"]),
            "event": "rating",
            "value": pd.to_numeric(ratings["rating"], errors="coerce").astype("float64"),
        }
    )


def _integral_timestamps(ts: pd.Series) -> pd.Series:
    """Timestamps stored as floats (RecBole's `timestamp:float`) become int64 when integral;
    anything else is left as it is so that the type expectation reports it."""
    if pd.api.types.is_float_dtype(ts) and ts.notna().all() and np.all(np.mod(ts.to_numpy(), 1) == 0):
        return ts.astype("int64")
    if pd.api.types.is_datetime64_any_dtype(ts):
        return (ts.astype("datetime64[s]").astype("int64")).rename(ts.name)
    return ts


# --------------------------------------------------------------------------- MovieLens-1M
def read_movielens_1m(folder: str | Path) -> RawTables:
    """MovieLens-1M: `ratings.dat` (UserID::MovieID::Rating::Timestamp) and `movies.dat`
    (MovieID::Title::Genres, latin-1)."""
    folder = Path(folder)
    ratings_path, movies_path = folder / "ratings.dat", folder / "movies.dat"
    ratings = guarded(ratings_path, lambda: _read_double_colon(ratings_path, 4, "utf-8"))
    ratings.columns = ["user_id", "item_id", "rating", "timestamp"]
    movies = guarded(movies_path, lambda: _read_double_colon(movies_path, 3, "latin-1"))
    movies.columns = ["item_id", "title", "genres"]
    interactions = _rating_interactions(ratings.apply(_numeric))
    genres = movies["genres"].fillna("").str.replace("|", ", ", regex=False)
    title = movies["title"].astype(str)
    return RawTables("movielens_1m", interactions, _items_frame(_numeric(movies["item_id"]), title, {"Genres": genres}))


def _numeric(column: pd.Series) -> pd.Series:
    """Text fields to int64; an unparsable value becomes null, which validation reports."""
    values = pd.to_numeric(column, errors="coerce")
    return values.astype("int64") if values.notna().all() else values


def _read_double_colon(path: Path, n_fields: int, encoding: str) -> pd.DataFrame:
    """Split `a::b::c` lines; the last field may itself contain '::'-free text with colons."""
    rows = []
    with open(path, encoding=encoding, errors="strict") as fh:
        for lineno, line in enumerate(fh, start=1):
            line = line.rstrip("\n\r")
            if not line:
                continue
            parts = line.split("::", n_fields - 1)
            if len(parts) != n_fields:
                raise SourceReadError(path, f"line {lineno} has {len(parts)} '::'-separated fields, expected {n_fields} (truncated?)")
            rows.append(parts)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- Amazon reviews
def read_amazon_reviews(folder: str | Path, reviews_file: str | None = None, meta_file: str | None = None) -> RawTables:
    """Amazon 5-core reviews + metadata (JSON lines, gzip or plain), 2014 or 2018 layout.

    Reviews: reviewerID, asin, unixReviewTime, overall. Metadata: asin, title, brand,
    categories (2014, list of lists) or category (2018, list), description, price.
    """
    folder = Path(folder)
    reviews_path = folder / reviews_file if reviews_file else _find(
        folder, ("reviews_*_5.json.gz", "reviews_*_5.json", "*_5.json.gz", "*_5.json"), "5-core reviews"
    )
    meta_path = folder / meta_file if meta_file else _find(folder, ("meta_*.json.gz", "meta_*.json"), "metadata")
    reviews = _records(reviews_path)
    _require_columns(reviews, ("reviewerID", "asin", "unixReviewTime"), reviews_path)
    interactions = pd.DataFrame(
        {
            "user_id": reviews["reviewerID"].astype("str"),
            "item_id": reviews["asin"].astype("str"),
            "timestamp": reviews["unixReviewTime"],
            "event": "review",
        }
    )
    if "overall" in reviews:
        interactions["value"] = pd.to_numeric(reviews["overall"], errors="coerce")
    meta = _records(meta_path)
    _require_columns(meta, ("asin",), meta_path)
    title = meta["title"] if "title" in meta else pd.Series("", index=meta.index)
    title = title.fillna("").astype(str).str.strip()
    title = title.where(title.ne(""), "item " + meta["asin"].astype(str))
    if "categories" in meta:  # 2014: [["Beauty", "Skin Care", ...], ...]
        cats = meta["categories"].map(lambda c: " > ".join(c[0]) if isinstance(c, list) and c and isinstance(c[0], list) else "")
    elif "category" in meta:  # 2018: ["Beauty", "Skin Care", ...]
        cats = meta["category"].map(lambda c: " > ".join(c) if isinstance(c, list) else "")
    else:
        cats = pd.Series("", index=meta.index)
    brand = meta["brand"].fillna("").astype(str) if "brand" in meta else pd.Series("", index=meta.index)
    desc = meta["description"] if "description" in meta else pd.Series("", index=meta.index)
    desc = desc.map(lambda d: " ".join(d) if isinstance(d, list) else ("" if d is None or d != d else str(d)))
    price = meta["price"].map(lambda p: "" if p is None or p != p else str(p)) if "price" in meta else pd.Series("", index=meta.index)
    items = pd.DataFrame(
        {
            "item_id": meta["asin"].astype("str"),
            "title": title,
            "text": _item_text(title, {"Brand": brand, "Categories": cats, "Price": price, "Description": desc.str.slice(0, 500)}),
            "brand": brand,
            "categories": cats,
            "price": price,
        }
    ).drop_duplicates("item_id", keep="first")
    return RawTables("amazon_reviews", interactions, items)
