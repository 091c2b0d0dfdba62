"""The `tokenize` pipeline: item text (or co-occurrence) → embeddings → semantic IDs → vocab and trie."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
