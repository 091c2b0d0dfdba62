"""`train_adagrpo` (ingest → tokenize → sft → reward → adagrpo → evaluate) on tiny data in a real
Kedro session, then the partial re-runs a user makes: `evaluate` alone, and one checkpoint via
`--load-versions`."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from conftest import kedro, ran_nodes, run_session, versions, write_tiny_conf

pytestmark = pytest.mark.slow

EVALUATE_NODES = {"evaluate.evaluate_sft_policy", "evaluate.popularity_baseline", "evaluate.train_sasrec_baseline",
                  "evaluate.sasrec_baseline", "adagrpo.evaluate_checkpoints",
                  "evaluate.report"}


def tiny_project(project: Path) -> None:
    """The main job (plain `kedro run`: the default pipeline) on tiny data."""
    write_tiny_conf(project)
    run_session(project, None)


def test_train_then_partial_reruns(project: Path, mlflow_db: Path) -> None:
    tiny_project(project)
    mlflow.set_tracking_uri(f"sqlite:///{mlflow_db}")
    main = mlflow.search_runs(experiment_names=["adagrpo_pipeline"], order_by=["start_time DESC"]).iloc[0]
    assert main["tags.mlflow.runName"] == "train_adagrpo"  # plain `kedro run` is named after the default pipeline
    assert main["params.runs.adagrpo.seed"] == "0" and main["params.runs.adagrpo.kind"] == "adagrpo"
    sft = versions(project, "data/06_models/sft_policy")
    assert len(sft) == 1 and {p.name for p in sft[0].iterdir()} == {"config.json", "model.safetensors"}
    series = versions(project, "data/06_models/rl/adagrpo/checkpoints")
    steps = ["step-000000", "step-000003", "step-000006"]
    assert len(series) == 1 and sorted(p.name for p in series[0].iterdir() if p.is_dir()) == steps
    assert json.loads((series[0] / "series.json").read_text()) == {"names": steps}  # written last: the complete list

    first = pd.read_parquet(versions(project, "data/08_reporting/evaluation_results.parquet")[-1])
    assert list(first["model"]) == ["sft", "popularity", "sasrec", "ranker_as_retriever", "adagrpo", "adagrpo"]
    assert list(first["checkpoint"]) == ["", "", "", "", "final", "best"]
    final = first[first["checkpoint"] == "final"].iloc[0]
    assert final["step"] == 6 and 0 <= final["hr@10"] <= 1 and 0 <= final["reward@10"] <= 1 and 0 < final["coverage@10"] <= 1
    for col in ("hr@5", "hr@10", "ndcg@5", "ndcg@10", "hallucination@10", "constrained_hr@10", "hr@10_filtered"):
        assert first[col].dropna().between(0, 1).all(), col
        assert first.loc[first["model"].isin(["sft", "adagrpo"]), col].notna().all(), col
    ranker = first.set_index("model").loc["ranker_as_retriever"]
    assert ranker["hallucination@10"] == 0 and ranker["hr@5"] <= ranker["hr@10"]

    evals = pd.read_parquet(versions(project, "data/08_reporting/rl/adagrpo/checkpoint_evaluation.parquet")[-1])
    assert sorted(zip(evals["step"], evals["split"], strict=True)) == [
        (0, "test"), (0, "valid"), (3, "test"), (3, "valid"), (6, "test"), (6, "valid")]  # step 0 = the SFT policy
    sft_row = first.set_index("model").loc["sft"]
    step0 = evals[(evals["step"] == 0) & (evals["split"] == "test")].iloc[0]
    assert step0["hr@10"] == sft_row["hr@10"] and step0["hr@10_filtered"] == sft_row["hr@10_filtered"]
    best = first[first["checkpoint"] == "best"].iloc[0]
    valid = evals[evals["split"] == "valid"].sort_values("step")
    assert best["step"] == valid.loc[valid["ndcg@10_filtered"].idxmax(), "step"]  # chosen on valid, reported on test
    history = pd.read_parquet(versions(project, "data/08_reporting/rl/adagrpo/training_history.parquet")[-1])
    assert list(history["step"]) == list(range(7))  # step 0 = the SFT policy's validation metrics
    for col in ("nll", "grpo_loss", "kl", "reward_mean", "reward_std", "admitted", "pass_pol", "pass_rew", "invalid_share",
                "valid_hr@10", "valid_hallucination@10", "valid_reward@10"):
        assert col in history, col
    strata = pd.read_parquet(versions(project, "data/07_model_output/sft_strata.parquet")[-1])
    assert len(strata) == 60 and (strata["admitted"] == (strata["pass_pol"] & strata["pass_rew"])).all()

    report = (project / "data/08_reporting/report.md").read_text()
    for section in ("## Variants (mean ± std over seeds)", "## Reference rows", "## Strata", "## Configuration",
                    "## Paired differences", "## Reward informativeness", "report_frontier.png", "MLflow run: "):
        assert section in report, section
    for plot in ("report_dynamics", "report_frontier", "report_strata"):
        assert (project / f"data/08_reporting/{plot}.png").stat().st_size > 10_000

    # 1. evaluation alone on the saved checkpoints: trains nothing, same figures
    out = kedro(project, "run", "--pipeline=evaluate")
    assert ran_nodes(out) == EVALUATE_NODES
    assert len(versions(project, "data/06_models/rl/adagrpo/checkpoints")) == 1
    second = pd.read_parquet(versions(project, "data/08_reporting/evaluation_results.parquet")[-1])
    pd.testing.assert_frame_equal(first, second)
    mlflow.set_tracking_uri(f"sqlite:///{mlflow_db}")
    run = mlflow.search_runs(experiment_names=["adagrpo_pipeline"], filter_string="tags.mlflow.runName = 'evaluate'",
                             order_by=["start_time DESC"]).iloc[0]
    curve = mlflow.MlflowClient().get_metric_history(run["run_id"], "adagrpo.test.hr_at_10")
    assert {m.step: m.value for m in curve} == dict(zip(evals.loc[evals["split"] == "test", "step"],
                                                       evals.loc[evals["split"] == "test", "hr@10"], strict=True))
    assert run["metrics.evaluation_metrics.adagrpo.final.hr_at_10_mean"] == final["hr@10"]

    # 2. one checkpoint of a given run: --load-versions picks the run, evaluate.steps the step
    version = series[0].parent.name
    out = kedro(project, "run", "--pipeline=evaluate", "--nodes=adagrpo.evaluate_checkpoints",
                f"--load-versions=adagrpo.checkpoints:{version}", "--params=evaluate.steps=[3]")
    assert ran_nodes(out) == {"adagrpo.evaluate_checkpoints"}
    one = pd.read_parquet(versions(project, "data/08_reporting/rl/adagrpo/checkpoint_evaluation.parquet")[-1])
    assert set(one["step"]) == {3}
    pd.testing.assert_frame_equal(one.reset_index(drop=True), evals[evals["step"] == 3].reset_index(drop=True))
