"""End-to-end: the commands a user types, as subprocesses in a throw-away project."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

from conftest import TINY_SYNTHETIC, derived_files

KEDRO = str(Path(sys.executable).parent / "kedro")


def _kedro(project: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true"}
    return subprocess.run([KEDRO, *args], cwd=project, env=env, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL, check=False)


def _synthetic_params() -> str:
    return ",".join(["ingest.source=synthetic", *(f"ingest.synthetic.{k}={v}" for k, v in TINY_SYNTHETIC.items())])


def test_kedro_run_ingest_synthetic(project: Path) -> None:
    proc = _kedro(project, "run", "--pipeline=ingest", "--params", _synthetic_params())
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
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
    proc = _kedro(project, "run", "--pipeline=ingest", "--params",
                  "ingest.source=events,ingest.events.interactions_path=data/01_raw/events/interactions.csv,"
                  "ingest.events.items_path=data/01_raw/events/items.csv")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "table 'raw_interactions' failed 1 expectation(s)" in out
    assert "expect_column_values_to_be_between(column='timestamp'" in out
    assert derived_files(project) == []


def test_kedro_viz_build_exports_every_stage(project: Path) -> None:
    proc = _kedro(project, "viz", "build")
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    graph = json.loads((project / "build/api/main").read_text())
    names = {n["name"] for n in graph["nodes"]}
    # kedro-viz names a namespaced node by its short name and lists its namespace
    tasks = {(n["name"], tuple(n.get("modular_pipelines") or ())[-1:]) for n in graph["nodes"] if n["type"] == "task"}
    from adagrpo_pipeline.pipelines.train_adagrpo.pipeline import STAGES

    expected = {(n.name.rsplit(".", 1)[-1], (n.namespace,) if n.namespace else ()) for stage in STAGES
                for n in stage.create_pipeline().nodes}
    assert expected <= tasks, expected - tasks
    datasets = {"interactions", "impressions", "items", "train_sequences", "valid_sequences", "test_sequences",
                "exposure_lorenz_plot", "item_embeddings", "semantic_ids", "sid_vocab", "sid_trie", "tokenizer_report",
                "sft_policy", "ranker_model", "reward_calibration", "ranker_reliability_plot", "adagrpo.policy",
                "adagrpo.checkpoints", "adagrpo.training_history", "evaluation_results"}
    assert datasets <= names, datasets - names
    assert {"validate_raw_items", "validate_raw_interactions", "validate_raw_impressions",
            "validate_derived_tables", "validate_semantic_ids"} <= {n["name"] for n in graph["nodes"] if "validation" in n.get("tags", [])}
    assert set(graph["layers"]) >= {"primary", "feature", "model_input", "models", "reporting"}
    assert {"ingest", "tokenize", "sft", "reward", "adagrpo", "evaluate", "train_adagrpo", "compare",
            "__default__"} <= {p["id"] for p in graph["pipelines"]}
