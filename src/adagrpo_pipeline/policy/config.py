"""Typed parameters of the `sft` and `evaluate` stages."""

from __future__ import annotations

from pydantic import Field, model_validator

from adagrpo_pipeline.params import Strict
from adagrpo_pipeline.sasrec.config import SasrecParams
from adagrpo_pipeline.training.distributed import check_processes

from .model import EncoderInput, PolicySize


class SftParams(Strict):
    """`params:sft`: the policy's size and its supervised training (next-item NLL)."""

    model: PolicySize = Field(default_factory=PolicySize, description="the T5 policy's size")
    max_items: int = Field(20, ge=1, description="history items fed to the encoder")
    user_buckets: int = Field(0, ge=0, description="> 0: prepend a hashed user token")
    encoder_input: EncoderInput = Field("items", description="tokens (TIGER, L positions an item) or items (sum of an item's token embeddings)")
    batch_size: int = Field(256, ge=1, description="training samples per step (the global batch over all processes)")
    lr: float = Field(3e-3, gt=0, description="AdamW peak learning rate, reached after warmup_steps, then cosine decay to 0")
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay")
    warmup_steps: int = Field(100, ge=0, description="linear warm-up steps of the learning rate")
    max_steps: int = Field(2000, ge=1, description="upper bound of the training steps (the cosine schedule's length); "
                           "early stopping may end sooner")
    grad_clip: float = Field(1.0, gt=0, description="gradient-norm clipping")
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0, description="label smoothing of the next-token cross-entropy")
    eval_every: int = Field(400, ge=1, description="validation (and best-step selection) every N steps and at the last")
    eval_users: int | None = Field(None, ge=1, description="validation users; a seeded subset when fewer than all")
    eval_seed: int = Field(0, description="seed of the validation subset (eval_users)")
    eval_beams: int = Field(40, ge=10, description="beam width of the validation decoding (evaluate: 2 x max(ks) = 40)")
    patience: int = Field(3, ge=1, description="evaluations without NDCG@10 improvement before stopping")
    checkpoint_every: int = Field(400, ge=1, description="resumable training state every N steps")
    state_dir: str = Field("data/06_models/sft_state", description="resumable training state (latest run)")
    device: str = Field("auto", description="auto (CUDA when present) | cpu | cuda[:n]")
    processes: int = Field(1, ge=1, description="> 1: data-parallel on that many processes launched by "
                           "Accelerate (one per GPU with CUDA, else CPU processes with gloo); the global batch is the same")
    seed: int = Field(0, description="seed of the initial weights, dropout and batch order")

    @model_validator(mode="after")
    def _parts(self) -> SftParams:
        check_processes(self.processes, self.batch_size)
        return self


class EvaluateParams(Strict):
    """`params:evaluate`: the offline evaluation of every checkpoint and of the reference rows."""

    ks: list[int] = Field(default_factory=lambda: [5, 10, 20], description="cut-offs K of HR@K and NDCG@K")
    beam_factor: int = Field(2, ge=1, description="beam width = beam_factor x max(ks) (width >= 2K: docs/architecture.md)")
    batch_size: int = Field(128, ge=1, description="users decoded per batch")
    steps: list[int] | None = Field(None, description="RL checkpoints (steps) to evaluate; null = every saved one")
    device: str = Field("auto", description="auto (CUDA when present) | cpu | cuda[:n]")
    bootstrap_resamples: int = Field(10_000, ge=100, description="resamples of the paired bootstrap over test users")
    bootstrap_seed: int = Field(0, description="seed of the paired bootstrap")
    sasrec: SasrecParams = Field(default_factory=SasrecParams, description="the `sasrec` reference retriever")
