"""Typed parameters of the SASRec models: the size (shared by the ranker and the retriever) and
the retriever's training (`params:evaluate.sasrec`)."""

from __future__ import annotations

from pydantic import Field

from adagrpo_pipeline.params import Strict


class SASRecSize(Strict):
    d_model: int = Field(64, ge=8, description="embedding and hidden width")
    num_layers: int = Field(2, ge=1, description="self-attention blocks")
    num_heads: int = Field(2, ge=1, description="attention heads per block")
    d_ff: int = Field(256, ge=8, description="feed-forward width")
    dropout: float = Field(0.2, ge=0.0, lt=1.0, description="dropout on embeddings, attention and feed-forward")


class SasrecParams(Strict):
    """`params:evaluate.sasrec`: the reference retriever."""

    model: SASRecSize = SASRecSize()
    max_history: int = Field(50, ge=1, description="history items read (most recent); windows are max_history + 1 items")
    batch_size: int = Field(128, ge=1, description="windows per step")
    lr: float = Field(3e-3, gt=0, description="AdamW learning rate (constant)")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay")
    grad_clip: float = Field(1.0, gt=0, description="gradient-norm clipping")
    max_steps: int = Field(700, ge=1, description="upper bound (the time budget); early stopping may end sooner")
    eval_every: int = Field(50, ge=1, description="validation NDCG@10 (filtered) every N steps")
    patience: int = Field(5, ge=1, description="evaluations without improvement before stopping")
    checkpoint_every: int = Field(200, ge=1, description="resumable training state every N steps")
    state_dir: str | None = Field("data/06_models/sasrec_state",
                                  description="resumable training state (latest run); null = keep nothing on disk")
    device: str = Field("auto", description="auto | cpu | cuda[:n]")
    seed: int = Field(0, description="seed of the initial weights, dropout and batch order")
