"""`params:study` and the plan it gives: bias levels × information levels, the RL runs of each,
and every stage's parameters per setting (docs/architecture.md, "The controlled study").

Settings: one simulated log per exposure-bias level (`bias_levels`: the logging policy's weight
of log-popularity, `exposure_gamma`), hence one ingest, one tokenizer and one SFT policy per level
(namespace `study.<level>`); per level, one ranker per information level (`information`: the
noise of the latent user/item vectors the ranker sees, null = none of them), namespace
`study.<level>.<information>`.

Runs per level (each `RunSpec`, seed `study.seed`):
- `study.<level>.sft_continue` (NLL only: no reward term),
- `study.<level>.oracle.uniform` (the reward term on every sample with the oracle reward);
per level and information:
- `grpo`, `mix_matched`, `random_gate`, `adagrpo`, `oracle_gate`, `uniform`, all with that
  ranker's reward (`oracle_gate`: the oracle decides d_rew, the ranker still gives the reward).

The study's stage parameters are the project's (`params:ingest`, `params:sft`, …) with the
study's overrides deep-merged, plus a state folder per setting: the derived block
`study_settings` (see `adagrpo_pipeline.context`), read by the namespaced nodes.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from adagrpo_pipeline.adagrpo.config import Variant
from adagrpo_pipeline.adagrpo.runs import RunSpec
from adagrpo_pipeline.params import Strict

NAMESPACE = "study"
ORACLE = "oracle"
LEVEL_VARIANTS = ("sft_continue",)  # per bias level, reward-free
ORACLE_VARIANTS = ("uniform",)  # per bias level, with the oracle reward
RANKER_VARIANTS = ("grpo", "mix_matched", "random_gate", "adagrpo", "oracle_gate", "uniform")
NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class BiasLevel(Strict):
    name: str = Field(description="namespace-safe name, e.g. none, mild, strong")
    exposure_gamma: float = Field(ge=0.0, description="weight of log-popularity in the simulator's logging policy")


class InformationLevel(Strict):
    name: str = Field(description="namespace-safe name, e.g. policy_only, latent")
    attribute_noise: float | None = Field(description="std of the Gaussian noise on the latent vectors the ranker sees, "
                                          "relative to each coordinate's std; null = the ranker sees no latent vector")


class StudyEvaluate(Strict):
    beams: int = Field(40, ge=10, description="unconstrained beam width of the test lists (2 x 10 + room for history items)")
    batch_size: int = Field(256, ge=1)
    bootstrap_resamples: int = Field(10_000, ge=100)
    bootstrap_seed: int = 0
    device: str = "auto"


DEFAULT_SYNTHETIC = {"n_users": 3000, "n_items": 800, "n_categories": 12, "n_brands": 30, "dim": 16, "requests_per_user": 30,
                     "slate_size": 10, "popularity_zipf": 1.0, "personalization": 2.0, "policy_noise": 1.0, "drift": 0.1,
                     "click_pull": 0.2, "click_scale": 4.0, "click_bias": -2.0, "position_eta": 1.0, "seed": 0}
DEFAULT_OVERRIDES = {
    "ingest": {"exposure_thresholds": {
        "gini_exposure": {"warn": 0.6, "fail": 1.0, "direction": "max"},
        "top10pct_share_exposure": {"warn": 0.5, "fail": 1.0, "direction": "max"},
        "top1pct_share_exposure": {"warn": 0.2, "fail": 1.0, "direction": "max"},
        "catalog_coverage": {"warn": 0.8, "fail": 0.0, "direction": "min"}}},
    "sft": {"max_steps": 1200, "eval_every": 300, "checkpoint_every": 300, "eval_users": 1000},
    "reward": {"ranker": {"max_steps": 400, "eval_every": 100, "checkpoint_every": 100, "patience": 2},
               "informativeness": {"resamples": 2000}},
    "adagrpo": {"max_steps": 40, "checkpoint_every": 20, "eval_every": 20, "eval_users": 1000},
}


class StudyParams(Strict):
    """`params:study` (conf/base/parameters_study.yml, whose values are these defaults)."""

    synthetic: dict[str, Any] = Field(default_factory=lambda: copy.deepcopy(DEFAULT_SYNTHETIC),
                                      description="simulator parameters (SyntheticParams) shared by every level; "
                                      "exposure_gamma comes from each level")
    bias_levels: list[BiasLevel] = Field(default_factory=lambda: [
        BiasLevel(name="none", exposure_gamma=0.0), BiasLevel(name="mild", exposure_gamma=1.0),
        BiasLevel(name="strong", exposure_gamma=2.0)], min_length=1)
    information: list[InformationLevel] = Field(default_factory=lambda: [
        InformationLevel(name="policy_only", attribute_noise=None), InformationLevel(name="latent", attribute_noise=0.5)],
        min_length=1)
    only_levels: list[str] | None = Field(None, description="run these bias levels only (e.g. --params "
                                          "'study.only_levels=[strong]'); null = all")
    attribute_seed: int = Field(0, description="seed of the noise on the latent vectors")
    seed: int = Field(0, description="seed of every RL run")
    overrides: dict[Literal["ingest", "tokenize", "sft", "reward", "adagrpo"], dict[str, Any]] = Field(
        default_factory=lambda: copy.deepcopy(DEFAULT_OVERRIDES),
        description="deep-merged into the project's stage parameters for the study")
    evaluate: StudyEvaluate = StudyEvaluate()
    state_dir: str = Field("data/06_models/study_state", description="resumable training state, one folder per setting")

    @model_validator(mode="after")
    def _names(self) -> StudyParams:
        for kind, names in (("bias_levels", [b.name for b in self.bias_levels]),
                            ("information", [i.name for i in self.information])):
            bad = [n for n in names if not NAME.match(n) or n == ORACLE]
            if bad or len(set(names)) != len(names):
                raise ValueError(f"study.{kind} names must be distinct, lower-case identifiers other than "
                                 f"'{ORACLE}' (they are Kedro namespaces), got {names}")
        known = {b.name for b in self.bias_levels}
        unknown = sorted(set(self.only_levels or ()) - known)
        if unknown:
            raise ValueError(f"study.only_levels names unknown bias level(s) {unknown}; the levels are {sorted(known)}")
        if "exposure_gamma" in self.synthetic:
            raise ValueError("study.synthetic.exposure_gamma is set per level (study.bias_levels), not shared")
        return self

    @property
    def levels(self) -> list[BiasLevel]:
        return [b for b in self.bias_levels if self.only_levels is None or b.name in self.only_levels]


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in update.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


@dataclass(frozen=True)
class StudyRun:
    """One RL run of the study: its level, its reward source (an information level's ranker or
    the oracle) and its spec."""

    level: str
    reward: str  # an information level's name, or ORACLE
    spec: RunSpec

    @property
    def variant(self) -> str:
        return self.spec.variant.name


def setting(level: str, reward: str | None = None) -> str:
    """Namespace of a level (`study.<level>`) or of a level's ranker (`study.<level>.<reward>`)."""
    return f"{NAMESPACE}.{level}" if reward is None else f"{NAMESPACE}.{level}.{reward}"


