"""Project Kedro datasets."""

from .safetensors_dataset import SafetensorsDataset

__all__ = ["SafetensorsDataset"]
