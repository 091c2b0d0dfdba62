"""Typed parameters of the `reward` stage (`params:reward`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from adagrpo_pipeline.params import Strict
from adagrpo_pipeline.sasrec.config import SASRecSize
from adagrpo_pipeline.training.distributed import check_processes


class RankerFeatures(Strict):
    """What the ranker sees besides the history (`adagrpo_pipeline.reward.features`); all off =
    the plain SASRec ranker."""

    users: bool = Field(True, description="user attributes of the `users` table (e.g. age, gender, occupation, zip)")
    items: bool = Field(True, description="item attribute columns of the `items` table (e.g. genres, year)")
    text: bool = Field(True, description="the item embedding of `tokenize` (text and co-occurrence)")
    position: bool = Field(True, description="a position bias learnt in training, left out at scoring time")
    user_columns: list[str] | None = Field(None, description="user attribute columns; null = all")
    item_columns: list[str] | None = Field(None, description="item attribute columns; null = all but title and text")
    buckets: int = Field(8, ge=2, description="quantile buckets of a numeric attribute")
    max_categories: int = Field(50, ge=1, description="most frequent values of a text attribute kept (others share a code)")
    prefix: dict[str, int] = Field(default_factory=lambda: {"zip_code": 1},
                                   description="columns coded by their first N characters (zip code -> region)")

    @property
    def any(self) -> bool:
        return self.users or self.items or self.text or self.position


class RankerTrainParams(Strict):
    model: SASRecSize = SASRecSize()
    features: RankerFeatures = RankerFeatures()
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
    processes: int = Field(1, ge=1, description="> 1: data-parallel on that many processes launched by "
                           "Accelerate (one per GPU with CUDA, else CPU processes with gloo); the global batch is the same")
    seed: int = 0

    @model_validator(mode="after")
    def _parts(self) -> RankerTrainParams:
        check_processes(self.processes, self.batch_size)
        if self.processes > 1 and self.state_dir is None:
            raise ValueError("processes > 1 needs a state_dir: the launched processes hand their result over through it")
        return self


CalibrationMethod = Literal["platt", "temperature", "isotonic"]


class CalibrationParams(Strict):
    methods: list[CalibrationMethod] = Field(default_factory=lambda: ["platt", "temperature", "isotonic"])
    select_fraction: float = Field(0.5, gt=0, lt=1, description="share of validation users held out to choose the method")
    seed: int = 0


class RewardReportParams(Strict):
    ece_bins: int = Field(15, ge=2)
    negatives: int = Field(100, ge=1, description="negatives per test user for the exposure-bias AUCs")
    seed: int = 0


class InformativenessParams(Strict):
    random_draws: int = Field(50, ge=1, description="draws of the random reward whose pass rate is the chance level")
    resamples: int = Field(10_000, ge=100, description="bootstrap resamples of the CIs over samples")
    batch_size: int = Field(256, ge=1, description="samples per rollout batch")


class RewardParams(Strict):
    ranker: RankerTrainParams = RankerTrainParams()
    calibration: CalibrationParams = CalibrationParams()
    report: RewardReportParams = RewardReportParams()
    informativeness: InformativenessParams = InformativenessParams()
    invalid_reward: float = Field(0.0, description="reward of a candidate that names no item")
    seen_item_reward: float | Literal["invalid", "ranker"] = Field(
        "invalid", description="reward of a candidate already in the sample's history: 'invalid' = invalid_reward "
        "(where items are not consumed twice, e.g. MovieLens), 'ranker' = scored like any item, or a number")
    batch_size: int = Field(512, ge=1, description="histories per batch when scoring")