@dataclass(frozen=True)
class StudyPlan:
    params: StudyParams
    runs: tuple[StudyRun, ...]

    @classmethod
    def from_params(cls, p: StudyParams) -> StudyPlan:
        runs = []
        for b in p.levels:
            def add(reward: str, kind: str, namespace: str) -> None:
                runs.append(StudyRun(b.name, reward, RunSpec.of(Variant(kind), p.seed, namespace)))
            for kind in LEVEL_VARIANTS:
                add(ORACLE, kind, f"{setting(b.name)}.{kind}")  # reward-free: the oracle only rewards its logs
            for kind in ORACLE_VARIANTS:
                add(ORACLE, kind, f"{setting(b.name, ORACLE)}.{kind}")
            for info in p.information:
                for kind in RANKER_VARIANTS:
                    add(info.name, kind, f"{setting(b.name, info.name)}.{kind}")
        return cls(p, tuple(runs))

    def stage_settings(self, parameters: dict[str, Any]) -> dict[str, Any]:
        """The derived `study_settings` block: every stage's parameters per setting, from the
        project's raw parameters with the study's overrides and state folders, validated into
        each stage's model (so a bad override fails here, naming the setting, before any node)."""
        p = self.params
        state = p.state_dir.rstrip("/")

        def stage(name: str, where: str, update: dict[str, Any] | None = None) -> BaseModel:
            raw = deep_merge(deep_merge(parameters.get(name, {}), p.overrides.get(name, {})), update or {})
            try:
                return _stage_models()[name].model_validate(raw)
            except ValueError as err:
                raise ValueError(f"study: the parameters study_settings.{where} (the project's with study.overrides) "
                                 f"do not validate:\n{err}") from err

        out: dict[str, Any] = {"tokenize": stage("tokenize", "tokenize"),
                               "adagrpo": stage("adagrpo", "adagrpo", {"state_dir": f"{state}/rl"})}
        for b in p.levels:
            synthetic = {**p.synthetic, "exposure_gamma": b.exposure_gamma, "latent_attributes": True}
            level: dict[str, Any] = {
                "ingest": stage("ingest", f"{b.name}.ingest", {"source": "synthetic", "synthetic": synthetic}),
                "sft": stage("sft", f"{b.name}.sft", {"state_dir": f"{state}/{b.name}/sft"}),
            }
            for info in [*p.information, None]:
                name = ORACLE if info is None else info.name
                level[name] = {"reward": stage("reward", f"{b.name}.{name}.reward",
                                               {"ranker": {"state_dir": f"{state}/{b.name}/{name}/ranker"}}),
                               "attribute_noise": None if info is None else info.attribute_noise}
            out[b.name] = level
        return out

    def run_parameters(self) -> dict[str, RunSpec]:
        return {r.spec.namespace: r.spec for r in self.runs}


def _stage_models() -> dict[str, type[BaseModel]]:
    """Each stage's parameter model (imported here: the stage libraries import this package's
    neighbours, not the other way round)."""
    from adagrpo_pipeline.adagrpo.config import AdaGrpoParams
    from adagrpo_pipeline.policy.config import SftParams
    from adagrpo_pipeline.recdata.config import IngestParams
    from adagrpo_pipeline.reward.config import RewardParams
    from adagrpo_pipeline.semantic_ids.config import TokenizeParams

    return {"ingest": IngestParams, "sft": SftParams, "reward": RewardParams, "tokenize": TokenizeParams,
            "adagrpo": AdaGrpoParams}
