"""The `study` pipeline end to end in a real Kedro session, at tiny size (TINY_STUDY)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from conftest import kedro, ran_nodes, run_session, write_tiny_conf

pytestmark = pytest.mark.slow

VARIANTS = {"sft_continue", "grpo", "mix_matched", "random_gate", "adagrpo", "oracle_gate", "uniform"}


def test_study_runs_end_to_end_and_reports_every_setting(project: Path) -> None:
    write_tiny_conf(project)
    run_session(project, "study")
    out = project / "data/08_reporting/study"
    assert {p.name for p in out.iterdir()} >= {"summary.json", "runs.csv", "premise.csv", "study.md", "study_deltas.png",
                                               "study_strata.png"}
    summary = json.loads((out / "summary.json").read_text())
    runs = pd.DataFrame(summary["runs"])
    assert len(runs) == 2 * 14 * 2  # 2 levels x 14 runs x (final, best)
    final = runs[runs["checkpoint"] == "final"]
    assert set(final["variant"]) == VARIANTS and set(final["level"]) == {"none", "strong"}
    assert set(final["reward"]) == {"policy_only", "latent", "oracle"}
    assert final["utility@10"].between(0, 1).all() and final["hallucination@10"].between(0, 1).all()
    # every CI brackets its difference; a resolved call excludes 0
    for m in ("utility@10", "hit@10_filtered"):
        d = final[[f"d_{m}_vs_sft", f"d_{m}_vs_sft_ci_low", f"d_{m}_vs_sft_ci_high", f"d_{m}_vs_sft_call"]].to_numpy()
        assert all(lo - 1e-12 <= x <= hi + 1e-12 for x, lo, hi, _ in d)
        assert all((c == "not resolved") == (lo <= 0 <= hi) for _, lo, hi, c in d)
    # the SFT policy's own outcomes match the summary's SFT row, user by user
    sft = pd.read_parquet(next((project / "data/07_model_output/study/study.none/sft_outcomes.parquet").rglob("*.parquet")))
    row = next(r for r in summary["sft"] if r["level"] == "none")
    assert row["utility@10"] == pytest.approx(sft["utility@10"].mean()) and row["users"] == len(sft)
    premise = pd.read_csv(out / "premise.csv")
    # per level x information: 2 strata sources x 4 strata x 2 rewards x 2 metrics; the strata split every test user
    assert len(premise) == 2 * 2 * 2 * 4 * 2 * 2
    per_split = premise.groupby(["level", "information", "strata_by", "reward", "metric"])["samples"].sum()
    assert (per_split == row["users"]).all()
    assert len(summary["premise_verdicts"]) == 2 * 2 * 2 * 2 * 2 and summary["reading"]
    # AdaGRPO against each of its 5 controls with the same ranker: 2 levels x 2 rankers x 2 checkpoints x 2 metrics
    contrasts = pd.DataFrame(summary["adagrpo_vs_controls"])
    assert len(contrasts) == 2 * 2 * 5 * 2 * 2 and set(contrasts["against"]) == {
        "random_gate", "mix_matched", "oracle_gate", "uniform", "grpo"}
    md = (out / "study.md").read_text()
    assert "## Plain reading" in md and "Premise on true utility@10 (strata by the ranker's d_rew, oracle reward)" in md


def test_one_bias_level_alone_with_params(project: Path) -> None:
    write_tiny_conf(project)
    out = kedro(project, "run", "--pipeline=study", "--params", "study.only_levels=[strong]")
    nodes = ran_nodes(out)
    assert {n.split(".")[1] for n in nodes if n.startswith("study.") and n != "study.report"} == {"strong"}
    assert sum(n.endswith(".train_policy") for n in nodes) == 14 and "study.report" in nodes
    summary = json.loads((project / "data/08_reporting/study/summary.json").read_text())
    assert [b["name"] for b in summary["design"]["levels"]] == ["strong"]
