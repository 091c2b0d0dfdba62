"""The `sft` pipeline: the generative policy trained by next-item NLL."""

from .pipeline import create_pipeline, seeded_pipeline

__all__ = ["create_pipeline", "seeded_pipeline"]
