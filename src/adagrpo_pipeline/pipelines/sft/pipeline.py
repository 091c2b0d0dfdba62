"""`sft`: train the generative policy on the SID sequences. `seeded_pipeline` trains it again
with a reference seed of `compare` (namespace `sft.seed_<seed>`)."""

from __future__ import annotations

from kedro.pipeline import Pipeline, node, pipeline

from adagrpo_pipeline.adagrpo.runs import ReferenceSpec

from . import nodes as n

INPUTS = ["train_sequences", "valid_sequences", "interactions", "semantic_ids", "sid_vocab", "sid_trie"]


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline(
        [
            node(n.train_sft_policy, [*INPUTS, "params:sft"], ["sft_policy", "sft_history", "sft_summary"],
                 name="train_sft_policy", tags="training"),
        ],
        namespace="sft",
        prefix_datasets_with_namespace=False,  # one box in kedro viz; dataset names unchanged
        tags="sft",
    )


def seeded_pipeline(ref: ReferenceSpec) -> Pipeline:
    """`<namespace>.sft_policy`, `.sft_history`, `.sft_summary` trained with `ref.seed`."""
    template = Pipeline([node(n.train_sft_policy_seed, [*INPUTS, "params:sft", "params:run"],
                              ["sft_policy", "sft_history", "sft_summary"], name="train_sft_policy", tags="training")])
    return pipeline(template, namespace=ref.namespace, inputs=set(INPUTS),
                    parameters={"params:sft": "params:sft", "params:run": f"params:runs.{ref.namespace}"}, tags="sft")
