"""`train_adagrpo` (ingest → tokenize → sft → reward → adagrpo → evaluate) on tiny data, then `evaluate` alone."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

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
                "eval_beams": 10, "rollout": {"group_size": 4}},
    "evaluate": {"ks": [5, 10], "beam_factor": 2},
}


def _ran_nodes(output: str) -> set[str]:
    return set(re.findall(r"Completed node: (\S+)", output))


def test_train_then_evaluate_alone(project: Path) -> None:
    (project / "conf/local/parameters_tiny.yml").write_text(yaml.safe_dump(TINY_RUN))
    run_session(project, "train_adagrpo")
    ckpts = sorted((project / "data/06_models/sft_policy").iterdir())
    assert len(ckpts) == 1 and {p.name for p in (ckpts[0] / "sft_policy").iterdir()} == {"config.json", "model.safetensors"}
    first = pd.read_parquet(next((project / "data/08_reporting/evaluation_results.parquet").glob("*/*.parquet")))
    assert list(first["model"]) == ["sft", "adagrpo", "popularity", "sasrec_ranker"]
    row = first.set_index("model").loc["sft"]
    assert 0 <= row["hr@10"] <= 1 and 0 <= row["hallucination@10"] <= 1 and row["hr@5"] <= row["hr@10"]
    md = (project / "data/08_reporting/evaluation_results.md").read_text()
    assert "| hr@10 " in md and "popularity" in md
    rl = first.set_index("model").loc["adagrpo"]
    assert rl["step"] == 6 and 0 <= rl["hr@10"] <= 1 and 0 <= rl["reward@10"] <= 1 and 0 < rl["coverage@10"] <= 1
    series = next((project / "data/06_models/rl/adagrpo/checkpoints").glob("*/checkpoints"))
    assert sorted(p.name for p in series.iterdir()) == ["step-000003", "step-000006"]
    history = pd.read_parquet(next((project / "data/08_reporting/rl/adagrpo/training_history.parquet").glob("*/*.parquet")))
    assert list(history["step"]) == list(range(7))  # step 0 = the SFT policy's validation metrics
    for col in ("nll", "grpo_loss", "kl", "reward_mean", "reward_std", "admitted", "pass_pol", "pass_rew", "invalid_share",
                "valid_hr@10", "valid_hallucination@10", "valid_reward@10"):
        assert col in history, col
    ranker = first.set_index("model").loc["sasrec_ranker"]
    assert ranker["hallucination@10"] == 0 and ranker["hr@10"] <= ranker["hr@20"] if "hr@20" in ranker else True

    # `kedro run --pipeline=evaluate` re-evaluates the saved checkpoint and trains nothing
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true"}
    proc = subprocess.run([str(Path(sys.executable).parent / "kedro"), "run", "--pipeline=evaluate"],
                          cwd=project, env=env, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert _ran_nodes(out) == {"evaluate_sft_policy", "adagrpo.evaluate_policy", "popularity_baseline", "evaluation_report"}
    assert len(sorted((project / "data/06_models/sft_policy").iterdir())) == 1  # no new checkpoint
    versions = sorted((project / "data/08_reporting/evaluation_results.parquet").iterdir())
    second = pd.read_parquet(versions[-1] / "evaluation_results.parquet")
    assert len(versions) == 2
    pd.testing.assert_frame_equal(first, second)  # same checkpoint, same metrics
