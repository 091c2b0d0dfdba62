"""`adagrpo`: the RL stage, one namespace per run of the plan (`adagrpo_pipeline.adagrpo.runs`).

Each run is the template below instantiated in the run's namespace: its datasets are
`<namespace>.policy` (final checkpoint), `<namespace>.checkpoints` (every `checkpoint_every`
steps) and `<namespace>.training_history` (see the catalog's dataset factories), and its
variant and seed arrive as the parameter `params:runs.<namespace>`."""

from __future__ import annotations

from collections.abc import Sequence

from kedro.pipeline import Pipeline, node, pipeline

from adagrpo_pipeline.adagrpo.runs import RunSpec

from .nodes import train_policy

SHARED_INPUTS = ["sft_policy", "ranker_model", "reward_calibration", "train_sequences", "valid_sequences", "interactions",
                 "semantic_ids", "sid_vocab", "sid_trie"]


def run_pipeline(run: RunSpec, tuned: bool = False) -> Pipeline:
    """One run; `tuned`: with the variant's settings from `tuned_settings` (the `tune` pipeline's)."""
    extra = ["tuned_settings"] if tuned else []
    template = Pipeline([
        node(train_policy, [*SHARED_INPUTS, "params:adagrpo", "params:reward", "params:run", *extra],
             ["policy", "checkpoints", "training_history"], name="train_policy", tags="training"),
    ])
    return pipeline(template, namespace=run.namespace, inputs={*SHARED_INPUTS, *extra},
                    parameters={"params:adagrpo": "params:adagrpo", "params:reward": "params:reward",
                                "params:run": f"params:runs.{run.namespace}"},
                    tags=["rl", run.variant.name])


def create_pipeline(runs: Sequence[RunSpec], tuned: bool = False) -> Pipeline:
    return sum((run_pipeline(r, tuned) for r in runs), Pipeline([]))
