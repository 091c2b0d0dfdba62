"""The benchmark scripts run on tiny sizes and report what they claim: the same top-k as
`generate`, every profiler-labelled phase of the SFT and RL steps found, the stage table
summed and sorted. (Figures, never timings, are asserted: timings are the scripts' output.)"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import REPO


def run_benchmark(script: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, str(REPO / "benchmarks" / script), *args], capture_output=True, text=True,
                         cwd=REPO, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_stages_sums_and_sorts_the_runs_node_durations(tmp_path) -> None:
    events = [{"event": "before_pipeline_run", "timestamp": "2026-01-01T00:00:00+00:00"},
              {"event": "after_node_run", "node": "sft.train_sft_policy", "duration": 30.0},
              {"event": "after_dataset_saved", "dataset": "sft_policy"},
              {"event": "after_node_run", "node": "evaluate.report", "duration": 1.5},
              {"event": "after_node_run", "node": "evaluate.train_sasrec_baseline", "duration": 40.0},
              {"event": "after_pipeline_run", "timestamp": "2026-01-01T00:01:20+00:00"}]
    path = tmp_path / "events.json"
    path.write_text(json.dumps(events))
    res = run_benchmark("stages.py", "--events", str(path), "--before", str(path))
    assert res["wall_s"] == 80.0 and res["nodes_s"] == 71.5
    assert list(res["stages_s"].items()) == [("evaluate", 41.5), ("sft", 30.0)]
    assert list(res["nodes_s_largest"]) == ["evaluate.train_sasrec_baseline", "sft.train_sft_policy", "evaluate.report"]
    assert res["before"]["stages_s"] == {"sft": 30.0, "evaluate": 41.5}


@pytest.mark.slow
def test_decoding_benchmark_finds_generates_top_k() -> None:
    res = run_benchmark("decoding.py", "--size", "small", "--levels", "2", "--codebook", "8", "--items", "60",
                        "--beams", "6", "--topk", "4", "--batch", "3", "--history", "4", "--repeats", "1",
                        "--profile", "3")
    assert res["same_topk_items"] == 1.0
    assert min(res["ours_items_per_s"], res["dict_generate_items_per_s"], res["bound_items_per_s"]) > 0
    assert res["profile_ms_per_step"] > 0


@pytest.mark.slow
def test_step_benchmarks_find_every_labelled_phase() -> None:
    sft = run_benchmark("sft_step.py", "--batch", "16", "--items", "200", "--steps", "3", "--short", "1",
                        "--repeats", "1")
    assert set(sft["phase_ms_per_step"]) == {"sft.batch", "sft.forward", "train.backward", "train.optimiser"}
    assert all(v > 0 for v in sft["phase_ms_per_step"].values())
    rl = run_benchmark("rl_step.py", "--batch", "8", "--group", "4", "--items", "200", "--steps", "1",
                       "--repeats", "1")
    phases = {"rollouts", "reward", "teacher_forced", "diagnostics", "backward", "optimiser"}
    assert set(rl["phase_ms"]) == phases == set(rl["bound_ms"])
    assert all(v > 0 for v in rl["phase_ms"].values()), rl["phase_ms"]
    assert rl["batch"] == 8 and rl["group"] == 4 and rl["dropout_pass"] is True
