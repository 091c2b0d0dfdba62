"""`evaluate`: test metrics of the saved SFT and AdaGRPO checkpoints beside the reference rows
(popularity, the ranker as a retriever). Every input is a persisted dataset, so it re-runs
alone on saved checkpoints."""

from __future__ import annotations

from kedro.pipeline import Pipeline, node, pipeline

from . import nodes as n

P = "params:evaluate"
SHARED_INPUTS = ["test_sequences", "interactions", "semantic_ids", "sid_vocab", "sid_trie", "ranker_model", "reward_calibration"]


def policy_evaluation(namespace: str) -> Pipeline:
    """`<namespace>.policy` -> `<namespace>.evaluation` (test metrics of the final checkpoint)."""
    template = Pipeline([node(n.evaluate_checkpoint, ["policy", *SHARED_INPUTS, P], "evaluation", name="evaluate_policy")])
    return pipeline(template, namespace=namespace, inputs=set(SHARED_INPUTS), parameters={P})


def create_pipeline(**kwargs) -> Pipeline:
    core = pipeline([
        node(n.evaluate_checkpoint, ["sft_policy", *SHARED_INPUTS, P], "sft_evaluation", name="evaluate_sft_policy"),
        node(n.popularity_baseline, ["test_sequences", "interactions", "items", "ranker_model", "reward_calibration", P],
             "popularity_evaluation", name="popularity_baseline"),
        node(n.evaluation_report, ["sft_evaluation", "adagrpo.evaluation", "popularity_evaluation", "ranker_evaluation"],
             ["evaluation_results", "evaluation_results_md", "evaluation_metrics"], name="evaluation_report"),
    ])
    return (core + policy_evaluation("adagrpo")).tag("evaluate")
