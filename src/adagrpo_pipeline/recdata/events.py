"""The `events` source: a user's own logs as CSV/TSV (optionally gzip) or parquet.

What is read is kept as written: ids and text are strings byte for byte ("007" and "7" are two
users, "00096" stays "00096", a title "NA" is the text "NA"), and each row keeps its place in the
file as the frame's index (`line` for text files, 1-based with the header on line 1; `row` for
parquet), so that every later check can quote the file line of a bad value.

Everything that is wrong with the files is collected before anything is raised, so one run
reports every file, line and column at fault (`SourceProblemsError`), each with its cause and
the fix. Conversions:

- ids (`user_id`, `item_id`): strings exactly as written; an integer parquet column is written in
  decimal; an empty field is a missing id (reported by validation, with its line);
- `timestamp`: unix numbers in seconds or milliseconds (`timestamp_unit: auto` takes a file as
  milliseconds when its largest absolute value is >= 1e11, i.e. after the year 5138 in seconds),
  ISO-8601 strings (an offset is honoured; none means UTC) and datetimes (naive = UTC, aware =
  converted) become int64 UTC seconds; a missing value stays missing (nullable `Int64`);
- `value`, `request_id`, `position`: numbers; `clicked`: booleans from true/false, 1/0 (any case);
- every other column: strings as written.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from .errors import Problem, SourceProblemsError, SourceReadError, listed
from .readers import _guarded, _open_text, _require_file, is_parquet, text_separator
from .schema import RawTables

log = logging.getLogger(__name__)

ID_COLUMNS = ("user_id", "item_id")
INTEGER_COLUMNS = ("request_id", "position")
TimestampUnit = Literal["auto", "s", "ms"]
MS_THRESHOLD = 1e11  # |t| >= 1e11 is after the year 5138 in seconds, 1973 in milliseconds
_EXAMPLES = 5  # lines quoted per problem
_TRUE, _FALSE = {"true", "1"}, {"false", "0"}


@dataclass
class EventsOptions:
    """How the files are read (see `recdata.config.EventsSource`)."""

    rename: dict[str, str] = field(default_factory=dict)
    encoding: str = "utf-8"
    timestamp_unit: TimestampUnit = "auto"
    drop_duplicate_events: bool = False
    event_types: list[str] | None = None


def _lines(index: Iterable[int]) -> str:
    return listed(list(index), _EXAMPLES)


def _where(index_name: str) -> str:
    return "rows" if index_name == "row" else "lines"


# --------------------------------------------------------------------------- text files
def read_text_rows(path: Path, encoding: str, problems: list[Problem]) -> pd.DataFrame:
    """A CSV/TSV file as strings, indexed by the file line each record starts on.

    Blank lines are skipped; a delimiter closing every row (an empty last field) is dropped;
    a record with more fields than the header (shifted columns), fewer (a truncated or
    unquoted line), a header repeated mid-file or a column named twice is a problem.
    """
    _require_file(path)
    sep = text_separator(path)
    try:
        with _open_text(path, encoding) as fh:
            reader = csv.reader(fh, delimiter=sep)
            header = next(reader, None)
            while header is not None and all(f == "" for f in header):  # blank lines before the header
                header = next(reader, None)
            if header is None:
                raise SourceReadError(path, "file has no data (no header or rows)")
            header_line = reader.line_num
            records = list(reader)
            if reader.line_num - header_line == len(records):  # one line per record: line numbers by position
                starts = np.arange(header_line + 1, header_line + 1 + len(records), dtype=np.int64)
            else:  # quoted values span lines: a second pass notes where each record starts
                starts = _record_starts(path, encoding, sep, header_line, len(records))
    except UnicodeDecodeError as err:
        raise SourceReadError(path, _undecodable(path, encoding)) from err
    except csv.Error as err:
        raise SourceReadError(path, f"malformed CSV after line {reader.line_num}: {err}") from err
    header_trailing = len(header) > 1 and header[-1] == ""
    if header_trailing:
        header = header[:-1]
    width = len(header)
    lengths = np.fromiter(map(len, records), dtype=np.int64, count=len(records))
    keep = lengths == width
    extra_filled: list[int] = []
    too_few: list[int] = []
    repeated_header: list[int] = []
    trailing = 0
    for i in np.flatnonzero(~keep):  # the few odd rows, one by one
        record = records[i]
        if all(f == "" for f in record):
            continue  # a blank line
        if record[:width] == header and all(f == "" for f in record[width:]):
            repeated_header.append(int(starts[i]))
        elif len(record) > width and all(f == "" for f in record[width:]):
            records[i] = record[:width]
            keep[i] = True
            trailing += 1
        elif len(record) > width:
            extra_filled.append(int(starts[i]))
        else:
            too_few.append(int(starts[i]))
    rows = [records[i] for i in np.flatnonzero(keep)] if not keep.all() else records
    frame = pd.DataFrame(rows, columns=header, dtype="str") if rows else pd.DataFrame(columns=header, dtype="str")
    frame.index = pd.Index(starts[keep], dtype="int64", name="line")
    first = frame.iloc[:, 0].to_numpy(dtype=object) if width else np.empty(0, dtype=object)
    suspects = np.flatnonzero((first == header[0]) | (first == ""))  # a header of `width` fields, a row of delimiters
    cells = frame.iloc[suspects].to_numpy(dtype=object)
    header_again = (cells == np.asarray(header, dtype=object)).all(axis=1)
    drop = suspects[header_again | (cells == "").all(axis=1)]
    repeated_header = sorted(repeated_header + frame.index[suspects[header_again]].tolist())
    if len(drop):
        frame = frame.drop(frame.index[drop])

    seen: dict[str, int] = {}
    for pos, name in enumerate(header, start=1):
        if name in seen:
            problems.append(Problem(path, None, name, f"the header names column '{name}' twice (fields {seen[name]} and {pos})",
                                    "give each column its own name"))
        seen.setdefault(name, pos)
    if repeated_header:
        problems.append(Problem(path, repeated_header, None, "the header row is repeated mid-file (files concatenated with "
                                "their headers?)", "delete those lines, or concatenate the exports without their headers"))
    if extra_filled:
        problems.append(Problem(path, extra_filled, None, f"more fields than the header's {width}: the columns are shifted "
                                f"(an unquoted '{sep}' inside a value, or a column missing from the header)",
                                "quote values that contain the delimiter, or add the column to the header"))
    if too_few:
        problems.append(Problem(path, too_few, None, f"fewer fields than the header's {width} (a truncated line or a "
                                "missing delimiter)", "complete or delete those lines"))
    if trailing and not header_trailing:
        log.warning("%s: %d row(s) end with a delimiter after the last header column; the empty last field is ignored",
                    path, trailing)
    if frame.empty and not problems:
        raise SourceReadError(path, "file has a header but no rows")
    return frame.loc[:, ~frame.columns.duplicated()]  # a column named twice is a problem above


def _record_starts(path: Path, encoding: str, sep: str, header_line: int, n: int) -> np.ndarray:
    """The line each record after the header starts on, for files whose quoted values span lines."""
    starts = np.empty(n, dtype=np.int64)
    with _open_text(path, encoding) as fh:
        reader = csv.reader(fh, delimiter=sep)
        while reader.line_num < header_line:
            next(reader)
        previous = header_line
        for i, _ in enumerate(reader):
            starts[i] = previous + 1
            previous = reader.line_num
    return starts


def _undecodable(path: Path, encoding: str) -> str:
    """Where the first undecodable byte is (text is decoded in chunks, ahead of the parser)."""
    with _open_text(path, "latin-1") as fh:  # latin-1 maps every byte: recovers the raw bytes
        raw = fh.read().encode("latin-1")
    try:
        raw.decode(encoding)
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        column = err.start - (raw.rfind(b"\n", 0, err.start) + 1) + 1
        return (f"undecodable text at line {line}, character {column}: byte 0x{raw[err.start]:02x} is not valid {encoding}. "
                "Fix: set ingest.events.encoding to the file's encoding (e.g. latin-1, cp1252)")
    return f"undecodable text (not valid {encoding})"


def read_events_file(path: str | Path, encoding: str, problems: list[Problem]) -> pd.DataFrame:
    """A parquet or CSV/TSV file, rows indexed by their place in the file (see module doc)."""
    path = Path(path)
    if is_parquet(path):
        df = _guarded(path, lambda: pd.read_parquet(path))
        df.index = pd.RangeIndex(1, len(df) + 1, name="row")
        return df
    return read_text_rows(path, encoding, problems)


# --------------------------------------------------------------------------- conversions
def _blank(s: pd.Series) -> pd.Series:
    """Missing values: null, or an empty / whitespace-only string."""
    if pd.api.types.is_string_dtype(s) or pd.api.types.is_object_dtype(s):
        return s.isna() | s.astype("str").str.strip().eq("")
    return s.isna()


def _text(s: pd.Series) -> pd.Series:
    """Strings as written; missing stays missing."""
    if pd.api.types.is_string_dtype(s) and not pd.api.types.is_object_dtype(s):
        return s
    return s.map(lambda v: v if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)).astype("str")


def ids(s: pd.Series, path: Path, problems: list[Problem]) -> pd.Series:
    """Ids as strings exactly as written; empty fields are missing (validation names them)."""
    if pd.api.types.is_float_dtype(s):
        bad = s.index[s.notna() & (s % 1 != 0)]
        problems.append(Problem(path, None, s.name, f"ids stored as floating-point numbers (e.g. {float(s.dropna().iloc[0])!r}): "
                                "7.0 and 7 would be the same id only by accident" +
                                (f"; non-integral at {_where(s.index.name)} {_lines(bad)}" if len(bad) else ""),
                                "write the ids as integers or strings"))
        return s.astype("str")
    if pd.api.types.is_integer_dtype(s):
        return s.astype("Int64").astype("str").where(s.notna())
    if pd.api.types.is_bool_dtype(s) or pd.api.types.is_datetime64_any_dtype(s):
        problems.append(Problem(path, None, s.name, f"ids of type {s.dtype}", "write the ids as integers or strings"))
        return s.astype("str")
    out = _text(s)
    return out.where(~_blank(out))


def numbers(s: pd.Series, path: Path, problems: list[Problem], integral: bool = False) -> pd.Series:
    """Numbers (float64, or nullable Int64 when `integral`); unparsable text is a problem."""
    if pd.api.types.is_bool_dtype(s):
        problems.append(Problem(path, None, s.name, "booleans where numbers are expected", "write numbers"))
        return s
    missing = _blank(s)
    values = pd.to_numeric(s.where(~missing), errors="coerce")
    bad = s.index[values.isna() & ~missing]
    if len(bad):
        examples = ", ".join(repr(v) for v in s[values.isna() & ~missing].head(3))
        problems.append(Problem(path, bad, s.name, f"not a number ({examples})", "write plain numbers ('.' as the decimal mark)"))
    if integral:
        frac = values.notna() & (values % 1 != 0)
        if frac.any():
            problems.append(Problem(path, s.index[frac], s.name, "not a whole number", "write integers"))
            return values
        return values.astype("Int64")
    return values.astype("float64")


def booleans(s: pd.Series, path: Path, problems: list[Problem]) -> pd.Series:
    """True/False from booleans, 1/0 or true/false in any case; else a problem."""
    if pd.api.types.is_bool_dtype(s):
        return s.astype("boolean")
    text = s.astype("str").str.strip().str.lower().where(s.notna())
    if pd.api.types.is_numeric_dtype(s):
        text = s.map(lambda v: None if pd.isna(v) else ("1" if v == 1 else "0" if v == 0 else str(v)))
    out = pd.Series(pd.NA, index=s.index, dtype="boolean")
    out[text.isin(_TRUE)] = True
    out[text.isin(_FALSE)] = False
    bad = s.index[out.isna() & ~_blank(s)]
    if len(bad):
        problems.append(Problem(path, bad, s.name, f"not a boolean ({', '.join(repr(v) for v in s[bad].head(3))})",
                                "write true/false or 1/0"))
    return out


@dataclass
class Timestamps:
    """A timestamp column read: UTC unix seconds (nullable Int64, missing stays missing), the
    unit that was read, and a sort key at the source's own resolution (milliseconds, sub-second
    ISO; missing values last), so ties in whole seconds keep the order the file's values had."""

    seconds: pd.Series
    unit: str
    order: np.ndarray


