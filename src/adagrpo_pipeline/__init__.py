"""adagrpo-pipeline: generative recommendation over semantic IDs, fine-tuned with AdaGRPO."""

__version__ = "0.1.0"
