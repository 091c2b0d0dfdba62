"""Typed parameters: the shipped conf validates, bad values are named by their key."""

from __future__ import annotations

import pytest
from kedro.config import OmegaConfigLoader

from adagrpo_pipeline.params import ParameterError, validate_stage_params
from adagrpo_pipeline.recdata.config import IngestParams

from conftest import REPO


def test_shipped_parameters_validate() -> None:
    params = OmegaConfigLoader(str(REPO / "conf"), base_env="base", default_run_env="base")["parameters"]
    typed = validate_stage_params(params)
    p = typed["ingest"]
    assert isinstance(p, IngestParams)
    assert p.source == "movielens_100k" and p.exposure_policy.slate_size == 10
    assert p.exposure_thresholds["catalog_coverage"].direction == "min"


def test_bad_values_are_named() -> None:
    with pytest.raises(ParameterError) as err:
        validate_stage_params({"ingest": {"source": "netflix", "user_core": 2, "synthetic": {"n_users": 1, "colour": 3}}})
    msg = str(err.value)
    assert "params:ingest.source: Input should be 'movielens_100k'" in msg
    assert "params:ingest.synthetic.n_users: Input should be greater than or equal to 2" in msg
    assert "params:ingest.synthetic.colour: Extra inputs are not permitted" in msg
    with pytest.raises(ParameterError, match="user_core must be >= 3"):
        validate_stage_params({"ingest": {"user_core": 2}})