def timestamps(s: pd.Series, unit: TimestampUnit, path: Path, problems: list[Problem]) -> Timestamps:
    """Parse a timestamp column once (see `Timestamps`); what cannot be read is a problem."""
    missing = _blank(s)
    if pd.api.types.is_datetime64_any_dtype(s):
        utc = s.dt.tz_convert("UTC") if s.dt.tz is not None else s.dt.tz_localize("UTC")
        return Timestamps(_seconds(utc), "datetime", _nanoseconds(utc))
    if pd.api.types.is_bool_dtype(s):
        problems.append(Problem(path, None, s.name, "booleans where timestamps are expected", "write unix seconds or ISO-8601"))
        return Timestamps(s, "invalid", np.zeros(len(s)))
    numeric = pd.to_numeric(s.where(~missing), errors="coerce")
    is_number = numeric.notna()
    order = numeric.astype("float64").fillna(np.inf).to_numpy()
    if is_number.sum() == (~missing).sum():  # unix numbers
        magnitude = float(numeric.abs().max()) if is_number.any() else 0.0
        chosen = unit if unit != "auto" else ("ms" if magnitude >= MS_THRESHOLD else "s")
        seconds = np.floor(numeric / 1000.0) if chosen == "ms" else numeric
        frac = seconds.notna() & (seconds % 1 != 0)
        if frac.any():
            problems.append(Problem(path, s.index[frac], s.name, "fractional unix seconds",
                                    "write whole seconds, or milliseconds with ingest.events.timestamp_unit: ms"))
            return Timestamps(seconds, chosen, order)
        return Timestamps(seconds.astype("Int64"), chosen, order)
    text = s.astype("str").where(~missing)
    if is_number.any():  # some numbers, some text: say which lines are which
        problems.append(Problem(path, s.index[~is_number & ~missing], s.name,
                                f"unix numbers mixed with text timestamps (numbers at {_where(s.index.name)} "
                                f"{_lines(s.index[is_number])})", "write one format in the whole column"))
        return Timestamps(numeric, "invalid", order)
    parsed = pd.to_datetime(text, errors="coerce", utc=True, format="ISO8601")
    bad = s.index[parsed.isna() & ~missing]
    if len(bad):
        problems.append(Problem(path, bad, s.name, f"not an ISO-8601 date-time ({', '.join(repr(v) for v in s[bad].head(3))})",
                                "write e.g. 2024-05-01T12:30:00Z, or unix seconds"))
    return Timestamps(_seconds(parsed), "iso", _nanoseconds(parsed))


