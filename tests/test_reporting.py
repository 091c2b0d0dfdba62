"""The evaluate / compare report: best checkpoint on valid, mean ± std over seeds, strata, paired
differences and the reading, the confidence level of every text, and the report node's inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from adagrpo_pipeline.adagrpo.config import AdaGrpoParams
from adagrpo_pipeline.adagrpo.runs import RunPlan, RunSpec
from adagrpo_pipeline.pipelines import compare, evaluate
from adagrpo_pipeline.reporting import tables
from adagrpo_pipeline.reporting.report import build_report
from adagrpo_pipeline.reporting.text import fmt_mean_std, reading
from adagrpo_pipeline.stats import Bootstrap


def _evals(valid_ndcg: list[float], test_hr: list[float]) -> pd.DataFrame:
    rows = []
    for step, v, t in zip((100, 200, 300), valid_ndcg, test_hr, strict=True):
        rows.append({"step": step, "split": "valid", "ndcg@10_filtered": v, "hr@10": 0.0, "hallucination@10": 0.0})
        rows.append({"step": step, "split": "test", "ndcg@10_filtered": 0.0, "hr@10": t, "hallucination@10": 0.01})
    return pd.DataFrame(rows)


def test_best_is_chosen_on_valid_and_reported_on_test() -> None:
    ev = _evals([0.1, 0.3, 0.2], [0.5, 0.2, 0.9])
    rows = tables.run_rows(RunSpec(namespace="adagrpo.seed_0", kind="adagrpo", seed=0), ev).set_index("checkpoint")
    assert rows.loc["best", "step"] == 200 and rows.loc["best", "hr@10"] == 0.2  # not the test-best step 300
    assert rows.loc["final", "step"] == 300 and rows.loc["final", "hr@10"] == 0.9
    assert tables.best_step(_evals([0.3, 0.3, 0.1], [0, 0, 0])) == 100  # ties: earliest


def test_summary_over_seeds() -> None:
    runs = pd.DataFrame([
        {"variant": v, "seed": s, "checkpoint": "final", "hr@10": hr, "hallucination@10": h}
        for v, vals in {"adagrpo": [(0.20, 0.0), (0.22, 0.0)], "grpo": [(0.10, 0.1), (0.12, 0.1)]}.items()
        for s, (hr, h) in enumerate(vals)])
    summary = tables.summarize(runs, ["hr@10", "hallucination@10"])
    row = summary.set_index("variant").loc["adagrpo"]
    assert row["hr@10_mean"] == pytest.approx(0.21) and row["hr@10_std"] == pytest.approx(0.01414, abs=1e-5) and row["seeds"] == 2
    single = tables.summarize(runs[runs["seed"] == 0], ["hr@10"])
    assert fmt_mean_std(single, ["hr@10"])["hr@10"].tolist() == ["0.2000", "0.1000"]  # one seed: no ± shown


def _hits(users: np.ndarray, filtered: np.ndarray, checkpoint: str = "final") -> pd.DataFrame:
    return pd.DataFrame({"user_id": users, "hit@10": filtered, "hit@10_filtered": filtered, "checkpoint": checkpoint})


def test_paired_table_and_reading_call_only_what_the_ci_excludes() -> None:
    n = 400
    users = np.arange(n)
    rng = np.random.default_rng(0)
    sft = rng.random(n) < 0.2
    better = sft | (rng.random(n) < 0.15)  # ~ +0.12: resolved
    same = sft.copy()
    same[:4] = ~same[:4]  # a tiny change: inside the noise
    run_hits = {}
    for seed in (0, 1):
        for kind, h in (("adagrpo", better), ("sft_continue", same), ("grpo", same)):
            run = RunSpec(namespace=f"{kind}.seed_{seed}", kind=kind, seed=seed)
            run_hits[run] = pd.concat([_hits(users, h.astype(float)), _hits(users, h.astype(float), "best")])
    sft_hits = _hits(users, sft.astype(float)).drop(columns="checkpoint")
    paired = tables.paired_table(sft_hits, run_hits, {"sasrec": _hits(users, same.astype(float))},
                              Bootstrap(resamples=2000, seed=0))
    p = paired.set_index(["model", "checkpoint", "against", "metric"])
    up = p.loc[("adagrpo", "best", "sft", "hr@10_filtered")]
    assert up["delta"] == pytest.approx(better.mean() - sft.mean()) and up["call"] == "above" and up["seeds"] == 2
    assert p.loc[("adagrpo", "best", "sft_continue", "hr@10_filtered"), "call"] == "above"
    assert p.loc[("adagrpo", "final", "grpo", "hr@10_filtered"), "call"] == "above"
    tie = p.loc[("sft_continue", "final", "sft", "hr@10_filtered")]
    assert tie["ci_low"] < 0 < tie["ci_high"] and tie["call"] == "not resolved" and tie["mde"] > abs(tie["delta"])
    assert p.loc[("sasrec", "", "sft", "hr@10_filtered"), "delta"] == pytest.approx(tie["delta"])
    lines = reading(paired)
    assert any(line.startswith("- adagrpo (best) beats sft on hr@10_filtered") for line in lines)
    assert any(line.startswith("- sft_continue (final) − SFT on hr@10_filtered") and line.endswith("not resolved.")
               for line in lines)
    assert tables.minimum_detectable(paired) == pytest.approx(up["mde"])


def test_paired_table_refuses_hits_that_miss_users() -> None:
    users = np.arange(10)
    run = RunSpec(namespace="adagrpo.seed_0", kind="adagrpo", seed=0)
    with pytest.raises(ValueError, match="adagrpo.seed_0: test hits lack 2 of the 10 test users"):
        tables.paired_table(_hits(users, np.zeros(10)), {run: pd.concat([_hits(users[:8], np.zeros(8)),
                                                                       _hits(users[:8], np.zeros(8), "best")])})


def test_strata_changes_are_per_stratum_differences_to_sft() -> None:
    sft = pd.DataFrame({"user_id": [0, 1, 2, 3], "hit@10": [0.0, 1.0, 0.0, 1.0],
                        "pass_pol": [True, True, False, False], "pass_rew": [True, True, True, False]})
    hits = {RunSpec(namespace=f"adagrpo.seed_{s}", kind="adagrpo", seed=s): pd.DataFrame(
        {"user_id": [0, 1, 2, 3], "hit@10": h, "checkpoint": "final"}) for s, h in ((0, [1.0, 1.0, 0.0, 0.0]),
                                                                                  (1, [0.0, 1.0, 0.0, 0.0]))}
    t = tables.strata_table(sft, hits).set_index("stratum")
    admitted = t.loc[tables.STRATA[0][2]]
    assert admitted["samples"] == 2 and admitted["sft_hr@10"] == 0.5 and admitted["delta_hr@10_mean"] == pytest.approx(0.25)
    assert t.loc[tables.STRATA[3][2], "delta_hr@10_mean"] == -1.0 and t.loc[tables.STRATA[1][2], "samples"] == 0

    wide = tables.strata_wide(tables.strata_table(sft, hits))
    assert list(wide["stratum"]) == [label for _, _, label in tables.STRATA] and list(wide["samples"]) == [2, 0, 1, 1]
    assert wide.columns.tolist() == ["stratum", "samples", "sft_hr@10", "adagrpo"]


def _one_run_report(boot: Bootstrap) -> tuple:
    """build_report over one AdaGRPO run and the SFT reference on 40 users, and the run's Δ vs SFT."""
    rng = np.random.default_rng(0)
    users = np.arange(40)
    sft = (rng.random(40) < 0.3).astype(float)
    better = np.maximum(sft, (rng.random(40) < 0.3).astype(float))
    strata = _hits(users, sft).drop(columns="checkpoint").assign(pass_pol=users % 2 == 0, pass_rew=users % 3 == 0)
    strata["admitted"] = strata["pass_pol"] & strata["pass_rew"]
    history = pd.DataFrame({"step": [0, 100, 200, 300], "valid_hr@10": [0.1, 0.2, 0.3, 0.2],
                            "valid_hallucination@10": 0.0, "valid_reward@10": 0.5})
    ref = pd.DataFrame([{"model": "sft", "step": 0, "hr@10": sft.mean(), "hr@10_filtered": sft.mean(),
                         "hallucination@10": 0.0}])
    run = RunSpec(namespace="adagrpo", kind="adagrpo", seed=0)
    return build_report([run], [_evals([0.1, 0.3, 0.2], [0.5, 0.2, 0.9])],
                        [pd.concat([_hits(users, better), _hits(users, better, "best")])], [history], [ref], strata,
                        {}, "none", boot=boot), better.mean() - sft.mean()


