"""`ingest`: read → validate raw → prepare → validate derived + measure exposure → publish → report."""

from __future__ import annotations

from kedro.pipeline import Pipeline, node, pipeline

from . import nodes as n

P = "params:ingest"


def create_pipeline(**kwargs) -> Pipeline:
    unchecked = {name: f"{name}_unchecked" for name in n.DERIVED}
    return pipeline(
        [
            node(n.load_raw_source, P,
                 ["raw_interactions", "raw_items", "raw_impressions", "raw_relevance", "raw_users", "raw_source_files"],
                 name="load_raw_source"),
            node(n.validate_raw_tables, ["raw_items", "raw_interactions", "raw_impressions", "raw_source_files", P],
                 ["validated_raw_items", "validated_raw_interactions", "validated_raw_impressions"],
                 name="validate_raw_tables", tags="validation"),
            node(n.prepare_tables,
                 ["validated_raw_interactions", "validated_raw_items", "validated_raw_impressions", "raw_relevance",
                  "raw_users", P],
                 unchecked, name="prepare_tables"),
            node(n.validate_derived_tables,
                 [unchecked[k] for k in ("interactions", "impressions", "items", "train_sequences", "valid_sequences",
                                         "test_sequences", "ground_truth_relevance", "users")] + [P],
                 "derived_validation", name="validate_derived_tables", tags="validation"),
            node(n.measure_exposure,
                 [unchecked["impressions"], unchecked["interactions"], unchecked["items"], P],
                 ["exposure_by_item_unchecked", "exposure_metrics_unchecked"], name="measure_exposure"),
            node(n.publish_ingest_tables,
                 {"validation": "derived_validation", "exposure_by_item": "exposure_by_item_unchecked",
                  "exposure_metrics": "exposure_metrics_unchecked", **unchecked},
                 {name: name for name in (*n.DERIVED, "exposure_by_item", "exposure_metrics", "ingest_validation_report")},
                 name="publish_ingest_tables"),
            node(n.report_exposure,
                 ["exposure_by_item", "exposure_metrics", "interactions", "items", "train_sequences", "impressions", P],
                 ["exposure_ctr_by_decile", "exposure_lorenz_plot", "exposure_ctr_plot", "ingest_metrics"],
                 name="report_exposure"),
        ],
        namespace="ingest",
        prefix_datasets_with_namespace=False,  # one box in kedro viz; dataset names unchanged
        tags="ingest",
    )
