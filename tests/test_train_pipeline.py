"""`train_adagrpo` (ingest → tokenize → sft → reward → adagrpo → evaluate) on tiny data, then the
partial re-runs a user makes: `evaluate` alone, and one checkpoint via `--load-versions`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import mlflow
import pandas as pd
import yaml

from conftest import TINY_SYNTHETIC, run_session

TINY_RUN = {
    "ingest": {"source": "synthetic", "synthetic": dict(TINY_SYNTHETIC)},
    "tokenize": {"levels": 2, "codebook_size": 8, "dedup_size": 16, "kmeans": {"n_init": 1}},
    "sft": {"model": {"d_model": 32, "d_kv": 8, "d_ff": 64, "num_layers": 1, "num_decoder_layers": 1, "num_heads": 4},
            "max_items": 5, "batch_size": 64, "max_steps": 30, "warmup_steps": 5, "eval_every": 15,
            "checkpoint_every": 15, "eval_users": 30, "eval_beams": 10},
    "reward": {"ranker": {"model": {"d_model": 16, "num_layers": 1, "num_heads": 2, "d_ff": 32}, "max_history": 8,
                          "batch_size": 64, "max_steps": 30, "eval_every": 10}, "report": {"negatives": 20}},
    "adagrpo": {"batch_size": 32, "max_steps": 6, "checkpoint_every": 3, "eval_every": 3, "eval_users": 20,
                "eval_beams": 10, "rollout": {"group_size": 4}, "seeds": [0, 1], "mix_alphas": [0.5]},
    "evaluate": {"ks": [5, 10], "beam_factor": 2},
}


def ran_nodes(output: str) -> set[str]:
    return set(re.findall(r"Completed node: (\S+)", output))


def kedro(project: Path, *args: str) -> str:
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true"}
    proc = subprocess.run([str(Path(sys.executable).parent / "kedro"), *args], cwd=project, env=env, capture_output=True,
                          text=True, timeout=900, stdin=subprocess.DEVNULL)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    return out


def versions(project: Path, relpath: str) -> list[Path]:
    root = project / relpath
    return [v / root.name for v in sorted(root.iterdir())]


def tiny_project(project: Path) -> None:
    (project / "conf/local/parameters_tiny.yml").write_text(yaml.safe_dump(TINY_RUN))
    run_session(project, "train_adagrpo")


def test_train_then_partial_reruns(project: Path, mlflow_db: Path) -> None:
    tiny_project(project)
    sft = versions(project, "data/06_models/sft_policy")
    assert len(sft) == 1 and {p.name for p in sft[0].iterdir()} == {"config.json", "model.safetensors"}
    series = versions(project, "data/06_models/rl/adagrpo/checkpoints")
    assert len(series) == 1 and sorted(p.name for p in series[0].iterdir()) == ["step-000003", "step-000006"]

    first = pd.read_parquet(versions(project, "data/08_reporting/evaluation_results.parquet")[-1])
    assert list(first["model"]) == ["sft", "popularity", "sasrec_ranker", "adagrpo", "adagrpo"]
    assert list(first["checkpoint"]) == ["", "", "", "final", "best"]
    final = first[first["checkpoint"] == "final"].iloc[0]
    assert final["step"] == 6 and 0 <= final["hr@10"] <= 1 and 0 <= final["reward@10"] <= 1 and 0 < final["coverage@10"] <= 1
    for col in ("hr@5", "hr@10", "ndcg@5", "ndcg@10", "hallucination@10", "constrained_hr@10", "hr@10_filtered"):
        assert first[col].dropna().between(0, 1).all(), col
        assert first.loc[first["model"].isin(["sft", "adagrpo"]), col].notna().all(), col
    ranker = first.set_index("model").loc["sasrec_ranker"]
    assert ranker["hallucination@10"] == 0 and ranker["hr@5"] <= ranker["hr@10"]

    evals = pd.read_parquet(versions(project, "data/08_reporting/rl/adagrpo/checkpoint_evaluation.parquet")[-1])
    assert sorted(zip(evals["step"], evals["split"], strict=True)) == [(3, "test"), (3, "valid"), (6, "test"), (6, "valid")]
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
                    "report_frontier.png", "MLflow run: "):
        assert section in report, section
    for plot in ("report_dynamics", "report_frontier", "report_strata"):
        assert (project / f"data/08_reporting/{plot}.png").stat().st_size > 10_000

    # 1. evaluation alone on the saved checkpoints: trains nothing, same figures
    out = kedro(project, "run", "--pipeline=evaluate")
    assert ran_nodes(out) == {"evaluate_sft_policy", "popularity_baseline", "adagrpo.evaluate_checkpoints", "report"}
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