def test_every_text_states_the_level_its_cis_were_computed_at() -> None:
    at90, delta = _one_run_report(Bootstrap(resamples=500, seed=0, level=0.9))
    assert (at90.paired["level"] == 0.9).all()
    assert "90% percentile bootstrap CIs over users" in at90.markdown and "(90% CI, 40 users)" in at90.markdown
    assert "95%" not in at90.markdown
    assert f"- adagrpo (best) beats sft on hr@10_filtered: Δ {delta:+.4f} [" in at90.markdown
    entry = at90.document["models"]["adagrpo"]["checkpoints"]["final"]["delta_vs_sft"]["hr@10_filtered"]
    assert entry["level"] == 0.9 and entry["delta"] == pytest.approx(delta)
    default, _ = _one_run_report(Bootstrap(resamples=500, seed=0))  # the default level, as every report so far
    assert "95% percentile bootstrap CIs over users" in default.markdown and "(95% CI, 40 users)" in default.markdown
    assert "90%" not in default.markdown
    wide, narrow = (r.paired.set_index(["checkpoint", "metric"]).loc[("final", "hr@10_filtered")] for r in (default, at90))
    assert narrow["ci_high"] - narrow["ci_low"] < wide["ci_high"] - wide["ci_low"]


FIXED_INPUTS = ["sft_evaluation", "sft_strata", "popularity_evaluation", "popularity_test_hits", "sasrec_evaluation",
                "sasrec_test_hits", "ranker_evaluation", "ranker_test_hits", "reward_informativeness", "params:sft",
                "params:reward", "params:adagrpo", "params:evaluate"]


