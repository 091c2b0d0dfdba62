"""Project Kedro datasets."""

from .checkpoint_dataset import CheckpointDataset, CheckpointSeriesDataset
from .safetensors_dataset import SafetensorsDataset

__all__ = ["CheckpointDataset", "CheckpointSeriesDataset", "SafetensorsDataset"]
