"""Great Expectations suites for every raw and derived table (docs/architecture.md,
"Data contracts").

Each suite is built for the table it checks (which columns exist, what id ranges are valid,
which catalog the items must belong to), run on an ephemeral GX context over the in-memory
DataFrame, and turned into a `DataValidationError` that names the table, every failed
expectation and example bad rows. Column-level expectations are only added for columns
that exist: a missing column is reported once, by the column-set expectation.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .errors import DataValidationError
from .schema import (
    IMPRESSIONS,
    INTERACTIONS,
    ITEMS,
    RAW_IMPRESSIONS,
    RAW_INTERACTIONS,
    RAW_ITEMS,
    RELEVANCE,
    USERS,
)

os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
import great_expectations as gx  # noqa: E402
from great_expectations.data_context.types.base import ProgressBarsConfig  # noqa: E402

log = logging.getLogger(__name__)
E = gx.expectations

INT_TYPES = ["int64", "int32", "int16", "int8", "uint64", "uint32", "uint16", "uint8", "Int64", "Int32"]


_CONTEXT: Any = None
_RUNS = itertools.count()


def _context() -> Any:
    """One ephemeral GX context per process (each one creates a temporary docs folder)."""
    global _CONTEXT
    if _CONTEXT is None:
        logging.getLogger("great_expectations").setLevel(logging.WARNING)
        _CONTEXT = gx.get_context(mode="ephemeral")
        _CONTEXT.variables.progress_bars = ProgressBarsConfig(globally=False)
    return _CONTEXT


@dataclass
class Suite:
    """Expectations for one table, added only for the columns the table has."""

    table: str
    df: pd.DataFrame
    required: tuple[str, ...]
    expectations: list[Any] = field(default_factory=list)
    source: str | None = None  # the file the table was read from (named in errors)
    notes: list[str] = field(default_factory=list)  # likely causes, reported when the suite fails

    def __post_init__(self) -> None:
        self.expectations.append(E.ExpectTableColumnsToMatchSet(column_set=list(self.required), exact_match=False))
        self.expectations.append(E.ExpectTableRowCountToBeBetween(min_value=1))

    def has(self, *columns: str) -> bool:
        return all(c in self.df.columns for c in columns)

    def add(self, columns: Iterable[str] | str, expectation: Any) -> Suite:
        cols = [columns] if isinstance(columns, str) else list(columns)
        if self.has(*cols):
            self.expectations.append(expectation)
        return self

    # Shorthands ---------------------------------------------------------------------
    def not_null(self, *columns: str) -> Suite:
        for c in columns:
            self.add(c, E.ExpectColumnValuesToNotBeNull(column=c))
        return self

    def integer(self, *columns: str) -> Suite:
        for c in columns:
            if c in self.df.columns and isinstance(self.df[c].dtype, pd.api.extensions.ExtensionDtype) \
                    and pd.api.types.is_integer_dtype(self.df[c]):
                continue  # nullable integers (a reader's `Int64`): integral by type; missing values are not_null's
            self.add(c, E.ExpectColumnValuesToBeInTypeList(column=c, type_list=INT_TYPES))
        return self

    def of_type(self, column: str, type_: str) -> Suite:
        return self.add(column, E.ExpectColumnValuesToBeOfType(column=column, type_=type_))

    def id_type(self, *columns: str) -> Suite:
        """Raw ids: integers or strings (whichever the column holds must be clean)."""
        for c in columns:
            if c in self.df.columns and pd.api.types.is_string_dtype(self.df[c]) and not pd.api.types.is_object_dtype(self.df[c]):
                self.of_type(c, "str")
            else:
                self.integer(c)
        return self

    def between(self, column: str, lo: float | None, hi: float | None) -> Suite:
        lo, hi = (None if b is None else np.asarray(b).item() for b in (lo, hi))
        return self.add(column, E.ExpectColumnValuesToBeBetween(column=column, min_value=lo, max_value=hi))

    def unique(self, *columns: str) -> Suite:
        if len(columns) == 1:
            return self.add(columns, E.ExpectColumnValuesToBeUnique(column=columns[0]))
        return self.add(columns, E.ExpectCompoundColumnsToBeUnique(column_list=list(columns)))

    def in_set(self, column: str, values: Iterable[Any]) -> Suite:
        return self.add(column, E.ExpectColumnValuesToBeInSet(column=column, value_set=np.asarray(list(values)).tolist()))

    # Running --------------------------------------------------------------------------
    def validate(self, max_examples: int = 5) -> dict[str, Any]:
        """Run the suite; raise `DataValidationError` on any failure, else return a summary."""
        return validate_all([self], max_examples)[0]

    def run(self, max_examples: int = 5) -> tuple[dict[str, Any], DataValidationError | None]:
        """Run the suite: (summary, the error describing its failures or None)."""
        start = time.perf_counter()
        ctx, run = _context(), next(_RUNS)
        batch = (
            ctx.data_sources.add_pandas(f"tables_{run}")
            .add_dataframe_asset(name=self.table)
            .add_batch_definition_whole_dataframe("whole")
            .get_batch(batch_parameters={"dataframe": self.df})
        )
        suite = ctx.suites.add(gx.ExpectationSuite(name=f"{self.table}_suite_{run}", expectations=self.expectations))
        result = batch.validate(suite, result_format={"result_format": "COMPLETE", "partial_unexpected_count": max_examples})
        failures = [_describe(self.df, r, max_examples) for r in result.results if not r.success]
        summary = {
            "table": self.table,
            "rows": int(len(self.df)),
            "expectations": len(result.results),
            "seconds": round(time.perf_counter() - start, 3),
        }
        if failures:
            return summary, DataValidationError(self.table, failures + self.notes, self.source)
        log.info("validated %(table)s: %(rows)d rows, %(expectations)d expectations passed", summary)
        return summary, None


def validate_all(suites: list[Suite], max_examples: int = 5) -> list[dict[str, Any]]:
    """Run every suite; raise one `DataValidationError` naming every failing table (with its
    source file), else return one summary per suite."""
    results = [s.run(max_examples) for s in suites]
    errors = [e for _, e in results if e is not None]
    if errors:
        raise DataValidationError.combine(errors)
    return [summary for summary, _ in results]


def _describe(df: pd.DataFrame, r: Any, max_examples: int) -> str:
    cfg = r.expectation_config
    kwargs = {k: v for k, v in cfg.kwargs.items() if k not in ("batch_id", "result_format")}
    if "value_set" in kwargs and len(kwargs["value_set"]) > 8:
        kwargs["value_set"] = f"<{len(kwargs['value_set'])} values>"
    head = f"{cfg.type}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())})"
    if r.exception_info and r.exception_info.get("raised_exception"):
        return f"{head}: could not be evaluated: {r.exception_info.get('exception_message')}"
    res = r.result or {}
    parts = [head]
    if "observed_value" in res:
        parts.append(f"observed {res['observed_value']!r}")
    if res.get("details", {}).get("mismatched"):
        parts.append(f"mismatched columns {res['details']['mismatched']}")
    if res.get("unexpected_count"):
        parts.append(f"{res['unexpected_count']} bad row(s) of {res.get('element_count', len(df))}")
    idx = res.get("unexpected_index_list") or []
    if idx:
        # GE gives index labels, or {index name: label, ...} for a named index (a reader's file lines)
        labels = [i.get(df.index.name) if isinstance(i, dict) else i for i in idx[:max_examples]]
        rows = df.loc[sorted(i for i in labels if i in df.index)]
        where = {"line": " (by file line)", "row": " (by file row)"}.get(df.index.name, "")
        parts.append(f"examples{where}:\n" + _indent(rows.to_string(max_colwidth=40)))
    elif cfg.type in ("expect_column_values_to_be_in_type_list", "expect_column_values_to_be_of_type"):
        col = kwargs.get("column")
        if col in df.columns:
            parts.append("first values:\n" + _indent(df[[col]].head(max_examples).to_string(max_colwidth=40)))
    return "; ".join(parts)


def _indent(text: str) -> str:
    return "\n".join("      " + line for line in text.splitlines())


def timestamp_bounds(min_timestamp: int, max_timestamp: int | None) -> tuple[int, int]:
    return min_timestamp, (max_timestamp if max_timestamp is not None else int(time.time()) + 86400)


# --------------------------------------------------------------------------- raw suites
def raw_interactions_suite(df: pd.DataFrame, item_ids: pd.Series | None, ts: tuple[int, int]) -> Suite:
    s = Suite("raw_interactions", df, RAW_INTERACTIONS)
    s.not_null("user_id", "item_id", "timestamp", "event").id_type("user_id", "item_id").integer("timestamp")
    s.between("timestamp", *ts).unique("user_id", "item_id", "timestamp", "event")
    if item_ids is not None:
        s.in_set("item_id", item_ids.dropna().unique())
    return s


def raw_items_suite(df: pd.DataFrame) -> Suite:
    s = Suite("raw_items", df, RAW_ITEMS)
    return s.not_null("item_id", "title", "text").id_type("item_id").unique("item_id").of_type("title", "str").of_type("text", "str")


def raw_impressions_suite(df: pd.DataFrame, item_ids: pd.Series | None, ts: tuple[int, int]) -> Suite:
    s = Suite("raw_impressions", df, RAW_IMPRESSIONS)
    s.not_null(*RAW_IMPRESSIONS)
    s.id_type("user_id", "item_id").integer("request_id", "timestamp", "position").of_type("clicked", "bool")
    s.between("timestamp", *ts).between("position", 0, None)
    s.unique("request_id", "position").unique("request_id", "item_id")
    if item_ids is not None:
        s.in_set("item_id", item_ids.dropna().unique())
    return s


# --------------------------------------------------------------------------- derived suites
def interactions_suite(df: pd.DataFrame, n_users: int, n_items: int, ts: tuple[int, int]) -> Suite:
    s = Suite("interactions", df, tuple(INTERACTIONS))
    s.not_null("user_id", "item_id", "timestamp", "event").integer("user_id", "item_id", "timestamp").of_type("event", "str")
    s.between("user_id", 0, n_users - 1).between("item_id", 0, n_items - 1).between("timestamp", *ts)
    return s.unique("user_id", "item_id", "timestamp", "event")


def impressions_suite(df: pd.DataFrame, n_users: int, n_items: int, ts: tuple[int, int]) -> Suite:
    s = Suite("impressions", df, tuple(IMPRESSIONS))
    s.not_null(*s.required).integer("request_id", "user_id", "timestamp", "item_id").of_type("position", "int16")
    s.of_type("clicked", "bool").between("user_id", 0, n_users - 1).between("item_id", 0, n_items - 1)
    s.between("timestamp", *ts).between("position", 0, None)
    return s.unique("request_id", "position").unique("request_id", "item_id")


def items_suite(df: pd.DataFrame, n_items: int) -> Suite:
    s = Suite("items", df, tuple(ITEMS))
    s.not_null("item_id", "title", "text").integer("item_id").of_type("title", "str").of_type("text", "str")
    s.between("item_id", 0, n_items - 1).unique("item_id")
    s.add("text", E.ExpectColumnValueLengthsToBeBetween(column="text", min_value=1))
    s.expectations.append(E.ExpectTableRowCountToEqual(value=n_items))
    return s


def sequences_suites(name: str, df: pd.DataFrame, n_users: int, n_items: int, max_history: int) -> list[Suite]:
    """Two suites: the samples (user, target, history length) and every history item."""
    lengths = df["history"].map(len) if "history" in df else pd.Series(dtype="int64")
    samples = pd.DataFrame({c: df[c] for c in ("user_id", "target") if c in df})
    samples["history_length"] = lengths.astype("int64")
    s = Suite(name, samples, ("user_id", "target", "history_length"))
    s.not_null("user_id", "target").integer("user_id", "target").between("user_id", 0, n_users - 1)
    s.between("target", 0, n_items - 1).between("history_length", 1, max_history)
    hist = pd.DataFrame({"item_id": np.concatenate(df["history"].to_list()) if len(df) else np.array([], dtype=np.int64)})
    h = Suite(f"{name}.history", hist, ("item_id",)).integer("item_id").between("item_id", 0, n_items - 1)
    return [s, h]


def users_suite(df: pd.DataFrame, n_users: int) -> Suite:
    """One row per user id 0..n_users-1; attributes are strings ('' where unknown)."""
    s = Suite("users", df, tuple(USERS))
    s.not_null(*df.columns).integer("user_id").between("user_id", 0, n_users - 1).unique("user_id")
    for c in df.columns.drop("user_id"):
        s.of_type(c, "str")
    s.expectations.append(E.ExpectTableRowCountToEqual(value=n_users))
    return s


def relevance_suite(df: pd.DataFrame, n_users: int, n_items: int) -> Suite:
    s = Suite("ground_truth_relevance", df, tuple(RELEVANCE))
    s.not_null("user_id", "item_id", "relevance").between("user_id", 0, n_users - 1).between("item_id", 0, n_items - 1)
    return s.between("relevance", 0.0, 1.0).unique("user_id", "item_id")


def semantic_ids_suite(df: pd.DataFrame, n_items: int, level_sizes: list[int]) -> Suite:
    """semantic_ids (item_id, codes list<int16>): one row per item, each level in range, every
    code tuple unique. The codes are checked as one column per level."""
    levels = len(level_sizes)
    codes = np.stack(df["codes"].to_numpy()) if len(df) else np.empty((0, levels), dtype=np.int16)
    if codes.ndim != 2 or codes.shape[1] != levels:
        lengths = sorted({len(c) for c in df["codes"]})
        raise DataValidationError("semantic_ids", [f"every item needs {levels} codes; found code lengths {lengths}"])
    wide = pd.DataFrame({"item_id": df["item_id"].to_numpy(), **{f"code_{lv}": codes[:, lv].astype(np.int64) for lv in range(levels)}})
    s = Suite("semantic_ids", wide, ("item_id", *(f"code_{lv}" for lv in range(levels))))
    s.not_null(*s.required).integer("item_id").between("item_id", 0, n_items - 1).unique("item_id")
    for level, size in enumerate(level_sizes):
        s.between(f"code_{level}", 0, size - 1)
    s.unique(*(f"code_{lv}" for lv in range(levels)))
    s.expectations.append(E.ExpectTableRowCountToEqual(value=n_items))
    return s
