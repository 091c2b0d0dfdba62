"""`compare`: every variant (sft_continue, grpo, mix_<α> per α, adagrpo) for every seed, with
the same data, steps and parameters, each in its own namespace `<variant>.seed_<seed>`; every
checkpoint of every run evaluated; the references; and one report with mean ± std over seeds.
It starts from the saved SFT policy and ranker (run `train_adagrpo`, or `sft` and `reward`,
first)."""

from __future__ import annotations

from kedro.pipeline import Pipeline

from adagrpo_pipeline.pipelines.adagrpo.pipeline import variant_pipeline
from adagrpo_pipeline.pipelines.evaluate.pipeline import checkpoint_evaluation, references, report
from adagrpo_pipeline.reporting import Run

from .settings import compare_params, runs


def create_pipeline(**kwargs) -> Pipeline:
    plan = runs(compare_params())
    out = references()
    for variant, seed, namespace in plan:
        out += variant_pipeline(variant, namespace, seed) + checkpoint_evaluation(namespace)
    seeds = sorted({s for _, s, _ in plan})
    out += report([Run(v.name, s, ns) for v, s, ns in plan],
                  f"AdaGRPO vs its baselines: {len({v.name for v, _, _ in plan})} variants x {len(seeds)} seeds {seeds}")
    return out.tag("compare")
