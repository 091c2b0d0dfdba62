"""Project Kedro datasets."""

from .checkpoint_dataset import CheckpointDataset
from .safetensors_dataset import SafetensorsDataset

__all__ = ["CheckpointDataset", "SafetensorsDataset"]