def _nanoseconds(utc: pd.Series) -> np.ndarray:
    """int64 nanoseconds since the epoch; missing values last."""
    ns = utc.dt.tz_convert(None).astype("datetime64[ns]").astype("int64")
    return ns.where(utc.notna(), np.iinfo(np.int64).max).to_numpy()


def _seconds(utc: pd.Series) -> pd.Series:
    out = pd.Series(pd.NA, index=utc.index, dtype="Int64")
    ok = utc.notna()
    out[ok] = utc[ok].dt.tz_convert(None).astype("datetime64[s]").astype("int64").to_numpy()
    return out


# --------------------------------------------------------------------------- tables
def _rename(df: pd.DataFrame, rename: dict[str, str], path: Path, problems: list[Problem]) -> pd.DataFrame:
    for src, dst in rename.items():
        if src in df.columns and dst in df.columns and src != dst:
            problems.append(Problem(path, None, dst, f"ingest.events.rename maps '{src}' onto '{dst}', but the file already "
                                    f"has a column '{dst}': two '{dst}' columns", f"drop one of the two, or rename '{dst}' "
                                    f"as well (e.g. rename: {{{dst}: {dst}_original, {src}: {dst}}})"))
    renamed = df.rename(columns=rename)
    return renamed.loc[:, ~renamed.columns.duplicated()]


