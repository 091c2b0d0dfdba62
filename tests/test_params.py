"""Typed parameters: the shipped conf validates; Kedro rejects bad values before any node runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from kedro.config import OmegaConfigLoader
from kedro.validation import ParameterValidationError
from pydantic import ValidationError

from adagrpo_pipeline.tracking import flatten, metric_name, metrics_payload
from adagrpo_pipeline.recdata.config import IngestParams

from conftest import REPO, derived_files, run_session


def test_shipped_parameters_validate() -> None:
    params = OmegaConfigLoader(str(REPO / "conf"), base_env="base", default_run_env="base")["parameters"]
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


def test_kedro_rejects_bad_runtime_params_before_any_node(project: Path) -> None:
    with pytest.raises(ParameterValidationError) as err:
        run_session(project, params={"ingest": {"source": "synthetic", "max_history": 0}})
    assert "max_history" in str(err.value) and "greater than or equal to 1" in str(err.value)
    assert derived_files(project) == []


def test_flatten_for_mlflow() -> None:
    assert flatten("ingest", {"a": {"b": 1, "c": None}, "d": {}, "e": [1, 2]}) == {
        "ingest.a.b": "1", "ingest.a.c": "None", "ingest.d": "{}", "ingest.e": "[1, 2]"}


def test_mlflow_metric_names() -> None:
    assert metric_name("sft.valid_hr@10") == "sft.valid_hr_at_10"
    assert metrics_payload({"hr@10": 0.5, "nan": float("nan")}, step=3, prefix="sft.") == {
        "sft.hr_at_10": {"value": 0.5, "step": 3}}


def test_gpu_environment_has_the_tiger_size() -> None:
    from adagrpo_pipeline.policy.config import SftParams
    from adagrpo_pipeline.semantic_ids.config import TokenizeParams

    params = OmegaConfigLoader(str(REPO / "conf"), base_env="base", default_run_env="gpu")["parameters"]
    sft = SftParams.model_validate(params["sft"])
    assert (sft.model.num_layers, sft.model.num_decoder_layers, sft.model.d_model, sft.model.num_heads, sft.model.d_ff) == (4, 4, 128, 6, 1024)
    base = SftParams.model_validate(OmegaConfigLoader(str(REPO / "conf"), base_env="base", default_run_env="base")["parameters"]["sft"])
    assert base.model.d_model == 64 and base.max_steps == 2000
    TokenizeParams.model_validate(params["tokenize"])
