"""`compare`: every variant (sft_continue, grpo, mix_<α> per α, adagrpo) for every seed, with
the same data, steps and parameters, each in its own namespace `<variant>.seed_<seed>`, then
the test metrics of each and their mean ± std over seeds. It starts from the saved SFT policy
and ranker (run `train_adagrpo` or `sft` and `reward` first)."""

from __future__ import annotations

from kedro.pipeline import Pipeline, node

from adagrpo_pipeline.pipelines.adagrpo.pipeline import variant_pipeline
from adagrpo_pipeline.pipelines.evaluate.pipeline import policy_evaluation

from . import nodes as n
from .settings import compare_params, runs


def create_pipeline(**kwargs) -> Pipeline:
    plan = runs(compare_params())
    out = Pipeline([])
    for variant, seed, namespace in plan:
        out += variant_pipeline(variant, namespace, seed) + policy_evaluation(namespace)
    out += Pipeline([node(n.compare_results, [f"{ns}.evaluation" for _, _, ns in plan],
                          ["compare_runs", "compare_summary", "compare_metrics"], name="compare_results")])
    return out.tag("compare")
