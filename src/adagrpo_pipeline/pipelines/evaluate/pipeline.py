"""`evaluate`: metrics of the saved policy checkpoint beside the popularity baseline. Every
input is a persisted dataset, so it re-runs alone on saved checkpoints."""

from __future__ import annotations

from kedro.pipeline import Pipeline, node, pipeline

from . import nodes as n

P = "params:evaluate"


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline(
        [
            node(n.evaluate_sft_policy,
                 ["sft_policy", "test_sequences", "interactions", "semantic_ids", "sid_vocab", "sid_trie", P],
                 "sft_evaluation", name="evaluate_sft_policy"),
            node(n.popularity_baseline, ["test_sequences", "interactions", "items", P], "popularity_evaluation",
                 name="popularity_baseline"),
            node(n.evaluation_report, ["sft_evaluation", "popularity_evaluation"],
                 ["evaluation_results", "evaluation_results_md", "evaluation_metrics"], name="evaluation_report"),
        ],
        tags="evaluate",
    )
