"""`evaluate`: every saved checkpoint of the `adagrpo` run on valid and test, the SFT policy
with its per-sample diagnostics (strata), the reference rows (popularity, the ranker as a
retriever), and the report. Every input is a persisted dataset, so it re-runs alone on saved
checkpoints.

The building blocks are shared with `compare`: `checkpoint_evaluation(namespace)`,
`references()` and `report(runs, title)`."""

from __future__ import annotations

from kedro.pipeline import Pipeline, node, pipeline

from adagrpo_pipeline.reporting import Run

from . import nodes as n

P = "params:evaluate"
SHARED_INPUTS = ["test_sequences", "valid_sequences", "interactions", "semantic_ids", "sid_vocab", "sid_trie", "ranker_model",
                 "reward_calibration"]


def checkpoint_evaluation(namespace: str) -> Pipeline:
    """`<namespace>.checkpoints` -> `<namespace>.checkpoint_evaluation` and `<namespace>.test_hits`."""
    template = Pipeline([node(n.evaluate_checkpoints, ["checkpoints", *SHARED_INPUTS, P], ["checkpoint_evaluation", "test_hits"],
                              name="evaluate_checkpoints")])
    return pipeline(template, namespace=namespace, inputs=set(SHARED_INPUTS), parameters={P})


def references() -> Pipeline:
    return Pipeline([
        node(n.evaluate_sft_policy, ["sft_policy", *SHARED_INPUTS, "params:adagrpo", P], ["sft_evaluation", "sft_strata"],
             name="evaluate_sft_policy"),
        node(n.popularity_baseline, ["test_sequences", "interactions", "items", "ranker_model", "reward_calibration", P],
             "popularity_evaluation", name="popularity_baseline"),
    ])


def report(runs: list[Run], title: str) -> Pipeline:
    return Pipeline([node(n.make_report_node(runs, title), n.report_inputs(runs), n.REPORT_OUTPUTS, name="report")])


def create_pipeline(**kwargs) -> Pipeline:
    from adagrpo_pipeline.pipelines.compare.settings import compare_params

    runs = [Run("adagrpo", compare_params().seed, "adagrpo")]
    return (references() + checkpoint_evaluation("adagrpo")
            + report(runs, "AdaGRPO on this data: evaluation of the `train_adagrpo` run")).tag("evaluate")
