"""Errors raised on bad input. Each names what is wrong and where."""

from __future__ import annotations

EXAMPLES = 5  # values (file lines, rows) quoted per problem
NO_DATA = "file has no data (no header or rows)"
NO_ROWS = "file has a header but no rows"


class SourceReadError(ValueError):
    """A raw source file could not be read (missing, empty, undecodable, truncated, malformed)."""

    def __init__(self, path: object, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"cannot read raw source file '{self.path}': {problem}")


class DataValidationError(ValueError):
    """One or more tables failed their Great Expectations suites (`tables`: one entry per table:
    name, the file it was read from or None, its failures)."""

    def __init__(self, table: str, failures: list[str], source: str | None = None):
        self.tables = [(table, source, list(failures))]
        self._compose()

    @classmethod
    def combine(cls, errors: list[DataValidationError]) -> DataValidationError:
        out = cls.__new__(cls)
        out.tables = [t for e in errors for t in e.tables]
        out._compose()
        return out

    def _compose(self) -> None:
        self.table, _, self.failures = self.tables[0]
        blocks = []
        for table, source, failures in self.tables:
            lines = "\n".join(f"  - {f}" for f in failures)
            origin = f" (read from '{source}')" if source else ""
            blocks.append(f"table '{table}'{origin} failed {len(failures)} expectation(s) of its validation suite:\n{lines}")
        head = f"{len(self.tables)} tables failed validation:\n" if len(self.tables) > 1 else ""
        ValueError.__init__(self, head + "\n".join(blocks))


class ExposureBiasError(ValueError):
    """An exposure-bias metric crossed its 'fail' threshold."""


def listed(values: list[object], shown: int = EXAMPLES) -> str:
    """The first `shown` values, comma-separated, and how many more there are."""
    more = f" (and {len(values) - shown} more)" if len(values) > shown else ""
    return ", ".join(str(v) for v in values[:shown]) + more


def unit_of(index_name: object) -> str:
    """What a source frame's index counts: 'row' of a parquet file (index `row`), else 'line' of
    a text file."""
    return "row" if index_name == "row" else "line"


class Problem:
    """One thing wrong with a source file: where (file, lines or rows, column), why, and the fix."""

    def __init__(self, path: object, lines: object, column: object, cause: str, fix: str):
        self.path, self.column, self.cause, self.fix = str(path), column, cause, fix
        self.unit = unit_of(getattr(lines, "name", None))
        self.lines = [int(i) for i in lines] if lines is not None else []

    def __str__(self) -> str:
        where = [f"file '{self.path}'"]
        if self.lines:
            where.append(f"{self.unit}{'s' if len(self.lines) > 1 else ''} {listed(self.lines)}")
        if self.column is not None:
            where.append(f"column '{self.column}'")
        return f"{', '.join(where)}: {self.cause}. Fix: {self.fix}."


class SourceProblemsError(SourceReadError):
    """Every problem found in a source's files, reported together."""

    def __init__(self, problems: list[Problem], read_errors: list[SourceReadError] | None = None):
        self.problems = list(problems)
        self.read_errors = list(read_errors or [])
        entries = [str(e) for e in self.read_errors] + [str(p) for p in self.problems]
        files = sorted({p.path for p in self.problems} | {e.path for e in self.read_errors})
        ValueError.__init__(self, f"{len(entries)} problem(s) in the source files {files}:\n"
                            + "\n".join(f"  - {e}" for e in entries))
        self.path = ", ".join(files)
        self.problem = "\n".join(entries)
