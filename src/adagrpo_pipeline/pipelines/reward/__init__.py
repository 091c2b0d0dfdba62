"""The `reward` pipeline: the ranker trained on logged impressions, calibrated into a reward."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
