"""Thin Kedro glue for `tokenize`; the work is in `adagrpo_pipeline.semantic_ids`."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure

from adagrpo_pipeline.recdata.prepare import drop_held_out
from adagrpo_pipeline.recdata.validation import semantic_ids_suite
from adagrpo_pipeline.semantic_ids.config import TokenizeParams
from adagrpo_pipeline.semantic_ids.embeddings import (
    combine_embeddings,
    cooccurrence_embeddings,
    encode_texts,
)
from adagrpo_pipeline.semantic_ids.quantize import (
    add_dedup_level,
    residual_kmeans,
    rq_vae,
)
from adagrpo_pipeline.semantic_ids.report import (
    plot_code_usage,
    report_metrics,
    tokenizer_report,
)
from adagrpo_pipeline.semantic_ids.trie import SidTrie
from adagrpo_pipeline.semantic_ids.vocab import SidVocab
from adagrpo_pipeline.tracking import metrics_payload

log = logging.getLogger(__name__)


def _level_sizes(params: TokenizeParams) -> list[int]:
    return [params.codebook_size] * params.levels + [params.dedup_codebook_size]


def embed_items(items: pd.DataFrame, interactions: pd.DataFrame, params: TokenizeParams) -> dict[str, torch.Tensor]:
    """Item embeddings, one row per item id (0..n-1)."""
    e, c = params.embedding, params.embedding.cooccurrence
    parts = {}
    if e.source in ("text", "hybrid"):
        parts["text"] = encode_texts(items["text"].tolist(), e.text.model, e.text.batch_size, e.text.max_length, e.text.device)
    if e.source in ("cooccurrence", "hybrid"):
        parts["cooccurrence"] = cooccurrence_embeddings(drop_held_out(interactions), len(items), c.dim, c.window, c.seed)
    emb = parts[e.source] if e.source in parts else combine_embeddings(parts["text"], parts["cooccurrence"], e.text_weight)
    return {"item_id": torch.tensor(items["item_id"].to_numpy(np.int64)), "embeddings": torch.as_tensor(emb)}


def quantize_items(item_embeddings: dict[str, torch.Tensor], params: TokenizeParams) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Semantic codes (with the dedup level) and the tokenizer report table."""
    x = item_embeddings["embeddings"].numpy()
    if params.method == "rq_kmeans":
        k = params.kmeans
        q = residual_kmeans(x, params.levels, params.codebook_size, params.seed, k.n_init, k.max_iter, k.balanced, k.balanced_iters)
    else:
        r = params.rq_vae
        q = rq_vae(x, params.levels, params.codebook_size, r.latent_dim, r.hidden_dims, r.epochs, r.batch_size, r.lr,
                   r.beta, r.dead_code_reset, params.seed, r.device)
    full = add_dedup_level(q.codes, params.dedup_codebook_size)
    report = tokenizer_report(q.codes, full, _level_sizes(params), q.residual_error)
    semantic_ids = pd.DataFrame({
        "item_id": item_embeddings["item_id"].numpy(),
        "codes": list(full.astype(np.int16)),
    })
    return semantic_ids, report


def validate_semantic_ids(semantic_ids: pd.DataFrame, items: pd.DataFrame, params: TokenizeParams) -> pd.DataFrame:
    """Great Expectations gate: one unique, in-range code tuple per catalog item."""
    semantic_ids_suite(semantic_ids, len(items), _level_sizes(params)).validate()
    return semantic_ids


def build_sid_vocab(params: TokenizeParams) -> dict[str, Any]:
    return SidVocab(level_sizes=tuple(_level_sizes(params))).to_json()


def build_sid_trie(semantic_ids: pd.DataFrame, sid_vocab: dict[str, Any]) -> dict[str, torch.Tensor]:
    vocab = SidVocab.from_json(sid_vocab)
    tokens = vocab.encode(np.stack(semantic_ids["codes"].to_numpy()).astype(np.int64))
    trie = SidTrie.build(tokens, semantic_ids["item_id"].to_numpy(), vocab.size)
    log.info("sid_trie: %d nodes, %d edges, %d items, vocab %d", len(trie.leaf_item), len(trie.edge_keys), trie.n_items, vocab.size)
    return trie.to_tensors()


def report_tokenizer(report: pd.DataFrame, semantic_ids: pd.DataFrame, params: TokenizeParams) -> tuple[pd.DataFrame, Figure, dict[str, Any]]:
    metrics = report_metrics(report)
    log.info(
        "tokenizer report (%s, %d x %d + dedup %d): collision_rate=%.4f utilisation=%s items_per_prefix_max=%s "
        "items_per_prefix_mean=%s reconstruction_error=%s",
        params.method, params.levels, params.codebook_size, params.dedup_codebook_size, metrics["collision_rate"],
        [round(metrics[f"codebook_utilisation_l{i}"], 3) for i in range(1, params.levels + 2)],
        [int(metrics[f"items_per_prefix_max_l{i}"]) for i in range(1, params.levels + 2)],
        [round(metrics[f"items_per_prefix_mean_l{i}"], 2) for i in range(1, params.levels + 2)],
        [round(metrics[f"reconstruction_error_l{i}"], 4) for i in range(1, params.levels + 1)],
    )
    codes = np.stack(semantic_ids["codes"].to_numpy()).astype(np.int64)
    return report, plot_code_usage(codes, _level_sizes(params)), metrics_payload(metrics)
