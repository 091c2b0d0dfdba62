"""Typed parameters: the shipped conf validates; Kedro rejects bad values before any node runs."""

from __future__ import annotations

import pytest
import yaml
from pydantic import ValidationError

from adagrpo_pipeline.adagrpo.config import AdaGrpoParams
from adagrpo_pipeline.adagrpo.tuning import TuneParams
from adagrpo_pipeline.context import RunPlanError, plan_from_parameters
from adagrpo_pipeline.policy.config import EvaluateParams, SftParams
from adagrpo_pipeline.recdata.config import IngestParams
from adagrpo_pipeline.reward.config import RewardParams
from adagrpo_pipeline.semantic_ids.config import TokenizeParams
from adagrpo_pipeline.study.config import StudyParams
from adagrpo_pipeline.tracking import flatten, metric_name, metrics_payload

from conftest import REPO, load_parameters


def test_shipped_parameters_validate() -> None:
    params = load_parameters()
    p = IngestParams.model_validate(params["ingest"])
    assert p.source == "movielens_100k" and p.exposure_policy.slate_size == 10
    assert p.exposure_thresholds["catalog_coverage"].direction == "min"


def test_model_names_bad_fields() -> None:
    with pytest.raises(ValidationError) as err:
        IngestParams.model_validate({"source": "netflix", "synthetic": {"n_users": 1, "colour": 3}})
    locs = {".".join(map(str, e["loc"])) for e in err.value.errors()}
    assert locs == {"source", "synthetic.n_users", "synthetic.colour"}
    with pytest.raises(ValidationError, match="user_core must be >= 3"):
        IngestParams(user_core=2)


def test_flatten_for_mlflow() -> None:
    assert flatten("ingest", {"a": {"b": 1, "c": None}, "d": {}, "e": [1, 2]}) == {
        "ingest.a.b": "1", "ingest.a.c": "None", "ingest.d": "{}", "ingest.e": "[1, 2]"}


def test_mlflow_metric_names() -> None:
    assert metric_name("sft.valid_hr@10") == "sft.valid_hr_at_10"
    assert metrics_payload({"hr@10": 0.5, "nan": float("nan")}, step=3, prefix="sft.") == {
        "sft.hr_at_10": {"value": 0.5, "step": 3}}


MODELS = {"ingest": IngestParams, "tokenize": TokenizeParams, "sft": SftParams, "evaluate": EvaluateParams,
          "reward": RewardParams, "adagrpo": AdaGrpoParams, "tune": TuneParams, "study": StudyParams}


@pytest.mark.parametrize("stage", list(MODELS))
def test_yaml_and_model_defaults_are_the_same(stage: str) -> None:
    """Deleting a line of conf/base/parameters_<stage>.yml must not change the run."""
    files = list((REPO / "conf/base").glob(f"parameters_{stage}.yml"))
    assert files, stage
    assert MODELS[stage].model_validate(load_parameters()[stage]) == MODELS[stage]()


def test_gpu_environment_lists_only_what_it_changes_and_has_the_tiger_size() -> None:
    gpu, base = load_parameters("gpu"), load_parameters()
    sft = SftParams.model_validate(gpu["sft"])
    assert (sft.model.num_layers, sft.model.num_decoder_layers, sft.model.d_model, sft.model.num_heads, sft.model.d_ff) == (4, 4, 128, 6, 1024)
    assert sft.weight_decay == SftParams.model_validate(base["sft"]).weight_decay  # merged from base, not repeated
    raw = yaml.safe_load((REPO / "conf/gpu/parameters_sft.yml").read_text())["sft"]
    assert "weight_decay" not in raw and "device" not in raw
    base_sft = SftParams.model_validate(base["sft"])
    assert base_sft.model.d_model == 64 and base_sft.max_steps == 2000
    TokenizeParams.model_validate(gpu["tokenize"])


def test_the_plan_of_runs_follows_the_environment() -> None:
    base, gpu = (plan_from_parameters(load_parameters(env)) for env in (None, "gpu"))
    assert sorted({r.seed for r in base.compare}) == [0, 1, 2] and sorted({r.seed for r in gpu.compare}) == [0, 1, 2, 3, 4]
    assert [r.namespace for r in gpu.compare[:6]] == ["sft_continue.seed_0", "grpo.seed_0", "mix_0p5.seed_0",
                                                      "mix_matched.seed_0", "random_gate.seed_0", "adagrpo.seed_0"]
    assert base.references == () and gpu.references == ()  # reference retraining is opt-in (adagrpo.reference_seeds)
    assert base.main.namespace == "adagrpo" and base.main.seed == 0 and base.main.kind == "adagrpo"


@pytest.mark.parametrize(("override", "message"), [
    ({"adagrpo": {"seeds": 5}}, "seeds\n  Input should be a valid list"),
    ({"adagrpo": {"seeds": [1, 1]}}, "seeds must be distinct"),
    ({"adagrpo": {"mix_alphas": [0.5, 0.50]}}, "mix_alphas must be distinct"),
    ({"runs": {"adagrpo": {"seed": 3}}}, "the parameter 'runs' is derived from adagrpo.mix_alphas"),
])
def test_a_plan_that_cannot_take_effect_is_an_error(override: dict, message: str) -> None:
    with pytest.raises(RunPlanError, match=message):
        plan_from_parameters({**load_parameters(), **override})
