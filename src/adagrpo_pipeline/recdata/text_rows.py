"""The `events` source's CSV/TSV reader (optionally gzip): every field a string as written, each
record indexed by the file line it starts on (`line`, 1-based with the header on line 1), and
what is wrong with the file's shape (shifted, short or blank rows, a repeated header, a column
named twice) collected as `Problem`s, so that one run reports them all (see `recdata.events`)."""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import NO_DATA, NO_ROWS, Problem, SourceReadError
from .readers import open_text, require_file, text_separator

# The events source's log: these warnings are the `events` reader's, as they always were.
log = logging.getLogger(f"{__package__}.events")


@dataclass
class _OddRecords:
    """Where the records whose field count is not the header's start, by kind."""

    repeated_header: list[int] = field(default_factory=list)
    extra_filled: list[int] = field(default_factory=list)  # more fields, the extra ones not empty
    too_few: list[int] = field(default_factory=list)
    trailing: int = 0  # records that end with a delimiter after the last header column


def read_text_rows(path: Path, encoding: str, problems: list[Problem]) -> pd.DataFrame:
    """A CSV/TSV file as strings, indexed by the file line each record starts on.

    Blank lines are skipped; a delimiter closing every row (an empty last field) is dropped;
    a record with more fields than the header (shifted columns), fewer (a truncated or
    unquoted line), a header repeated mid-file or a column named twice is a problem.
    """
    require_file(path)
    sep = text_separator(path)
    header, records, starts = _parse(path, encoding, sep)
    header_trailing = len(header) > 1 and header[-1] == ""
    if header_trailing:
        header = header[:-1]
    keep, odd = _sort_odd_records(records, starts, header)
    frame, repeated_header = _rows_frame(records, keep, starts, header)
    odd.repeated_header = sorted(odd.repeated_header + repeated_header)
    _report_shape(path, header, sep, odd, problems)
    if odd.trailing and not header_trailing:
        log.warning("%s: %d row(s) end with a delimiter after the last header column; the empty last field is ignored",
                    path, odd.trailing)
    if frame.empty and not problems:
        raise SourceReadError(path, NO_ROWS)
    return frame.loc[:, ~frame.columns.duplicated()]  # a column named twice is a problem above


def _parse(path: Path, encoding: str, sep: str) -> tuple[list[str], list[list[str]], np.ndarray]:
    """The header, every record after it and the line each record starts on; a file that cannot
    be decoded or parsed is a `SourceReadError`."""
    try:
        with open_text(path, encoding) as fh:
            reader = csv.reader(fh, delimiter=sep)
            header = next(reader, None)
            while header is not None and all(f == "" for f in header):  # blank lines before the header
                header = next(reader, None)
            if header is None:
                raise SourceReadError(path, NO_DATA)
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
    return header, records, starts


def _sort_odd_records(records: list[list[str]], starts: np.ndarray,
                      header: list[str]) -> tuple[np.ndarray, _OddRecords]:
    """Which records to keep (the header's width) and where the others start, by kind; a record
    whose extra fields are all empty (a closing delimiter) is cut to the header's width and kept
    (in `records`)."""
    width = len(header)
    lengths = np.fromiter(map(len, records), dtype=np.int64, count=len(records))
    keep = lengths == width
    odd = _OddRecords()
    for i in np.flatnonzero(~keep):  # the few odd rows, one by one
        record = records[i]
        if all(f == "" for f in record):
            continue  # a blank line
        if record[:width] == header and all(f == "" for f in record[width:]):
            odd.repeated_header.append(int(starts[i]))
        elif len(record) > width and all(f == "" for f in record[width:]):
            records[i] = record[:width]
            keep[i] = True
            odd.trailing += 1
        elif len(record) > width:
            odd.extra_filled.append(int(starts[i]))
        else:
            odd.too_few.append(int(starts[i]))
    return keep, odd


def _rows_frame(records: list[list[str]], keep: np.ndarray, starts: np.ndarray,
                header: list[str]) -> tuple[pd.DataFrame, list[int]]:
    """The kept records as strings indexed by `line`, without the rows that repeat the header or
    hold only delimiters; and the lines of those repeated headers."""
    width = len(header)
    rows = [records[i] for i in np.flatnonzero(keep)] if not keep.all() else records
    frame = pd.DataFrame(rows, columns=header, dtype="str") if rows else pd.DataFrame(columns=header, dtype="str")
    frame.index = pd.Index(starts[keep], dtype="int64", name="line")
    first = frame.iloc[:, 0].to_numpy(dtype=object) if width else np.empty(0, dtype=object)
    suspects = np.flatnonzero((first == header[0]) | (first == ""))  # a header of `width` fields, a row of delimiters
    cells = frame.iloc[suspects].to_numpy(dtype=object)
    header_again = (cells == np.asarray(header, dtype=object)).all(axis=1)
    drop = suspects[header_again | (cells == "").all(axis=1)]
    repeated_header = frame.index[suspects[header_again]].tolist()
    if len(drop):
        frame = frame.drop(frame.index[drop])
    return frame, repeated_header


def _report_shape(path: Path, header: list[str], sep: str, odd: _OddRecords, problems: list[Problem]) -> None:
    """A problem for a column named twice, a repeated header, shifted and short records."""
    width = len(header)
    seen: dict[str, int] = {}
    for pos, name in enumerate(header, start=1):
        if name in seen:
            problems.append(Problem(path, None, name, f"the header names column '{name}' twice (fields {seen[name]} and {pos})",
                                    "give each column its own name"))
        seen.setdefault(name, pos)
    if odd.repeated_header:
        problems.append(Problem(path, odd.repeated_header, None, "the header row is repeated mid-file (files concatenated "
                                "with their headers?)", "delete those lines, or concatenate the exports without their headers"))
    if odd.extra_filled:
        problems.append(Problem(path, odd.extra_filled, None, f"more fields than the header's {width}: the columns are "
                                f"shifted (an unquoted '{sep}' inside a value, or a column missing from the header)",
                                "quote values that contain the delimiter, or add the column to the header"))
    if odd.too_few:
        problems.append(Problem(path, odd.too_few, None, f"fewer fields than the header's {width} (a truncated line or a "
                                "missing delimiter)", "complete or delete those lines"))


def _record_starts(path: Path, encoding: str, sep: str, header_line: int, n: int) -> np.ndarray:
    """The line each record after the header starts on, for files whose quoted values span lines."""
    starts = np.empty(n, dtype=np.int64)
    with open_text(path, encoding) as fh:
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
    with open_text(path, "latin-1") as fh:  # latin-1 maps every byte: recovers the raw bytes
        raw = fh.read().encode("latin-1")
    try:
        raw.decode(encoding)
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        column = err.start - (raw.rfind(b"\n", 0, err.start) + 1) + 1
        return (f"undecodable text at line {line}, character {column}: byte 0x{raw[err.start]:02x} is not valid {encoding}. "
                "Fix: set ingest.events.encoding to the file's encoding (e.g. latin-1, cp1252)")
    return f"undecodable text (not valid {encoding})"
