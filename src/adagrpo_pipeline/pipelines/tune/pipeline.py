"""`tune`: every variant of `compare` gets the same number of trials on the valid split
(`adagrpo_pipeline.adagrpo.tuning`); AdaGRPO first, since its controls inherit its gate's k_pol
and k_rew. The chosen settings are the versioned dataset `tuned_settings` that `compare` reads."""

from __future__ import annotations

from collections.abc import Sequence

from kedro.pipeline import Pipeline, node, pipeline

from adagrpo_pipeline.adagrpo.runs import RunSpec
from adagrpo_pipeline.pipelines.adagrpo.pipeline import SHARED_INPUTS

from . import nodes as n

CONTROLS = ("random_gate", "mix_matched")


def create_pipeline(runs: Sequence[RunSpec]) -> Pipeline:
    """One tuning node per variant (`runs`: one `RunSpec` each, namespace `tune.<variant>`)."""
    nodes = []
    for run in runs:
        name = run.variant.name
        inputs = [*SHARED_INPUTS, "params:adagrpo", "params:reward", "params:tune", f"params:runs.{run.namespace}"]
        if run.kind in CONTROLS:
            inputs.append("tuned_adagrpo")
        nodes.append(node(n.tune_run_variant, inputs, f"tuned_{name}", name=f"tune_{name}", tags=["training", name]))
    per_variant = {f"v{i}": f"tuned_{r.variant.name}" for i, r in enumerate(runs)}
    nodes.append(node(n.choose_settings, {"tune_params": "params:tune", "params": "params:adagrpo", **per_variant},
                      ["tuned_settings", "tuning_trials", "tuning_plot", "tuning_metrics"], name="choose_settings"))
    return pipeline(nodes, namespace="tune", prefix_datasets_with_namespace=False, tags="tune")
