"""Typed parameters of the RL stage (`params:adagrpo`) and the variants (arXiv 2606.08480;
docs/architecture.md, "The algorithm")."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import Field, field_validator, model_validator

from adagrpo_pipeline.params import Strict
from adagrpo_pipeline.training.distributed import check_processes

VariantKind = Literal["sft_continue", "grpo", "mix", "mix_matched", "random_gate", "adagrpo", "uniform", "oracle_gate"]


@dataclass(frozen=True)
class Variant:
    """`sft_continue`: NLL only; `grpo`: uniform GRPO, no NLL; `mix` (alpha):
    (1 − α)·NLL + α·GRPO with c ≡ 1; `adagrpo`: NLL + λ·Σ c·L_GRPO / B with the gate c.
    The two controls of the gate, computed on the run's own rollouts batch by batch, with p =
    the share of the batch that AdaGRPO's gate admits: `random_gate`: NLL + λ·Σ c·L_GRPO / B
    with c ~ Bernoulli(p) drawn independently of the diagnostics (the same dose, chosen at
    random); `mix_matched`: NLL + λ·p·Σ L_GRPO / B (the same dose, spread over every sample).
    The controlled study's two (`adagrpo_pipeline.study`): `uniform`: NLL + λ·Σ L_GRPO / B, the
    AdaGRPO loss with c ≡ 1 (the reward term on every sample: minus `sft_continue`, its effect);
    `oracle_gate`: AdaGRPO with d_rew ranked by the true relevance instead of the ranker (the
    gate a perfect reward diagnostic would give; the GRPO reward stays the ranker's)."""

    kind: VariantKind
    alpha: float = 0.0

    @property
    def name(self) -> str:
        """Namespace-safe name: sft_continue, grpo, adagrpo, mix_0p5 (α = 0.5)."""
        return f"mix_{self.alpha:g}".replace(".", "p").replace("-", "m") if self.kind == "mix" else self.kind

    def weights(self, lam: float) -> tuple[float, float]:
        """(weight of the NLL, weight of the GRPO sum); which samples the GRPO sum admits is
        `losses.sample_weights`' rule, and `mix_matched` scales its GRPO weight by the batch's
        admitted share there."""
        if self.kind == "sft_continue":
            return 1.0, 0.0
        if self.kind == "grpo":
            return 0.0, 1.0
        if self.kind == "mix":
            return 1.0 - self.alpha, self.alpha
        return 1.0, lam


def variants(mix_alphas: list[float]) -> list[Variant]:
    """The compared set: sft_continue, grpo, one fixed mix per α, the matched-dose mix, the
    random gate, adagrpo."""
    return [Variant("sft_continue"), Variant("grpo"), *(Variant("mix", float(a)) for a in mix_alphas),
            Variant("mix_matched"), Variant("random_gate"), Variant("adagrpo")]


class RolloutParams(Strict):
    group_size: int = Field(8, ge=2, description="G candidates per sample")
    mode: Literal["sample", "beam"] = "sample"
    temperature: float = Field(1.0, gt=0, description="sampling temperature (mode sample)")
    constrained: bool = Field(False, description="restrict rollouts to valid items with the trie")


class AdaGrpoParams(Strict):
    """`params:adagrpo`: the RL stage, shared by every run; the plan of runs is `seed` (main
    run), `seeds` and `mix_alphas` (`compare`), see `adagrpo.runs`."""

    rollout: RolloutParams = RolloutParams()
    lam: float = Field(1.0, ge=0, description="λ: weight of the gated GRPO term (adagrpo)")
    k_pol: int = Field(1, ge=0, description="policy diagnostic passes when d_pol > k_pol")
    k_rew: int = Field(2, ge=1, description="reward diagnostic passes when d_rew <= k_rew")
    clip_eps: float = Field(0.2, gt=0, lt=1, description="ε_clip: the ratio π_θ/π_old is clipped to [1 − ε, 1 + ε]")
    beta: float = Field(0.04, ge=0, description="weight of the k3 KL to the SFT policy")
    adv_eps: float = Field(1e-6, gt=0, description="ε of the group-normalised advantages (r − mean) / (std + ε)")
    inner_steps: int = Field(1, ge=1, description="grpo_inner_steps: updates per rollout batch")
    batch_size: int = Field(256, ge=1, description="training samples per step (each with G rollouts)")
    lr: float = Field(1e-4, gt=0, description="AdamW peak learning rate")
    warmup_steps: int = Field(20, ge=0, description="linear warm-up of the learning rate from 0 (fresh Adam moments)")
    lr_schedule: Literal["constant", "cosine"] = Field("cosine", description="after warm-up: constant, or cosine decay to 0 at max_steps")
    dropout: bool = Field(True, description="the NLL term with the policy's dropout on, as in SFT (GRPO, KL and diagnostics without)")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay")
    grad_clip: float = Field(1.0, gt=0, description="gradient-norm clipping")
    max_steps: int = Field(100, ge=1, description="RL steps of every run")
    checkpoint_every: int = Field(25, ge=1, description="a checkpoint (and resumable state) every N steps")
    eval_every: int = Field(25, ge=1, description="validation metrics every N steps")
    eval_users: int | None = Field(300, ge=1, description="validation users (a subset drawn with eval_seed); null = all")
    eval_seed: int = Field(0, description="seed of the validation subset: the same users for every run and seed")
    eval_beams: int = Field(20, ge=10, description="beam width of the validation decoding")
    state_dir: str = Field("data/06_models/adagrpo_state", description="resumable state, one folder per namespace")
    device: str = Field("auto", description="auto | cpu | cuda[:n]")
    processes: int = Field(1, ge=1, description="> 1: data-parallel on that many processes launched by "
                           "Accelerate (one per GPU with CUDA, else CPU processes with gloo); the global batch is the same")
    seed: int = Field(0, description="seed of the main run (`adagrpo` namespace) and of the SFT strata's rollouts")
    mix_alphas: list[float] = Field(default_factory=lambda: [0.5], description="α of the mix_<α> variants in `compare`")
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=1, description="seeds of `compare`")
    reference_seeds: list[int] = Field(default_factory=list, description="seeds with which `compare` trains the SFT "
                                       "policy and `sasrec` again (their spread over seeds); [] = none")

    @field_validator("seeds", "reference_seeds")
    @classmethod
    def _distinct_seeds(cls, seeds: list[int]) -> list[int]:
        if len(set(seeds)) != len(seeds) or (seeds and min(seeds) < 0):
            raise ValueError(f"seeds must be distinct and >= 0 (each is a run's namespace seed_<seed>), got {seeds}")
        return seeds

    @field_validator("mix_alphas")
    @classmethod
    def _distinct_alphas(cls, alphas: list[float]) -> list[float]:
        names = [Variant("mix", a).name for a in alphas]
        if len(set(names)) != len(names) or any(not 0.0 <= a <= 1.0 for a in alphas):
            raise ValueError(f"mix_alphas must be distinct and in [0, 1] (each is a variant mix_<α>), got {alphas}")
        return alphas

    @model_validator(mode="after")
    def _parts(self) -> AdaGrpoParams:
        check_processes(self.processes, self.batch_size)
        return self
