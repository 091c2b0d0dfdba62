"""Report helpers: best checkpoint on valid, mean ± std over seeds, strata, the verdict."""

from __future__ import annotations

import pandas as pd
import pytest

from adagrpo_pipeline import reporting as rep
from adagrpo_pipeline.adagrpo.runs import RunSpec


def _evals(valid_ndcg: list[float], test_hr: list[float]) -> pd.DataFrame:
    rows = []
    for step, v, t in zip((100, 200, 300), valid_ndcg, test_hr, strict=True):
        rows.append({"step": step, "split": "valid", "ndcg@10_filtered": v, "hr@10": 0.0, "hallucination@10": 0.0})
        rows.append({"step": step, "split": "test", "ndcg@10_filtered": 0.0, "hr@10": t, "hallucination@10": 0.01})
    return pd.DataFrame(rows)


def test_best_is_chosen_on_valid_and_reported_on_test() -> None:
    ev = _evals([0.1, 0.3, 0.2], [0.5, 0.2, 0.9])
    rows = rep.run_rows(RunSpec(namespace="adagrpo.seed_0", kind="adagrpo", seed=0), ev).set_index("checkpoint")
    assert rows.loc["best", "step"] == 200 and rows.loc["best", "hr@10"] == 0.2  # not the test-best step 300
    assert rows.loc["final", "step"] == 300 and rows.loc["final", "hr@10"] == 0.9
    assert rep.best_step(_evals([0.3, 0.3, 0.1], [0, 0, 0])) == 100  # ties: earliest


def test_summary_and_verdict() -> None:
    runs = pd.DataFrame([
        {"variant": v, "seed": s, "checkpoint": "final", "hr@10": hr, "hallucination@10": h}
        for v, vals in {"adagrpo": [(0.20, 0.0), (0.22, 0.0)], "grpo": [(0.10, 0.1), (0.12, 0.1)],
                        "mix_0p5": [(0.205, 0.0), (0.215, 0.0)]}.items() for s, (hr, h) in enumerate(vals)])
    summary = rep.summarize(runs, ["hr@10", "hallucination@10"])
    row = summary.set_index("variant").loc["adagrpo"]
    assert row["hr@10_mean"] == pytest.approx(0.21) and row["hr@10_std"] == pytest.approx(0.01414, abs=1e-5) and row["seeds"] == 2
    lines = rep.verdict(summary, pd.Series({"hr@10": 0.25, "hallucination@10": 0.0}))
    assert lines[0].startswith("- adagrpo (final) loses to SFT on HR@10")
    assert lines[1].startswith("- adagrpo (final) beats uniform GRPO") and "equal or lower hallucination" in lines[1]
    assert lines[2].startswith("- adagrpo (final) ties with the best fixed mixture (mix_0p5)")
    assert "0.2100 ± 0.0141 vs 0.2500 (Δ -0.0400)" in lines[0]  # SFT is one model: no ± beside it


def test_a_single_seed_prints_no_spread_and_calls_no_difference() -> None:
    runs = pd.DataFrame([{"variant": "adagrpo", "seed": 0, "checkpoint": "final", "hr@10": 0.30, "hallucination@10": 0.0},
                         {"variant": "grpo", "seed": 0, "checkpoint": "final", "hr@10": 0.10, "hallucination@10": 0.2}])
    summary = rep.summarize(runs, ["hr@10", "hallucination@10"])
    table = rep.fmt_mean_std(summary, ["hr@10"])
    assert table["hr@10"].tolist() == ["0.3000", "0.1000"]
    lines = rep.verdict(summary, pd.Series({"hr@10": 0.25, "hallucination@10": 0.0}))
    assert len(lines) == 2 and all("not resolved (one seed gives no spread" in line for line in lines)
    assert "±" not in "".join(lines)


def test_strata_changes_are_per_stratum_differences_to_sft() -> None:
    sft = pd.DataFrame({"user_id": [0, 1, 2, 3], "hit@10": [0.0, 1.0, 0.0, 1.0],
                        "pass_pol": [True, True, False, False], "pass_rew": [True, True, True, False]})
    hits = {RunSpec(namespace=f"adagrpo.seed_{s}", kind="adagrpo", seed=s): pd.DataFrame(
        {"user_id": [0, 1, 2, 3], "hit@10": h, "checkpoint": "final"}) for s, h in ((0, [1.0, 1.0, 0.0, 0.0]),
                                                                                  (1, [0.0, 1.0, 0.0, 0.0]))}
    t = rep.strata_table(sft, hits).set_index("stratum")
    admitted = t.loc[rep.STRATA[0][2]]
    assert admitted["samples"] == 2 and admitted["sft_hr@10"] == 0.5 and admitted["delta_hr@10_mean"] == pytest.approx(0.25)
    assert t.loc[rep.STRATA[3][2], "delta_hr@10_mean"] == -1.0 and t.loc[rep.STRATA[1][2], "samples"] == 0

    wide = rep.strata_wide(rep.strata_table(sft, hits))
    assert list(wide["stratum"]) == [label for _, _, label in rep.STRATA] and list(wide["samples"]) == [2, 0, 1, 1]
    assert wide.columns.tolist() == ["stratum", "samples", "sft_hr@10", "adagrpo"]
