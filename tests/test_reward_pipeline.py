"""The `reward` pipeline in a real Kedro session on tiny synthetic data (it has ground truth)."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from conftest import TINY_RUN, run_session, versions

pytestmark = pytest.mark.slow

TINY_REWARD = {"reward": {"ranker": {"model": {"d_model": 16, "num_layers": 1, "num_heads": 2, "d_ff": 32},
                                     "max_history": 8, "batch_size": 64, "max_steps": 40, "eval_every": 10},
                          "report": {"negatives": 20}}}


TINY_UPSTREAM = {k: TINY_RUN[k] for k in ("tokenize", "sft", "adagrpo")}


def test_reward_pipeline_on_synthetic(project: Path, tiny_synthetic_params, mlflow_db) -> None:
    run_session(project, params=tiny_synthetic_params)
    for stage in ("tokenize", "sft"):  # the informativeness report reads the SFT policy's rollouts
        run_session(project, stage, params={**tiny_synthetic_params, **TINY_UPSTREAM})
    run_session(project, "reward", params={**TINY_UPSTREAM, **TINY_REWARD})

    ckpt = versions(project, "data/06_models/ranker_model")[-1]
    assert sorted(p.name for p in ckpt.iterdir()) == ["config.json", "model.safetensors"]
    config = json.loads((ckpt / "config.json").read_text())
    assert config["kind"] == "feature_ranker" and config["requests"]["valid"] > 0 and config["requests"]["train"] > 0
    # the simulator's items carry category, brand and price; its users no attributes
    assert sorted(config["features"]["items"]) == ["brand", "category", "price"] and config["features"]["users"] == {}
    assert config["features"]["text_dim"] > 0
    history = pd.read_parquet(versions(project, "data/08_reporting/ranker_history.parquet")[-1])
    assert list(history["step"]) == [10, 20, 30, 40][: len(history)] and config["best_step"] in set(history["step"])

    cal = json.loads(versions(project, "data/06_models/reward_calibration.json")[-1].read_text())
    assert set(cal["candidates"]) == {"platt", "temperature", "isotonic"}
    assert cal["chosen"]["method"] == min(cal["candidates"], key=lambda m: cal["candidates"][m]["select_logloss"])

    report = pd.read_parquet(versions(project, "data/08_reporting/ranker_report.parquet")[-1])
    values = {(r.calibration, r.metric): r.value for r in report.itertuples()}
    for stage in ("raw", "calibrated"):
        assert 0 <= values[(stage, "ece")] <= 1 and values[(stage, "logloss")] > 0
    assert 0 <= values[("raw", "auc_exposure_negatives")] <= 1 and 0 <= values[("raw", "auc_uniform_negatives")] <= 1

    deciles = pd.read_parquet(versions(project, "data/08_reporting/ranker_relevance_by_decile.parquet")[-1])
    assert list(deciles["popularity_decile"]) == ["all", *map(str, range(1, 11))]
    assert (deciles["pairs"] > 0).all() and deciles["spearman"].between(-1, 1).all()

    retrieval = pd.read_parquet(versions(project, "data/08_reporting/ranker_evaluation.parquet")[-1]).iloc[0]
    assert retrieval["model"] == "ranker_as_retriever" and retrieval["hallucination@10"] == 0
    assert retrieval["hr@5"] <= retrieval["hr@10"] <= retrieval["hr@20"] and 0 < retrieval["coverage@10"] <= 1

    assert (project / "data/08_reporting/ranker_reliability.png").stat().st_size > 10_000
    mlflow.set_tracking_uri(f"sqlite:///{mlflow_db}")
    run = mlflow.search_runs(experiment_names=["adagrpo_pipeline"], order_by=["start_time DESC"]).iloc[0]
    assert run["tags.mlflow.runName"] == "reward"
    assert run["metrics.reward_metrics.calibrated_ece"] == values[("calibrated", "ece")]
    assert run["metrics.ranker.valid_auc"] == history["valid_auc"].iloc[-1]
    info = json.loads(versions(project, "data/08_reporting/reward_informativeness.json")[-1].read_text())["figures"]
    assert run["metrics.reward_informativeness_metrics.auc_target_vs_rollouts"] == pytest.approx(info["auc_target_vs_rollouts"])
