"""`adagrpo`: the RL stage for the `adagrpo` variant, in the `adagrpo` namespace.

`variant_pipeline` is the template every variant (and seed) is instantiated from, as a Kedro
namespace: its datasets are `<namespace>.policy` (final checkpoint), `<namespace>.checkpoints`
(every `checkpoint_every` steps) and `<namespace>.training_history` (see the catalog's
dataset factories)."""

from __future__ import annotations

from kedro.pipeline import Pipeline, node, pipeline

from adagrpo_pipeline.adagrpo.config import Variant

from .nodes import make_train_node

SHARED_INPUTS = ["sft_policy", "ranker_model", "reward_calibration", "train_sequences", "valid_sequences", "interactions",
                 "semantic_ids", "sid_vocab", "sid_trie"]


def variant_pipeline(variant: Variant, namespace: str, seed: int | None = None) -> Pipeline:
    template = Pipeline([
        node(make_train_node(variant, namespace, seed), [*SHARED_INPUTS, "params:adagrpo"],
             ["policy", "checkpoints", "training_history"], name="train_policy", tags="training"),
    ])
    return pipeline(template, namespace=namespace, inputs=set(SHARED_INPUTS), parameters={"params:adagrpo"},
                    tags=["rl", variant.name])


def create_pipeline(**kwargs) -> Pipeline:
    return variant_pipeline(Variant("adagrpo"), "adagrpo")
