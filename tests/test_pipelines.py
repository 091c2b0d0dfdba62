"""Every pipeline in memory (kedro-starters spaceflights style): a `SequentialRunner` over a
`DataCatalog` holding the pipeline's inputs and its typed parameters, on tiny synthetic data.
The stages are chained (each fixture feeds the next), so the whole project runs here in
seconds; real sessions, versions on disk, MLflow and `kedro` commands are the slow tier."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner

from adagrpo_pipeline.adagrpo.config import AdaGrpoParams
from adagrpo_pipeline.adagrpo.runs import RunPlan
from adagrpo_pipeline.adagrpo.tuning import TuneParams
from adagrpo_pipeline.pipelines import (
    adagrpo,
    compare,
    evaluate,
    ingest,
    reward,
    sft,
    tokenize,
    tune,
)
from adagrpo_pipeline.policy.config import EvaluateParams, SftParams
from adagrpo_pipeline.policy.data import seen_before_holdout
from adagrpo_pipeline.recdata.config import IngestParams
from adagrpo_pipeline.recdata.prepare import HELD_OUT_TEST
from adagrpo_pipeline.reward.config import RewardParams
from adagrpo_pipeline.reward.reward import RewardModel
from adagrpo_pipeline.sasrec.model import catalog_scores
from adagrpo_pipeline.semantic_ids.config import TokenizeParams
from adagrpo_pipeline.semantic_ids.trie import SidTrie
from adagrpo_pipeline.semantic_ids.vocab import SidVocab
from adagrpo_pipeline.training.checkpoint import StoredWeights

from conftest import TINY_RUN, load_parameters, merged

MODELS = {"ingest": IngestParams, "tokenize": TokenizeParams, "sft": SftParams, "reward": RewardParams,
          "adagrpo": AdaGrpoParams, "evaluate": EvaluateParams, "tune": TuneParams}


class _Kept(MemoryDataset):
    """A memory dataset the runner cannot free, so a test can read intermediate outputs."""

    def _release(self) -> None:
        pass


def run(pipe, data: dict[str, Any]) -> dict[str, Any]:
    """Run `pipe` on an in-memory catalog of `data`; every dataset it writes, loaded."""
    catalog = DataCatalog()
    for name, value in data.items():
        catalog[name] = value
    for name in pipe.all_outputs():
        catalog[name] = _Kept()
    SequentialRunner().run(pipe, catalog)
    return {name: catalog.load(name) for name in pipe.all_outputs()}


@pytest.fixture(scope="module")
def params(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """`params:<stage>` as Kedro would validate them: the repo's base config + TINY_RUN, with
    every resumable state in a temporary folder."""
    state = tmp_path_factory.mktemp("state")
    raw = merged(load_parameters("base"), TINY_RUN)
    raw = merged(raw, {"sft": {"state_dir": str(state / "sft")}, "reward": {"ranker": {"state_dir": str(state / "ranker")}},
                       "adagrpo": {"state_dir": str(state / "rl")}, "tune": {"state_dir": str(state / "tune")},
                       "evaluate": {"sasrec": {"state_dir": str(state / "sasrec")}}})
    return {f"params:{k}": m.model_validate(raw[k]) for k, m in MODELS.items()}


@pytest.fixture(scope="module")
def ingested(params) -> dict[str, Any]:
    return run(ingest.create_pipeline(), {"params:ingest": params["params:ingest"]})


@pytest.fixture(scope="module")
def tokenized(params, ingested) -> dict[str, Any]:
    return run(tokenize.create_pipeline(), {**ingested, "params:tokenize": params["params:tokenize"]})


@pytest.fixture(scope="module")
def trained(params, ingested, tokenized) -> dict[str, Any]:
    return run(sft.create_pipeline(), {**ingested, **tokenized, "params:sft": params["params:sft"]})


@pytest.fixture(scope="module")
def rewarded(params, ingested, tokenized, trained) -> dict[str, Any]:
    return run(reward.create_pipeline(), {**ingested, **tokenized, **trained, "params:reward": params["params:reward"],
                                          "params:evaluate": params["params:evaluate"],
                                          "params:adagrpo": params["params:adagrpo"]})


@pytest.fixture(scope="module")
def upstream(params, ingested, tokenized, trained, rewarded) -> dict[str, Any]:
    return {**params, **ingested, **tokenized, **trained, **rewarded}


def _plan(params) -> RunPlan:
    return RunPlan.from_params(params["params:adagrpo"])


def test_ingest_publishes_consistent_tables(ingested) -> None:
    inter, items, test, train = (ingested[k] for k in ("interactions", "items", "test_sequences", "train_sequences"))
    n_users = inter["user_id"].nunique()
    assert inter["user_id"].max() == n_users - 1 and items["item_id"].tolist() == list(range(len(items)))
    assert len(test) == n_users and len(train) == len(inter) - 3 * n_users  # n - 3 prefixes a user
    assert (test.set_index("user_id")["target"] == inter.groupby("user_id")["item_id"].last()).all()
    ctr = ingested["impressions"].groupby("position")["clicked"].mean()
    assert ctr.iloc[0] > ctr.iloc[-1]  # the simulator's position-biased clicks, read not derived
    metrics = ingested["exposure_metrics"].set_index("metric")["value"]
    assert 0 < metrics["gini_exposure"] < 1 and metrics["catalog_coverage"] == 1.0
    assert [s["table"] for s in ingested["ingest_validation_report"]["suites"]][:3] == ["items", "interactions", "impressions"]


def test_tokenize_gives_every_item_its_own_decodable_ids(tokenized, ingested) -> None:
    ids, vocab = tokenized["semantic_ids"], SidVocab.from_json(tokenized["sid_vocab"])
    codes = np.stack(ids["codes"].to_numpy()).astype(np.int64)
    assert codes.shape == (len(ingested["items"]), 3) and len(np.unique(codes, axis=0)) == len(codes)
    assert vocab.level_sizes == (8, 8, 16)
    trie = SidTrie.from_tensors(tokenized["sid_trie"])
    assert trie.lookup(torch.as_tensor(vocab.encode(codes))).tolist() == ids["item_id"].tolist()
    emb = tokenized["item_embeddings"]["embeddings"]
    assert emb.shape == (len(codes), 384 + 64)  # default hybrid: MiniLM 384 + co-occurrence 64
    np.testing.assert_allclose(emb.norm(dim=1).numpy(), 1.0, atol=1e-5)


def test_sft_keeps_the_best_validation_step(trained) -> None:
    history, ckpt = trained["sft_history"], trained["sft_policy"]
    assert list(history["step"]) == [15, 30]
    best = int(history.loc[history["valid_ndcg@10_filtered"].idxmax(), "step"])
    assert ckpt.config["kind"] == "t5_policy" and ckpt.config["best_step"] == best


def test_reward_chooses_the_calibration_with_the_lowest_held_out_logloss(rewarded) -> None:
    cal = rewarded["reward_calibration"]
    assert cal["chosen"]["method"] == min(cal["candidates"], key=lambda m: cal["candidates"][m]["select_logloss"])
    assert "invalid_reward" not in cal  # one source: params:reward
    assert list(rewarded["ranker_history"]["step"]) == [10, 20, 30]


def test_ranker_as_retriever_ranks_the_test_item_among_the_whole_catalog(rewarded, ingested, params) -> None:
    # HR@10 recomputed by hand: the test item's rank = the number of catalog items the ranker scores above it
    test, inter = ingested["test_sequences"], ingested["interactions"]
    reward_model = RewardModel.from_artifacts(rewarded["ranker_model"], rewarded["reward_calibration"],
                                              params["params:reward"], torch.device("cpu"))
    users, targets = test["user_id"].to_numpy(), test["target"].to_numpy()
    scores = catalog_scores(reward_model.ranker, test["history"], 64, users).numpy()
    seen = seen_before_holdout(inter, users, held_out=HELD_OUT_TEST)
    filtered = scores.copy()
    for row, items in enumerate(seen):
        filtered[row, list(items)] = -np.inf
    retrieval = rewarded["ranker_evaluation"].iloc[0]
    for suffix, s in (("", scores), ("_filtered", filtered)):
        rank = (s > s[np.arange(len(targets)), targets][:, None]).sum(axis=1)
        assert retrieval[f"hr@10{suffix}"] == pytest.approx((rank < 10).mean())
        assert retrieval[f"ndcg@10{suffix}"] == pytest.approx(np.where(rank < 10, 1 / np.log2(rank + 2), 0).mean())


def test_reward_informativeness_is_measured_on_the_sft_rollouts(rewarded, ingested) -> None:
    doc = rewarded["reward_informativeness"]
    f = doc["figures"]
    assert doc["split"] == "valid" and f["samples"] == len(ingested["valid_sequences"])
    for name in ("auc_target_vs_rollouts", "auc_target_vs_unseen_rollouts", "pass_rate_reward"):
        assert 0 <= f[f"{name}_ci_low"] <= f[name] <= f[f"{name}_ci_high"] <= 1, name
    assert 0 <= f["pass_rate_random_mean"] <= 1 and f["pass_rate_random_std"] >= 0
    assert not abs(f["spearman_reward_popularity"]) > 1 and 0 <= f["history_rollout_share"] <= 1  # NaN: < 3 scored rollouts
    assert rewarded["reward_informativeness_metrics"]["pass_rate_reward"]["value"] == f["pass_rate_reward"]


def test_train_adagrpo_then_evaluate_reports_one_seed_without_spread(upstream, params) -> None:
    plan = _plan(params)
    data = {**upstream, "params:runs.adagrpo": plan.main}
    rl = run(adagrpo.create_pipeline([plan.main]), data)
    series = rl["adagrpo.checkpoints"]
    assert sorted(series) == ["step-000000", "step-000003", "step-000006"]  # step 0 = the SFT policy
    assert all(isinstance(c.weights, StoredWeights) for c in series.values())  # streamed from the loop's files
    final = series["step-000006"].tensors
    assert all(torch.equal(v, final[k]) for k, v in rl["adagrpo.policy"].tensors.items())
    history = rl["adagrpo.training_history"]
    assert list(history["step"]) == list(range(7)) and history["valid_hr@10"].notna().sum() == 3

    out = run(evaluate.create_pipeline([plan.main]), {**data, **rl})
    results = out["evaluation_results"]
    assert list(results["model"]) == ["sft", "popularity", "sasrec", "ranker_as_retriever", "adagrpo", "adagrpo"]
    evals = out["adagrpo.checkpoint_evaluation"]
    valid = evals[evals["split"] == "valid"].sort_values("step")
    best = results[results["checkpoint"] == "best"].iloc[0]
    assert best["step"] == valid.loc[valid["ndcg@10_filtered"].idxmax(), "step"]  # chosen on valid, shown on test
    strata = out["sft_strata"]
    assert len(strata) == 60 and set(strata.columns) >= {"d_pol", "d_rew", "pass_pol", "pass_rew", "admitted"}
    hits = out["reference_hits"]
    assert hits.groupby("model").size().to_dict() == {m: 60 for m in ("sft", "popularity", "sasrec", "ranker_as_retriever")}
    sasrec = results.set_index("model").loc["sasrec"]
    assert sasrec["hr@10_filtered"] == hits.loc[hits["model"] == "sasrec", "hit@10_filtered"].mean()
    assert sasrec["step"] == out["sasrec_model"].config["best_step"] > 0
    table = out["report_md"].split("## Variants (mean ± std over seeds)")[1].split("## Reading")[0]
    assert "±" not in table
    assert out["evaluation_metrics"]["adagrpo.final.hr_at_10_mean"]["value"] == results.iloc[4]["hr@10"]
    # paired statistics: AdaGRPO (one seed) and every reference against SFT on the same users
    paired = out["evaluation_paired"].set_index(["model", "checkpoint", "against", "metric"])
    hits = out["adagrpo.test_hits"]
    final = hits[hits["checkpoint"] == "final"].set_index("user_id")["hit@10_filtered"]
    sft_hits = strata.set_index("user_id")["hit@10_filtered"]
    row = paired.loc[("adagrpo", "final", "sft", "hr@10_filtered")]
    assert row["delta"] == pytest.approx((final - sft_hits.reindex(final.index)).mean())
    assert row["ci_low"] <= row["delta"] <= row["ci_high"] and row["users"] == 60
    assert ("sasrec", "", "sft", "hr@10_filtered") in paired.index
    summary = out["summary_json"]
    assert summary["headline"]["metric"] == "hr@10_filtered" and summary["headline"]["test_users"] == 60
    assert summary["models"]["adagrpo"]["checkpoints"]["final"]["delta_vs_sft"]["hr@10_filtered"]["delta"] == row["delta"]
    assert summary["reward"]["auc_target_vs_rollouts"] == upstream["reward_informativeness"]["figures"]["auc_target_vs_rollouts"]


@pytest.fixture(scope="module")
def tuned(upstream, params) -> dict[str, Any]:
    plan = _plan(params)
    return run(tune.create_pipeline(plan.tune), {**upstream, **{f"params:runs.{r.namespace}": r for r in plan.tune}})


def test_tune_gives_every_variant_the_same_budget_and_is_deterministic(tuned, upstream, params) -> None:
    settings, trials = tuned["tuned_settings"], tuned["tuning_trials"]
    plan = _plan(params)
    names = [r.variant.name for r in plan.compare if r.seed == 0]
    assert sorted(settings["variants"]) == sorted(names) and settings["budget"]["trials_per_variant"] == 2
    assert trials.groupby("variant").size().to_dict() == {v: 2 for v in names}
    ada = settings["variants"]["adagrpo"]["params"]
    assert set(ada) == {"lr", "lam", "k_pol", "k_rew", "max_steps"} and set(settings["variants"]["sft_continue"]["params"]) == {
        "lr", "max_steps"}
    for control in ("random_gate", "mix_matched"):  # the controls use AdaGRPO's gate
        chosen = settings["variants"][control]["params"]
        assert (chosen["k_pol"], chosen["k_rew"]) == (ada["k_pol"], ada["k_rew"]) and "lam" in chosen
    for v in names:  # the chosen trial is the best one on valid
        rows = trials[trials["variant"] == v]
        assert settings["variants"][v]["score"] == rows["score"].max()
        assert 1e-5 <= rows["lr"].min() and rows["lr"].max() <= 1e-3
    again = run(tune.create_pipeline(plan.tune[:1]), {**upstream, f"params:runs.{plan.tune[0].namespace}": plan.tune[0]})
    first = trials[trials["variant"] == "adagrpo"].dropna(axis=1, how="all").reset_index(drop=True)
    pd.testing.assert_frame_equal(again["tuning_trials"][first.columns], first, check_dtype=False)  # same seed, same trials


def test_compare_summarises_every_variant_over_its_seeds(upstream, params, tuned) -> None:
    plan = _plan(params)
    assert [r.namespace for r in plan.compare[:6]] == ["sft_continue.seed_0", "grpo.seed_0", "mix_0p5.seed_0",
                                                       "mix_matched.seed_0", "random_gate.seed_0", "adagrpo.seed_0"]
    data = {**upstream, "tuned_settings": tuned["tuned_settings"],
            **{f"params:runs.{r.namespace}": r for r in (*plan.compare, *plan.references)}}
    out = run(compare.create_pipeline(plan.compare, plan.references), data)
    chosen = tuned["tuned_settings"]["variants"]["adagrpo"]["params"]
    assert len(out["adagrpo.seed_0.training_history"]) == chosen["max_steps"] + 1  # trained with its tuned length
    summary, results = out["evaluation_summary"], out["evaluation_results"]
    final = results[results["checkpoint"] == "final"]
    for variant in ("sft_continue", "grpo", "mix_0p5", "mix_matched", "random_gate", "adagrpo"):
        hr = final.loc[final["variant"] == variant, "hr@10"]
        row = summary[(summary["variant"] == variant) & (summary["checkpoint"] == "final")].iloc[0]
        assert row["seeds"] == 2 and row["hr@10_mean"] == hr.mean() and abs(row["hr@10_std"] - hr.std(ddof=1)) < 1e-12
    assert out["evaluation_strata"].groupby("variant")["samples"].sum().eq(60).all()
    # seeds differ in the RL stage only: the two adagrpo runs trained on other batches and rollouts
    h0, h1 = out["adagrpo.seed_0.training_history"], out["adagrpo.seed_1.training_history"]
    assert not np.allclose(h0["reward_mean"].iloc[1:], h1["reward_mean"].iloc[1:])
    assert "2 seeds [0, 1]" in out["report_md"]
    # every variant against SFT and sft_continue, AdaGRPO against each control, seeds averaged per user
    paired = out["evaluation_paired"].set_index(["model", "checkpoint", "against", "metric"])
    for rival in ("sft", "sft_continue", "random_gate", "mix_matched", "grpo", "mix_0p5"):
        assert paired.loc[("adagrpo", "best", rival, "hr@10_filtered"), "seeds"] == 2
    seeds = [out[f"adagrpo.seed_{s}.test_hits"] for s in (0, 1)]
    mean = sum(h[h["checkpoint"] == "final"].set_index("user_id")["hit@10_filtered"] for h in seeds) / 2
    sft_hits = out["sft_strata"].set_index("user_id")["hit@10_filtered"]
    assert paired.loc[("adagrpo", "final", "sft", "hr@10_filtered"), "delta"] == pytest.approx(
        (mean - sft_hits.reindex(mean.index)).mean())
    assert '"tuned_settings"' in out["report_md"]  # the report shows what every variant trained with
    entry = out["summary_json"]["models"]["random_gate"]["checkpoints"]["best"]
    assert set(entry) == {"metrics", "delta_vs_sft", "delta_vs_sft_continue"}
    # the controls' dose follows the gate batch by batch: mix_matched weighs every sample by λ x the admitted share
    h = out["mix_matched.seed_0.training_history"].iloc[1:]
    lam = tuned["tuned_settings"]["variants"]["mix_matched"]["params"]["lam"]
    assert np.allclose(h["grpo_dose"], lam * h["admitted"])
    # the reference models trained with each seed: their own rows, their spread, the paired difference
    assert out["sft.seed_1.sft_policy"].config["seed"] == 1 and out["sasrec.seed_1.sasrec_model"].config["seed"] == 1
    seeded = results[results["variant"].isin(["sft", "sasrec"]) & results["seed"].notna()]
    assert sorted(seeded["model"]) == ["sasrec.seed_0", "sasrec.seed_1", "sft.seed_0", "sft.seed_1"]
    sft_rows = seeded[seeded["variant"] == "sft"].sort_values("seed")
    # each seed's row is its own model: the two seeds trained different weights, and each row is that model's evaluation
    w0, w1 = (out[f"sft.seed_{k}.sft_policy"].tensors for k in (0, 1))
    assert any(not torch.equal(w0[name], w1[name]) for name in w0)
    for seed, row in sft_rows.set_index("seed").iterrows():
        own = out[f"sft.seed_{int(seed)}.evaluation"].iloc[0]
        assert row["ndcg@10"] == own["ndcg@10"] and row["hr@10_filtered"] == own["hr@10_filtered"]
    metrics = out["evaluation_metrics"]
    assert metrics["reference.sft.hr_at_10_filtered_mean"]["value"] == pytest.approx(sft_rows["hr@10_filtered"].mean())
    diff = (sft_rows.set_index("seed")["hr@10_filtered"]
            - seeded[seeded["variant"] == "sasrec"].set_index("seed")["hr@10_filtered"])
    assert "## Reference models over seeds" in out["report_md"]
    assert f"mean {diff.mean():+.4f} ± {diff.std(ddof=1):.4f} over 2 seeds" in out["report_md"]
    assert set(out["reference_hits"]["model"]) >= {"sft.seed_0", "sasrec.seed_1"}


def test_each_pipeline_reads_what_an_earlier_one_writes_or_the_raw_source() -> None:
    """No pipeline needs a dataset that no stage produces (besides parameters)."""
    plan = RunPlan.from_params(AdaGrpoParams())
    stages = [ingest.create_pipeline(), tokenize.create_pipeline(), sft.create_pipeline(), reward.create_pipeline(),
              adagrpo.create_pipeline([plan.main]), evaluate.create_pipeline([plan.main])]
    main = sum(stages[1:], stages[0])
    free = {i for i in main.inputs() if not i.startswith("params:")}
    assert free == set(), free
    assert compare.create_pipeline(plan.compare).inputs() - {f"params:{k}" for k in MODELS} == {
        f"params:runs.{r.namespace}" for r in plan.compare} | set(adagrpo.pipeline.SHARED_INPUTS) | {
        "test_sequences", "items", "ranker_evaluation", "ranker_test_hits", "reward_informativeness", "tuned_settings"}
