"""`evaluate`: every saved checkpoint of each run on valid and test (in the run's namespace,
beside its training), and in the `evaluate` box the reference rows — the SFT policy with its
per-sample diagnostics (strata), popularity, the `sasrec` retriever (trained here, its best
step chosen on valid) — and the report over the runs. Every input is a persisted dataset, so it
re-runs alone on saved checkpoints."""

from __future__ import annotations

from collections.abc import Sequence

from kedro.pipeline import Pipeline, node, pipeline

from adagrpo_pipeline.adagrpo.runs import ReferenceSpec, RunSpec

from . import nodes as n

P, R = "params:evaluate", "params:reward"
SHARED_INPUTS = ["test_sequences", "valid_sequences", "interactions", "semantic_ids", "sid_vocab", "sid_trie", "ranker_model",
                 "reward_calibration"]


def checkpoint_evaluation(run: RunSpec) -> Pipeline:
    """`<namespace>.checkpoints` -> `<namespace>.checkpoint_evaluation` and `<namespace>.test_hits`."""
    template = Pipeline([node(n.evaluate_checkpoints, ["checkpoints", *SHARED_INPUTS, R, P],
                              ["checkpoint_evaluation", "test_hits"], name="evaluate_checkpoints")])
    return pipeline(template, namespace=run.namespace, inputs=set(SHARED_INPUTS), parameters={P: P, R: R})


def seeded_reference(ref: ReferenceSpec) -> Pipeline:
    """A reference model trained with one of `compare`'s seeds: `<namespace>.evaluation` (its test
    row) and `<namespace>.hits`; the SFT policy comes from `sft.seeded_pipeline`, `sasrec` is
    trained here."""
    if ref.model == "sft":
        template = Pipeline([node(n.evaluate_sft_reference, ["sft_policy", *SHARED_INPUTS, R, P, "params:run"],
                                  ["evaluation", "hits"], name="evaluate_sft_policy")])
    else:
        template = Pipeline([
            node(n.train_sasrec_seed, ["interactions", "valid_sequences", "items", P, "params:run"],
                 ["sasrec_model", "sasrec_history"], name="train_sasrec_baseline", tags="training"),
            node(n.sasrec_reference, ["sasrec_model", "test_sequences", "interactions", "ranker_model",
                                      "reward_calibration", R, P, "params:run"], ["evaluation", "hits"],
                 name="sasrec_baseline"),
        ])
    return pipeline(template, namespace=ref.namespace, inputs=set(template.inputs()) & {*SHARED_INPUTS, "items"},
                    parameters={P: P, R: R, "params:run": f"params:runs.{ref.namespace}"})


def references_and_report(runs: Sequence[RunSpec], references: Sequence[ReferenceSpec] = (), tuned: bool = False) -> Pipeline:
    """The reference rows and the report node, which is given the runs' and seeded references'
    namespaces here (`nodes.ReportNode`) rather than reading them from its inputs' names."""
    report = n.ReportNode(tuple(r.namespace for r in runs), tuple(r.namespace for r in references), tuned)
    return pipeline([
        node(n.evaluate_sft_policy, ["sft_policy", *SHARED_INPUTS, R, "params:adagrpo", P], ["sft_evaluation", "sft_strata"],
             name="evaluate_sft_policy"),
        node(n.popularity_baseline, ["test_sequences", "interactions", "items", "ranker_model", "reward_calibration", R, P],
             ["popularity_evaluation", "popularity_test_hits"], name="popularity_baseline"),
        node(n.train_sasrec_baseline, ["interactions", "valid_sequences", "items", P], ["sasrec_model", "sasrec_history"],
             name="train_sasrec_baseline", tags="training"),
        node(n.sasrec_baseline, ["sasrec_model", "test_sequences", "interactions", "ranker_model", "reward_calibration", R, P],
             ["sasrec_evaluation", "sasrec_test_hits"], name="sasrec_baseline"),
        node(report.report, report.inputs(), n.REPORT_OUTPUTS, name="report"),
    ], namespace="evaluate", prefix_datasets_with_namespace=False)


def create_pipeline(runs: Sequence[RunSpec], references: Sequence[ReferenceSpec] = (), tuned: bool = False) -> Pipeline:
    """Each run's checkpoints, each seeded reference, and the references and report over them
    (`tuned`: the report also shows the tuned settings the runs trained with)."""
    per_run = sum((checkpoint_evaluation(r) for r in runs), Pipeline([]))
    seeded = sum((seeded_reference(r) for r in references), Pipeline([]))
    return (per_run + seeded + references_and_report(runs, references, tuned)).tag("evaluate")
