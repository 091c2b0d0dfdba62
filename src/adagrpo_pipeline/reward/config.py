"""Typed parameters of the `reward` stage (`params:reward`)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from adagrpo_pipeline.sasrec.config import SASRecSize


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RankerTrainParams(_Strict):
    model: SASRecSize = SASRecSize()
    max_history: int = Field(20, ge=1, description="history items the ranker reads (most recent)")
    batch_size: int = Field(256, ge=1, description="requests (slates) per step")
    lr: float = Field(3e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    max_steps: int = Field(1000, ge=1)
    grad_clip: float = Field(1.0, gt=0)
    eval_every: int = Field(100, ge=1, description="validation AUC every N steps")
    patience: int = Field(3, ge=1, description="evaluations without AUC improvement before stopping")
    checkpoint_every: int = Field(100, ge=1, description="resumable training state every N steps")
    state_dir: str | None = Field("data/06_models/ranker_state",
                                  description="resumable training state (latest run); null = keep nothing on disk")
    device: str = "auto"
    seed: int = 0


CalibrationMethod = Literal["platt", "temperature", "isotonic"]


class CalibrationParams(_Strict):
    methods: list[CalibrationMethod] = Field(default_factory=lambda: ["platt", "temperature", "isotonic"])
    select_fraction: float = Field(0.5, gt=0, lt=1, description="share of validation users held out to choose the method")
    seed: int = 0


class RewardReportParams(_Strict):
    ece_bins: int = Field(15, ge=2)
    negatives: int = Field(100, ge=1, description="negatives per test user for the exposure-bias AUCs")
    seed: int = 0


class InformativenessParams(_Strict):
    random_draws: int = Field(50, ge=1, description="draws of the random reward whose pass rate is the chance level")
    resamples: int = Field(10_000, ge=100, description="bootstrap resamples of the CIs over samples")
    batch_size: int = Field(256, ge=1, description="samples per rollout batch")


class RewardParams(_Strict):
    ranker: RankerTrainParams = RankerTrainParams()
    calibration: CalibrationParams = CalibrationParams()
    report: RewardReportParams = RewardReportParams()
    informativeness: InformativenessParams = InformativenessParams()
    invalid_reward: float = Field(0.0, description="reward of a candidate that names no item")
    seen_item_reward: float | Literal["invalid", "ranker"] = Field(
        "invalid", description="reward of a candidate already in the sample's history: 'invalid' = invalid_reward "
        "(where items are not consumed twice, e.g. MovieLens), 'ranker' = scored like any item, or a number")
    batch_size: int = Field(512, ge=1, description="histories per batch when scoring")
