"""`train_adagrpo`: the main job, every stage built so far, in order."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
