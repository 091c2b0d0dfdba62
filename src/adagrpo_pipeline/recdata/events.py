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

The text files' reader is `recdata.text_rows`, the column conversions are `recdata.conversions`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .conversions import TimestampUnit, booleans, ids, numbers, strings, timestamps
from .errors import EXAMPLES, Problem, SourceProblemsError, SourceReadError, listed, unit_of
from .readers import guarded, is_parquet
from .schema import RawTables
from .text_rows import read_text_rows

log = logging.getLogger(__name__)

ID_COLUMNS = ("user_id", "item_id")
INTEGER_COLUMNS = ("request_id", "position")


@dataclass
class EventsOptions:
    """How the files are read (see `recdata.config.EventsSource`)."""

    rename: dict[str, str] = field(default_factory=dict)
    encoding: str = "utf-8"
    timestamp_unit: TimestampUnit = "auto"
    drop_duplicate_events: bool = False
    event_types: list[str] | None = None


def read_events_file(path: str | Path, encoding: str, problems: list[Problem]) -> pd.DataFrame:
    """A parquet or CSV/TSV file, rows indexed by their place in the file (see module doc)."""
    path = Path(path)
    if is_parquet(path):
        df = guarded(path, lambda: pd.read_parquet(path))
        df.index = pd.RangeIndex(1, len(df) + 1, name="row")
        return df
    return read_text_rows(path, encoding, problems)


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
            out[c] = strings(out[c])
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
            log.warning("%s: dropped %d exact duplicate event(s) at %ss %s", path, int(dup.sum()), unit_of(df.index.name),
                        listed(list(df.index[dup])))
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
    shown = ", ".join(f"{a!r} vs {b!r}" for a, b in pairs[:EXAMPLES])
    return (f"{len(pairs)} of the {len(missing)} unknown ids match a catalog id once their format is normalised ({shown}): "
            "the files write the ids differently (leading zeros, spaces, case or a '.0'); write them the same way in every file")

