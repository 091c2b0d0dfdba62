"""End-to-end: the commands a user types, as subprocesses in a throw-away project."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from conftest import TINY_SYNTHETIC, derived_files, kedro

pytestmark = pytest.mark.slow


def _synthetic_params() -> str:
    return ",".join(["ingest.source=synthetic", *(f"ingest.synthetic.{k}={v}" for k, v in TINY_SYNTHETIC.items())])


def test_kedro_run_ingest_synthetic(project: Path) -> None:
    out = kedro(project, "run", "--pipeline=ingest", "--params", _synthetic_params())
    assert "ingest summary (synthetic): users=60 " in out
    assert "Pipeline execution completed successfully" in out
    versions = list((project / "data/05_model_input/train_sequences.parquet").iterdir())
    assert len(versions) == 1
    train = pd.read_parquet(versions[0] / "train_sequences.parquet")
    assert len(train) > 1000 and train["history"].map(len).min() == 1


def test_kedro_run_bad_input_exits_non_zero_with_the_reason(project: Path) -> None:
    (project / "data/01_raw/events").mkdir()
    (project / "data/01_raw/events/interactions.csv").write_text("user_id,item_id,timestamp\n1,2,-7\n1,3,100\n")
    (project / "data/01_raw/events/items.csv").write_text("item_id,title\n2,a\n3,b\n")
    out = kedro(project, "run", "--pipeline=ingest", "--params",
                "ingest.source=events,ingest.events.interactions_path=data/01_raw/events/interactions.csv,"
                "ingest.events.items_path=data/01_raw/events/items.csv", check=False)
    assert "table 'raw_interactions' (read from 'data/01_raw/events/interactions.csv') failed 1 expectation(s)" in out
    assert "expect_column_values_to_be_between(column='timestamp'" in out
    assert "examples (by file line):" in out and "\n      2 " in out  # the bad row is line 2 of the file
    assert derived_files(project) == []


def test_kedro_viz_build_shows_each_stage_as_one_modular_pipeline(project: Path) -> None:
    kedro(project, "viz", "build")
    graph = json.loads((project / "build/api/main").read_text())
    stages = {"ingest", "tokenize", "sft", "reward", "adagrpo", "evaluate"}
    # the main job's graph: one collapsible box per stage at the top level, every task inside one
    assert set(graph["modular_pipelines"]) == {"__root__", *stages}
    root = graph["modular_pipelines"]["__root__"]["children"]
    assert {c["id"] for c in root if c["type"] == "modularPipeline"} == stages
    assert not [c for c in root if c["type"] == "task"]
    tasks = {n["full_name"]: n["modular_pipelines"] for n in graph["nodes"] if n["type"] == "task"}
    assert all(len(mp) == 1 and mp[0] in stages and name.startswith(mp[0] + ".") for name, mp in tasks.items())
    assert {"ingest.load_raw_source", "tokenize.quantize_items", "sft.train_sft_policy", "reward.train_reward_ranker",
            "adagrpo.train_policy", "adagrpo.evaluate_checkpoints", "evaluate.report"} <= set(tasks)
    # dataset names are what users know (not prefixed by the stage), layers and validation tags kept
    names = {n["name"] for n in graph["nodes"]}
    datasets = {"interactions", "impressions", "items", "train_sequences", "valid_sequences", "test_sequences",
                "exposure_lorenz_plot", "item_embeddings", "semantic_ids", "sid_vocab", "sid_trie", "tokenizer_report",
                "sft_policy", "ranker_model", "reward_calibration", "ranker_reliability_plot", "adagrpo.policy",
                "adagrpo.checkpoints", "adagrpo.training_history", "evaluation_results", "params:runs.adagrpo"}
    assert datasets <= names, datasets - names
    assert {"validate_raw_tables",
            "validate_derived_tables", "validate_semantic_ids"} <= {n["name"] for n in graph["nodes"] if "validation" in n.get("tags", [])}
    assert set(graph["layers"]) >= {"primary", "feature", "model_input", "models", "reporting"}
    assert {"ingest", "tokenize", "sft", "reward", "adagrpo", "evaluate", "train_adagrpo", "compare",
            "__default__"} <= {p["id"] for p in graph["pipelines"]}
    # the run's variant and seed are a parameter of its node, with its value
    train = next(n for n in graph["nodes"] if n.get("full_name") == "adagrpo.train_policy")
    assert train["parameters"]["runs.adagrpo"] == {"namespace": "adagrpo", "kind": "adagrpo", "alpha": 0.0, "seed": 0}
