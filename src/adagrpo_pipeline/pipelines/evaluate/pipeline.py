"""`evaluate`: every saved checkpoint of each run on valid and test (in the run's namespace,
beside its training), and in the `evaluate` box the SFT policy with its per-sample diagnostics
(strata), popularity, and the report over the runs. Every input is a persisted dataset, so it
re-runs alone on saved checkpoints."""

from __future__ import annotations

from collections.abc import Sequence

from kedro.pipeline import Pipeline, node, pipeline

from adagrpo_pipeline.adagrpo.runs import RunSpec

from . import nodes as n

P, R = "params:evaluate", "params:reward"
SHARED_INPUTS = ["test_sequences", "valid_sequences", "interactions", "semantic_ids", "sid_vocab", "sid_trie", "ranker_model",
                 "reward_calibration"]


def checkpoint_evaluation(run: RunSpec) -> Pipeline:
    """`<namespace>.checkpoints` -> `<namespace>.checkpoint_evaluation` and `<namespace>.test_hits`."""
    template = Pipeline([node(n.evaluate_checkpoints, ["checkpoints", *SHARED_INPUTS, R, P],
                              ["checkpoint_evaluation", "test_hits"], name="evaluate_checkpoints")])
    return pipeline(template, namespace=run.namespace, inputs=set(SHARED_INPUTS), parameters={P: P, R: R})


def references_and_report(runs: Sequence[RunSpec]) -> Pipeline:
    return pipeline([
        node(n.evaluate_sft_policy, ["sft_policy", *SHARED_INPUTS, R, "params:adagrpo", P], ["sft_evaluation", "sft_strata"],
             name="evaluate_sft_policy"),
        node(n.popularity_baseline, ["test_sequences", "interactions", "items", "ranker_model", "reward_calibration", R, P],
             "popularity_evaluation", name="popularity_baseline"),
        node(n.report, n.report_inputs(list(runs)), n.REPORT_OUTPUTS, name="report"),
    ], namespace="evaluate", prefix_datasets_with_namespace=False)


def create_pipeline(runs: Sequence[RunSpec]) -> Pipeline:
    per_run = sum((checkpoint_evaluation(r) for r in runs), Pipeline([]))
    return (per_run + references_and_report(runs)).tag("evaluate")
