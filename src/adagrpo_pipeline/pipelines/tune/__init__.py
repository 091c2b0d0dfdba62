"""The `tune` pipeline: equal-budget search of every variant's knobs on the valid split."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
