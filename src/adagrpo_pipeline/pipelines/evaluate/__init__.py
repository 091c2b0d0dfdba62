"""The `evaluate` pipeline: offline metrics of a saved policy checkpoint and reference rows."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
