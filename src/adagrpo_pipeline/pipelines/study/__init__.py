"""The `study` pipeline: the controlled study on the simulator (docs/architecture.md)."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
