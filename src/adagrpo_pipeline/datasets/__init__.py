"""Project Kedro datasets."""

from .checkpoint_dataset import CheckpointDataset, CheckpointSeriesDataset
from .safetensors_dataset import SafetensorsDataset
from .samples_dataset import SamplesDataset

__all__ = ["CheckpointDataset", "CheckpointSeriesDataset", "SafetensorsDataset", "SamplesDataset"]
