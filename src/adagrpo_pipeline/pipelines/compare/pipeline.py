"""`compare`: every run of the plan's `compare` list (each variant of `adagrpo.mix_alphas` for
every seed of `adagrpo.seeds`), with the same data, steps and parameters, each in its own
namespace `<variant>.seed_<seed>`: its training, the evaluation of every checkpoint; the SFT
policy and the `sasrec` retriever trained again with every seed (`sft.seed_<seed>`,
`sasrec.seed_<seed>`: the spread of the reference rows and their paired difference); then the
references and one report with mean ± std over seeds and paired CIs. Every run trains with its
variant's settings from `tuned_settings`: run `train_adagrpo` (or `sft` and `reward`), then
`tune`, first."""

from __future__ import annotations

from collections.abc import Sequence

from kedro.pipeline import Pipeline

from adagrpo_pipeline.adagrpo.runs import ReferenceSpec, RunSpec
from adagrpo_pipeline.pipelines import adagrpo, evaluate, sft


def create_pipeline(runs: Sequence[RunSpec], references: Sequence[ReferenceSpec] = ()) -> Pipeline:
    sft_seeds = sum((sft.seeded_pipeline(r) for r in references if r.model == "sft"), Pipeline([]))
    return (adagrpo.create_pipeline(runs, tuned=True) + sft_seeds
            + evaluate.create_pipeline(runs, references, tuned=True)).tag("compare")
