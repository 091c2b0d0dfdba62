"""The controlled study's pieces: the oracle reward is the simulator's relevance, the ranker's
view of the latent vectors, the plan and its settings, the premise verdicts, the confidence
level the report states, and the report node's inputs from the plan."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from adagrpo_pipeline.pipelines import study
from adagrpo_pipeline.recdata.config import IngestParams
from adagrpo_pipeline.recdata.prepare import prepare
from adagrpo_pipeline.recdata.simulator import SyntheticParams, simulate
from adagrpo_pipeline.reward.config import RewardParams
from adagrpo_pipeline.reward.model import load_ranker
from adagrpo_pipeline.reward.oracle import CALIBRATION, OracleRanker, oracle_checkpoint
from adagrpo_pipeline.reward.reward import RewardModel
from adagrpo_pipeline.stats import Bootstrap
from adagrpo_pipeline.study.config import StudyParams, StudyPlan
from adagrpo_pipeline.study.outcomes import ranker_view
from adagrpo_pipeline.study.tables import StudyInputs, premise_verdicts
from adagrpo_pipeline.study.text import ci_text

from conftest import TINY_STUDY


@pytest.fixture(scope="module")
def derived():
    raw = simulate(SyntheticParams(n_users=60, n_items=90, n_categories=4, n_brands=6, requests_per_user=20, seed=3,
                                   latent_attributes=True))
    return raw, prepare(raw, IngestParams(source="synthetic"))


def test_simulator_exposes_latent_vectors_without_changing_the_logs(derived) -> None:
    raw, _ = derived
    plain = simulate(SyntheticParams(n_users=60, n_items=90, n_categories=4, n_brands=6, requests_per_user=20, seed=3))
    pd.testing.assert_frame_equal(plain.interactions, raw.interactions)
    pd.testing.assert_frame_equal(plain.relevance, raw.relevance)
    latent = raw.items[[f"latent_{j}" for j in range(16)]].to_numpy()
    assert np.allclose(np.linalg.norm(latent, axis=1), 1.0) and plain.users is None
    assert list(raw.users.columns) == ["user_id", *(f"latent_{j}" for j in range(16))]
    # the users' final vectors give the ground truth: sigmoid(scale <u, v> + quality + bias) is monotone
    # in <u, v> for a fixed item, so per item the relevance order over users is the inner product's
    u = raw.users[[f"latent_{j}" for j in range(16)]].to_numpy()
    rel = raw.relevance.pivot(index="user_id", columns="item_id", values="relevance").to_numpy()
    dots = u @ latent.T
    for item in range(5):
        assert (np.argsort(dots[:, item]) == np.argsort(rel[:, item])).all()


def test_the_oracle_reward_equals_the_simulators_relevance(derived) -> None:
    _, d = derived
    n_users, n_items = len(d.users), len(d.items)
    ckpt = oracle_checkpoint(d.relevance, n_users, n_items)
    ranker = load_ranker(ckpt)
    assert isinstance(ranker, OracleRanker)
    oracle = RewardModel.from_artifacts(ckpt, CALIBRATION, RewardParams(seen_item_reward="invalid"))
    rng = np.random.default_rng(0)
    users = np.arange(n_users)
    cand = rng.integers(0, n_items, size=(n_users, 6))
    cand[:, 0] = -1  # an invalid sequence
    histories = [np.array([c]) for c in cand[:, 1]]  # candidate 1 is in the history
    got = oracle(histories, torch.as_tensor(cand), users).numpy()
    truth = d.relevance.set_index(["user_id", "item_id"])["relevance"]
    want = np.array([[0.0 if i == row[1] else truth[(u, i)] for i in row[2:]]  # a repeat of the history item: seen
                     for u, row in zip(users, cand, strict=True)])
    np.testing.assert_allclose(got[:, 2:], want, rtol=1e-5, atol=1e-6)
    assert (got[:, 0] == 0.0).all() and (got[:, 1] == 0.0).all()  # invalid, and seen = invalid reward
    with pytest.raises(ValueError, match="full relevance table"):
        oracle_checkpoint(d.relevance.iloc[1:], n_users, n_items)
    with pytest.raises(ValueError, match="user ids"):
        oracle.raw_scores(histories, torch.as_tensor(cand))


def test_the_ranker_sees_the_latent_vectors_with_the_noise_of_its_information_level(derived) -> None:
    _, d = derived
    cols = [f"latent_{j}" for j in range(16)]
    assert not set(cols) & set(ranker_view(d.items, None, np.random.default_rng(0)).columns)
    exact = ranker_view(d.items, 0.0, np.random.default_rng(0))
    pd.testing.assert_frame_equal(exact, d.items)
    noisy = ranker_view(d.users, 0.5, np.random.default_rng(0))  # users: attributes stored as strings
    x, y = (t[cols].astype(float).to_numpy() for t in (d.users, noisy))
    corr = np.mean([np.corrcoef(x[:, j], y[:, j])[0, 1] for j in range(16)])
    assert 0.8 < corr < 0.95  # 1 / sqrt(1 + 0.5^2) = 0.894
    with pytest.raises(ValueError, match="latent_attributes: true"):
        ranker_view(d.items.drop(columns=cols), 0.5, np.random.default_rng(0))


def test_the_plan_has_every_variant_per_setting_and_stage_settings_per_level() -> None:
    plan = StudyPlan.from_params(StudyParams.model_validate(TINY_STUDY))
    namespaces = {r.spec.namespace for r in plan.runs}
    assert len(plan.runs) == 2 * (2 + 2 * 6)
    assert {"study.none.sft_continue", "study.none.oracle.uniform", "study.strong.latent.oracle_gate",
            "study.strong.policy_only.adagrpo"} <= namespaces
    settings = plan.stage_settings({"ingest": {"source": "movielens_100k"}, "sft": {}, "reward": {}, "adagrpo": {}})
    assert settings["strong"]["ingest"].synthetic.exposure_gamma == 2.0
    assert settings["strong"]["ingest"].synthetic.latent_attributes and settings["none"]["ingest"].source == "synthetic"
    assert settings["none"]["sft"].state_dir == "data/06_models/study_state/none/sft"
    assert settings["none"]["latent"]["reward"].ranker.state_dir == "data/06_models/study_state/none/latent/ranker"
    assert settings["none"]["latent"]["attribute_noise"] == 0.5 and settings["none"]["policy_only"]["attribute_noise"] is None
    assert settings["adagrpo"].max_steps == 4
    one = StudyPlan.from_params(StudyParams.model_validate({**TINY_STUDY, "only_levels": ["strong"]}))
    assert {r.level for r in one.runs} == {"strong"} and len(one.runs) == 14


def test_bad_study_parameters_name_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="unknown bias level"):
        StudyParams.model_validate({**TINY_STUDY, "only_levels": ["extreme"]})
    with pytest.raises(ValueError, match="distinct, lower-case identifiers"):
        StudyParams.model_validate({**TINY_STUDY, "information": [{"name": "oracle", "attribute_noise": None}]})
    with pytest.raises(ValueError, match="set per level"):
        StudyParams.model_validate({**TINY_STUDY, "synthetic": {"exposure_gamma": 1.0}})
    plan = StudyPlan.from_params(StudyParams.model_validate(
        {**TINY_STUDY, "overrides": {"sft": {"max_steps": 0}}}))
    with pytest.raises(ValueError, match=r"(?s)study_settings\.none\.sft .*max_steps"):
        plan.stage_settings({})


def _premise(effects: dict[str, str]) -> pd.DataFrame:
    admitted = "uncertain policy, ranker right (admitted)"
    return pd.DataFrame([{"level": "l", "information": "i", "strata_by": "ranker", "reward": "oracle", "metric": "m",
                          "stratum": s, "admitted_stratum": s == admitted, "effect": 0.01, "effect_call": call}
                         for s, call in effects.items()])


def test_premise_verdicts() -> None:
    a, r1, r2, r3 = ("uncertain policy, ranker right (admitted)", "uncertain policy, ranker wrong",
                     "confident policy, ranker right", "confident policy, ranker wrong")
    verdict = premise_verdicts(_premise({a: "above", r1: "not resolved", r2: "below", r3: "not resolved"}))
    assert verdict["verdict"].tolist() == ["holds"] and verdict["rejected_losses"].tolist() == [1]
    verdict = premise_verdicts(_premise({a: "above", r1: "above", r2: "below", r3: "not resolved"}))
    assert verdict["verdict"].iloc[0].startswith("partly") and r1 in verdict["verdict"].iloc[0]
    verdict = premise_verdicts(_premise({a: "not resolved", r1: "not resolved", r2: "not resolved", r3: "below"}))
    assert verdict["verdict"].iloc[0] == "no: the admitted stratum does not gain (not resolved)"


def test_the_study_states_the_level_and_resamples_of_its_bootstrap() -> None:
    x = StudyInputs(StudyPlan.from_params(StudyParams.model_validate(TINY_STUDY)), {}, {}, {}, {}, {})
    assert x.boot == Bootstrap(resamples=200, seed=0)  # study.evaluate's settings, the default level
    assert ci_text(x.boot) == "95% percentile bootstrap over test users, 200 resamples; one seed per run, so no seed variance"
    assert ci_text(Bootstrap(resamples=500, level=0.9)).startswith("90% percentile bootstrap over test users, 500 resamples")


def test_the_report_node_is_given_the_plan_by_the_factory() -> None:
    """Per level its SFT outcomes and exposure, per level x information the SFT diagnostics and
    the ranker's informativeness, per run (plan order) its outcomes and history."""
    plan = StudyPlan.from_params(StudyParams.model_validate({**TINY_STUDY, "only_levels": ["strong"]}))
    (node,) = study.create_pipeline(plan).only_nodes("study.report").nodes
    per_ranker = [f"study.strong.{i}.{d}" for i in ("policy_only", "latent")
                  for d in ("sft_diagnostics", "reward_informativeness", "ranker_relevance_by_decile")]
    per_run = [f"{r.spec.namespace}.{d}" for r in plan.runs for d in ("study_outcomes", "training_history")]
    assert node.inputs == ["params:study", "study.strong.sft_outcomes", "study.strong.exposure_metrics", *per_ranker,
                           *per_run]
    assert len(per_run) == 2 * 14 and per_run[:2] == ["study.strong.sft_continue.study_outcomes",
                                                     "study.strong.sft_continue.training_history"]
    with pytest.raises(ValueError, match="differs from the parameters the study pipeline was built from"):
        node.func(StudyParams.model_validate(TINY_STUDY), *([None] * (len(node.inputs) - 1)))
