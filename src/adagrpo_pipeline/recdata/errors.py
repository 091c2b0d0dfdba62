"""Errors raised on bad input. Each names what is wrong and where."""

from __future__ import annotations


class SourceReadError(ValueError):
    """A raw source file could not be read (missing, empty, undecodable, truncated, malformed)."""

    def __init__(self, path: object, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"cannot read raw source file '{self.path}': {problem}")


class DataValidationError(ValueError):
    """A table failed its Great Expectations suite."""

    def __init__(self, table: str, failures: list[str]):
        self.table = table
        self.failures = failures
        lines = "\n".join(f"  - {f}" for f in failures)
        super().__init__(
            f"table '{table}' failed {len(failures)} expectation(s) of its validation suite:\n{lines}"
        )


class ExposureBiasError(ValueError):
    """An exposure-bias metric crossed its 'fail' threshold."""