def test_the_report_node_is_given_its_runs_by_the_factory() -> None:
    """Per run (plan order) its spec, evaluation, hits and history; per seeded reference its spec,
    test row and hits: the same dataset names as before the node stopped decoding them."""
    plan = RunPlan.from_params(AdaGrpoParams(seeds=[0, 1], reference_seeds=[3], mix_alphas=[0.5]))
    (main,) = evaluate.create_pipeline([plan.main]).only_nodes("evaluate.report").nodes
    assert main.inputs == [*FIXED_INPUTS, "params:runs.adagrpo", "adagrpo.checkpoint_evaluation", "adagrpo.test_hits",
                           "adagrpo.training_history"]
    (node,) = compare.create_pipeline(plan.compare, plan.references).only_nodes("evaluate.report").nodes
    runs = [f"{v}.seed_{s}" for s in (0, 1) for v in ("sft_continue", "grpo", "mix_0p5", "mix_matched", "random_gate",
                                                      "adagrpo")]
    assert node.inputs == [*FIXED_INPUTS, "tuned_settings",
                           *(d for ns in runs for d in (f"params:runs.{ns}", f"{ns}.checkpoint_evaluation",
                                                        f"{ns}.test_hits", f"{ns}.training_history")),
                           *(d for ns in ("sft.seed_3", "sasrec.seed_3")
                             for d in (f"params:runs.{ns}", f"{ns}.evaluation", f"{ns}.hits"))]
