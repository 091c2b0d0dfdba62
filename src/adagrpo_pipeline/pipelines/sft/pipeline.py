"""`sft`: train the generative policy on the SID sequences."""

from __future__ import annotations

from kedro.pipeline import Pipeline, node, pipeline

from . import nodes as n


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline(
        [
            node(n.train_sft_policy,
                 ["train_sequences", "valid_sequences", "interactions", "semantic_ids", "sid_vocab", "sid_trie", "params:sft"],
                 ["sft_policy", "sft_history", "sft_summary"], name="train_sft_policy", tags="training"),
        ],
        namespace="sft",
        prefix_datasets_with_namespace=False,  # one box in kedro viz; dataset names unchanged
        tags="sft",
    )
