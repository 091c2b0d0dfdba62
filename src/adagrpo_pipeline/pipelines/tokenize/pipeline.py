"""`tokenize`: embed items → quantise → validate → vocab + trie → report."""

from __future__ import annotations

from kedro.pipeline import Pipeline, node, pipeline

from . import nodes as n

P = "params:tokenize"


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline(
        [
            node(n.embed_items, ["items", "interactions", P], "item_embeddings", name="embed_items"),
            node(n.quantize_items, ["item_embeddings", P], ["semantic_ids_unchecked", "tokenizer_report_table"],
                 name="quantize_items"),
            node(n.validate_semantic_ids, ["semantic_ids_unchecked", "items", P], "semantic_ids",
                 name="validate_semantic_ids", tags="validation"),
            node(n.build_sid_vocab, P, "sid_vocab", name="build_sid_vocab"),
            node(n.build_sid_trie, ["semantic_ids", "sid_vocab"], "sid_trie", name="build_sid_trie"),
            node(n.report_tokenizer, ["tokenizer_report_table", "semantic_ids", P],
                 ["tokenizer_report", "tokenizer_code_usage_plot", "tokenizer_metrics"], name="report_tokenizer"),
        ],
        namespace="tokenize",
        prefix_datasets_with_namespace=False,  # one box in kedro viz; dataset names unchanged
        tags="tokenize",
    )
