"""The `adagrpo` pipeline: RL fine-tuning of the SFT policy; one namespace per variant."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
