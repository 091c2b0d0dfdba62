"""Real Kedro sessions in a throw-away project: parameters are validated before any node runs,
and the pipelines are built from the plan of runs of the session's own configuration."""

from __future__ import annotations

from pathlib import Path

import pytest
from kedro.framework.project import pipelines
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
from kedro.validation import ParameterValidationError

from conftest import derived_files, run_session

pytestmark = pytest.mark.slow


def _compare_runs(project: Path, **session_args) -> set[str]:
    """Namespaces of the training nodes of `compare` as a session with these arguments builds it."""
    bootstrap_project(project)
    with KedroSession.create(project_path=project, **session_args) as session:
        session.load_context()
        return {n.namespace for n in pipelines["compare"].nodes if n.name.endswith(".train_policy")}


def test_kedro_rejects_bad_runtime_params_before_any_node(project: Path) -> None:
    with pytest.raises(ParameterValidationError) as err:
        run_session(project, params={"ingest": {"source": "synthetic", "max_history": 0}})
    assert "max_history" in str(err.value) and "greater than or equal to 1" in str(err.value)
    assert derived_files(project) == []


def test_each_session_builds_compare_from_its_own_parameters_and_environment(project: Path) -> None:
    variants = ("sft_continue", "grpo", "mix_0p5", "mix_matched", "random_gate", "adagrpo")
    assert _compare_runs(project) == {f"{v}.seed_{s}" for v in variants for s in (0, 1, 2)}
    assert _compare_runs(project, runtime_params={"adagrpo": {"seeds": [5], "mix_alphas": [0.3]}}) == {
        f"{v}.seed_5" for v in ("sft_continue", "grpo", "mix_0p3", "mix_matched", "random_gate", "adagrpo")}
    assert _compare_runs(project, env="gpu") == {f"{v}.seed_{s}" for v in variants for s in range(5)}
    assert len(_compare_runs(project)) == 18  # and back: nothing of the previous session is kept
