"""`reward`: train the ranker on impressions, calibrate it, report on it, measure how well the
reward separates the true item from the SFT policy's rollouts (before any RL), and score it as a
full-catalog retriever (a reference row of `evaluate`)."""

from __future__ import annotations

from kedro.pipeline import Pipeline, node, pipeline

from . import nodes as n

P = "params:reward"
TABLES = ["impressions", "interactions", "items", "valid_sequences", "test_sequences"]


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline(
        [
            node(n.train_reward_ranker, [*TABLES, "users", "item_embeddings", P], ["ranker_model", "ranker_history"],
                 name="train_reward_ranker",
                 tags="training"),
            node(n.calibrate_reward, ["ranker_model", *TABLES, P], "reward_calibration", name="calibrate_reward"),
            node(n.report_reward, ["ranker_model", "reward_calibration", *TABLES, "ground_truth_relevance", P],
                 ["ranker_report", "ranker_relevance_by_decile", "ranker_reliability_plot", "reward_metrics"],
                 name="report_reward"),
            node(n.measure_reward_informativeness,
                 ["sft_policy", "ranker_model", "reward_calibration", "valid_sequences", "interactions", "items",
                  "semantic_ids", "sid_vocab", "sid_trie", P, "params:adagrpo"],
                 ["reward_informativeness", "reward_informativeness_metrics"], name="measure_reward_informativeness"),
            node(n.ranker_retrieval, ["ranker_model", "reward_calibration", "test_sequences", "interactions", P, "params:evaluate"],
                 ["ranker_evaluation", "ranker_test_hits"], name="ranker_retrieval"),
        ],
        namespace="reward",
        prefix_datasets_with_namespace=False,  # one box in kedro viz; dataset names unchanged
        tags="reward",
    )