def _typed(df: pd.DataFrame, path: Path, o: EventsOptions, problems: list[Problem]) -> tuple[pd.DataFrame, np.ndarray | None]:
    """Each column converted as the module doc says, and the timestamps' sort key (None: no
    timestamp column)."""
    out, order = df.copy(), None
    for c in out.columns:
        if c in ID_COLUMNS:
            out[c] = ids(out[c], path, problems)
        elif c == "timestamp":
            ts = timestamps(out[c], o.timestamp_unit, path, problems)
            out[c], order = ts.seconds, ts.order
            log.info("%s: timestamps read as %s", path, {"s": "unix seconds", "ms": "unix milliseconds", "iso": "ISO-8601 "
                     "strings (UTC unless an offset is given)", "datetime": "datetimes"}.get(ts.unit, ts.unit))
        elif c == "value":
            out[c] = numbers(out[c], path, problems)
        elif c in INTEGER_COLUMNS:
            out[c] = numbers(out[c], path, problems, integral=True)
        elif c == "clicked":
            out[c] = booleans(out[c], path, problems)
        else:
            out[c] = _text(out[c])
    return out, order


def _filter_events(df: pd.DataFrame, path: Path, o: EventsOptions, problems: list[Problem]) -> pd.DataFrame:
    if o.event_types is not None:
        keep = df["event"].isin(o.event_types)
        if not keep.any():
            found = df["event"].value_counts().head(10).to_dict()
            problems.append(Problem(path, None, "event", f"ingest.events.event_types {o.event_types} matches no event; the "
                                    f"file has {found}", "list event types the file has (case and spaces count)"))
            return df
        log.info("%s: event_types %s kept %d of %d interactions", path, o.event_types, int(keep.sum()), len(df))
        df = df[keep]
    if o.drop_duplicate_events:
        dup = df.duplicated(keep="first")
        if dup.any():
            log.warning("%s: dropped %d exact duplicate event(s) at %s %s", path, int(dup.sum()), _where(df.index.name),
                        _lines(df.index[dup]))
        df = df[~dup]
    return df


