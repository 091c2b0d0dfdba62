"""Which RL runs exist: the plan of variants × seeds, decided in one place.

`RunPlan.from_params(AdaGrpoParams)` gives
- `main`: the `adagrpo` variant with `adagrpo.seed`, namespace `adagrpo` (the main job, the
  `adagrpo` and `evaluate` pipelines);
- `compare`: every variant of `adagrpo.mix_alphas` for every seed of `adagrpo.seeds`,
  namespace `<variant>.seed_<seed>` (the `compare` pipeline);
- `tune`: one run spec per variant of `compare` (namespace `tune.<variant>`, seed
  `adagrpo.seed`): the trials of `kedro run --pipeline=tune`;
- `references`: the SFT policy and the `sasrec` retriever trained again with every seed of
  `adagrpo.reference_seeds` (none by default: ~7 minutes a seed on 2 CPU cores), namespaces
  `sft.seed_<seed>` and `sasrec.seed_<seed>` (`compare`'s reference rows get a spread over seeds;
  the RL runs start from the main `sft_policy`).

The Kedro project builds its pipelines from the plan of the run's own configuration (`--env`
and `--params` included, see `adagrpo_pipeline.context`) and hands every run its `RunSpec` as
the parameter `params:runs.<namespace>`, so variant and seed are visible in the catalog, in
`kedro viz` and in MLflow.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .config import AdaGrpoParams, Variant, VariantKind, variants

MAIN_NAMESPACE = "adagrpo"


class RunSpec(BaseModel):
    """One RL run: a variant trained with one seed, in its own namespace."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    namespace: str = Field(description="Kedro namespace of the run's nodes and datasets")
    kind: VariantKind
    alpha: float = Field(0.0, description="α of a mix variant")
    seed: int = Field(description="seed of the RL stage: batch order, rollouts")

    @property
    def variant(self) -> Variant:
        return Variant(self.kind, self.alpha)

    @classmethod
    def of(cls, variant: Variant, seed: int, namespace: str) -> RunSpec:
        return cls(namespace=namespace, kind=variant.kind, alpha=variant.alpha, seed=seed)


ReferenceModel = Literal["sft", "sasrec"]


class ReferenceSpec(BaseModel):
    """A reference model (the SFT policy or the `sasrec` retriever) trained with one seed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    namespace: str = Field(description="Kedro namespace of its nodes and datasets")
    model: ReferenceModel
    seed: int = Field(description="seed of its training: initial weights, dropout, batch order")


@dataclass(frozen=True)
class RunPlan:
    main: RunSpec
    compare: tuple[RunSpec, ...]
    references: tuple[ReferenceSpec, ...]
    tune: tuple[RunSpec, ...]  # one per variant of `compare`, namespace tune.<variant>, AdaGRPO first

    @classmethod
    def from_params(cls, params: AdaGrpoParams) -> RunPlan:
        main = RunSpec.of(Variant("adagrpo"), params.seed, MAIN_NAMESPACE)
        compare = tuple(RunSpec.of(v, s, f"{v.name}.seed_{s}") for s in params.seeds for v in variants(params.mix_alphas))
        references = tuple(ReferenceSpec(namespace=f"{m}.seed_{s}", model=m, seed=s)
                           for m in ("sft", "sasrec") for s in params.reference_seeds)
        kinds = variants(params.mix_alphas)
        tune = tuple(RunSpec.of(v, params.seed, f"tune.{v.name}")
                     for v in sorted(kinds, key=lambda v: v.kind != "adagrpo"))  # the controls need AdaGRPO's gate
        return cls(main, compare, references, tune)

    def parameters(self) -> dict[str, RunSpec | ReferenceSpec]:
        """{namespace: spec} of every run and reference: the `runs` parameter block."""
        return {r.namespace: r for r in (self.main, *self.compare, *self.references, *self.tune)}
