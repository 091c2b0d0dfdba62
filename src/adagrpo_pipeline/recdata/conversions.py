"""The `events` source's column conversions (see `recdata.events` for what each column
becomes): ids as written, numbers, booleans and timestamps; what cannot be converted is a
`Problem` that names the file, the lines (or parquet rows) and the column."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from .errors import Problem, listed, unit_of

TimestampUnit = Literal["auto", "s", "ms"]
MS_THRESHOLD = 1e11  # |t| >= 1e11 is after the year 5138 in seconds, 1973 in milliseconds
_TRUE, _FALSE = {"true", "1"}, {"false", "0"}


def _blank(s: pd.Series) -> pd.Series:
    """Missing values: null, or an empty / whitespace-only string."""
    if pd.api.types.is_string_dtype(s) or pd.api.types.is_object_dtype(s):
        return s.isna() | s.astype("str").str.strip().eq("")
    return s.isna()


def strings(s: pd.Series) -> pd.Series:
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
                                (f"; non-integral at {unit_of(s.index.name)}s {listed(list(bad))}" if len(bad) else ""),
                                "write the ids as integers or strings"))
        return s.astype("str")
    if pd.api.types.is_integer_dtype(s):
        return s.astype("Int64").astype("str").where(s.notna())
    if pd.api.types.is_bool_dtype(s) or pd.api.types.is_datetime64_any_dtype(s):
        problems.append(Problem(path, None, s.name, f"ids of type {s.dtype}", "write the ids as integers or strings"))
        return s.astype("str")
    out = strings(s)
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
                                f"unix numbers mixed with text timestamps (numbers at {unit_of(s.index.name)}s "
                                f"{listed(list(s.index[is_number]))})", "write one format in the whole column"))
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