def read_events(
    interactions_path: str | Path,
    items_path: str | Path,
    impressions_path: str | Path | None = None,
    options: EventsOptions | None = None,
) -> RawTables:
    """Interactions, items and (if given) impressions, read as the module doc says. Every
    problem of every file is raised together (`SourceProblemsError`)."""
    o = options or EventsOptions()
    problems: list[Problem] = []
    paths = {"interactions": Path(interactions_path), "items": Path(items_path)}
    if impressions_path:
        paths["impressions"] = Path(impressions_path)
    frames: dict[str, pd.DataFrame] = {}
    read_errors: list[SourceReadError] = []
    for table, path in paths.items():
        try:
            frames[table] = read_events_file(path, o.encoding, problems)
        except SourceReadError as err:
            read_errors.append(err)
    unused = [k for k in o.rename if not any(k in f.columns for f in frames.values())]
    if unused and not read_errors:
        have = {t: list(f.columns) for t, f in frames.items()}
        problems.append(Problem(Path(", ".join(str(p) for p in paths.values())), None, ", ".join(unused),
                                f"ingest.events.rename names column(s) {unused} that no file has (columns: {have})",
                                "fix the names in ingest.events.rename"))
    for table, df in list(frames.items()):
        path = paths[table]
        df, order = _typed(_rename(df, o.rename, path, problems), path, o, problems)
        if table == "interactions":
            if "event" not in df:
                df["event"] = pd.Series("interaction", index=df.index, dtype="str")
            order = pd.Series(order, index=df.index) if order is not None else None
            df = _filter_events(df, path, o, problems)
            if order is not None:  # ties in whole seconds keep the finer order the file had
                df = df.iloc[np.argsort(order.loc[df.index].to_numpy(), kind="stable")]
        if table == "items" and "text" not in df and "title" in df:
            df["text"] = df["title"]
        frames[table] = df
    if read_errors or problems:
        raise SourceProblemsError(problems, read_errors)
    return RawTables("events", frames["interactions"], frames["items"], frames.get("impressions"),
                     files={t: str(p) for t, p in paths.items()})


def id_format_hints(values: pd.Series, catalog: pd.Series) -> str | None:
    """When ids missing from `catalog` match it after normalising their format (leading zeros,
    surrounding spaces, case, a trailing '.0'), say so with examples: the cause is a format
    mismatch between the files, not unknown items."""
    def norm(v: pd.Series) -> pd.Series:
        t = v.dropna().astype("str").str.strip().str.lower().str.replace(r"\.0+$", "", regex=True)
        return t.str.replace(r"^0+(?=\d)", "", regex=True)

    missing = pd.Series(values[~values.isin(catalog)].dropna().unique())
    if missing.empty:
        return None
    lookup = dict(zip(norm(catalog.drop_duplicates()), catalog.drop_duplicates().dropna(), strict=False))
    pairs = [(m, lookup[n]) for m, n in zip(missing, norm(missing), strict=True) if n in lookup]
    if not pairs:
        return None
    shown = ", ".join(f"{a!r} vs {b!r}" for a, b in pairs[:_EXAMPLES])
    return (f"{len(pairs)} of the {len(missing)} unknown ids match a catalog id once their format is normalised ({shown}): "
            "the files write the ids differently (leading zeros, spaces, case or a '.0'); write them the same way in every file")

