"""The `ingest` pipeline: raw logs in, validated, exposure bias measured, sequences out."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
