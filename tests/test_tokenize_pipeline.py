"""The `tokenize` pipeline in real Kedro sessions on ingest's output."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch

from adagrpo_pipeline.datasets import SafetensorsDataset
from adagrpo_pipeline.semantic_ids.trie import SidTrie
from adagrpo_pipeline.semantic_ids.vocab import SidVocab

from conftest import run_session, versions

pytestmark = pytest.mark.slow

TOKENIZE = {"tokenize": {"levels": 2, "codebook_size": 8, "dedup_size": 16, "kmeans": {"n_init": 2}}}


def test_tokenize_after_ingest(project: Path, tiny_synthetic_params, mlflow_db) -> None:
    run_session(project, params=tiny_synthetic_params)
    run_session(project, "tokenize", params=TOKENIZE)
    run_session(project, "tokenize", params=TOKENIZE)

    items = pd.read_parquet(versions(project, "data/03_primary/items.parquet")[-1])
    first, second = (pd.read_parquet(p) for p in versions(project, "data/04_feature/semantic_ids.parquet"))
    codes = np.stack(first["codes"].to_numpy())
    assert codes.dtype == np.int16 and codes.shape == (len(items), 3)
    assert first["item_id"].tolist() == items["item_id"].tolist()
    assert len(np.unique(codes, axis=0)) == len(items)  # every item has its own tuple
    assert np.array_equal(codes, np.stack(second["codes"].to_numpy()))  # same seed, same codes

    vocab = SidVocab.from_json(json.loads(versions(project, "data/04_feature/sid_vocab.json")[-1].read_text()))
    assert vocab.level_sizes == (8, 8, 16) and vocab.size == 3 + 32
    trie = SidTrie.from_tensors(SafetensorsDataset(filepath=str(versions(project, "data/04_feature/sid_trie.safetensors")[-1])).load())
    tokens = torch.as_tensor(vocab.encode(codes.astype(np.int64)))
    assert trie.lookup(tokens).tolist() == first["item_id"].tolist()

    emb = SafetensorsDataset(filepath=str(versions(project, "data/04_feature/item_embeddings.safetensors")[-1])).load()
    assert emb["embeddings"].shape == (len(items), 384 + 64)  # default hybrid: MiniLM 384 + co-occurrence 64
    np.testing.assert_allclose(emb["embeddings"].norm(dim=1).numpy(), 1.0, atol=1e-5)

    report = pd.read_parquet(versions(project, "data/08_reporting/tokenizer_report.parquet")[-1])
    collision = report.query("metric == 'collision_rate'")["value"].item()
    assert 0 <= collision < 1
    mlflow.set_tracking_uri(f"sqlite:///{mlflow_db}")
    run = mlflow.search_runs(experiment_names=["adagrpo_pipeline"], order_by=["start_time DESC"]).iloc[0]
    assert run["tags.mlflow.runName"] == "tokenize" and run["params.tokenize.codebook_size"] == "8"
    assert run["metrics.tokenizer_metrics.collision_rate"] == collision
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run["run_id"], "tokenize")}
    assert artifacts == {"tokenize/tokenizer_code_usage.png"}
