"""The `compare` pipeline: every variant × seed from the same SFT policy and ranker."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
