"""Shared fixtures: throw-away Kedro projects (the repo's conf, an isolated data/ and MLflow
store) and a session runner."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
ML100K = REPO / "data" / "01_raw" / "ml-100k"
DATA_LAYERS = ("01_raw", "02_intermediate", "03_primary", "04_feature", "05_model_input", "06_models",
               "07_model_output", "08_reporting")

# A synthetic source small enough for a whole ingest run in a few seconds.
TINY_SYNTHETIC = {
    "n_users": 60,
    "n_items": 90,
    "n_categories": 4,
    "n_brands": 6,
    "requests_per_user": 20,
    "seed": 3,
}

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "true")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    run_slow = os.environ.get("RUN_SLOW") == "1"
    has_cuda = None
    for item in items:
        if "slow" in item.keywords and not run_slow:
            item.add_marker(pytest.mark.skip(reason="slow test: set RUN_SLOW=1 to run it"))
        if "gpu" in item.keywords:
            if has_cuda is None:
                import torch

                has_cuda = torch.cuda.is_available()
            if not has_cuda:
                item.add_marker(pytest.mark.skip(reason="needs a CUDA device; none is available"))


def make_project(dest: Path, mlflow_db: Path) -> Path:
    """A Kedro project at `dest` with the repo's conf and code, its own data/ and MLflow DB."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copytree(REPO / "conf", dest / "conf", ignore=shutil.ignore_patterns("local"))
    (dest / "conf" / "local").mkdir()
    (dest / "conf" / "local" / "mlflow.yml").write_text(
        "server:\n"
        f"  mlflow_tracking_uri: sqlite:///{mlflow_db}\n"
        "  mlflow_registry_uri: null\n"
        "  credentials: null\n"
        "  request_header_provider: {type: null, pass_context: False, init_kwargs: {}}\n"
    )
    for name in ("pyproject.toml", ".telemetry"):
        shutil.copy(REPO / name, dest / name)
    (dest / "src").mkdir()  # the package itself is installed (editable) in the environment
    for layer in DATA_LAYERS:
        (dest / "data" / layer).mkdir(parents=True)
    return dest


@pytest.fixture(scope="session")
def mlflow_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mlflow") / "mlflow.db"


@pytest.fixture
def project(tmp_path: Path, mlflow_db: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = make_project(tmp_path / "project", mlflow_db)
    monkeypatch.chdir(path)
    return path


def run_session(project: Path, pipeline: str = "ingest", params: dict[str, Any] | None = None, **kwargs: Any) -> dict:
    """Run a pipeline in a real KedroSession (hooks, catalog, kedro-mlflow) of `project`."""
    import mlflow
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(project)
    try:
        with KedroSession.create(project_path=project, runtime_params=params or {}) as session:
            return session.run(pipeline_names=[pipeline], **kwargs)
    finally:
        # kedro-mlflow re-enters its run in every node (for thread safety) and ends it once,
        # leaving it on this process's active-run stack: clear it so the next session in the
        # same process starts its own run, as a new `kedro run` process would.
        while mlflow.active_run() is not None:
            mlflow.end_run()


def derived_files(project: Path) -> list[Path]:
    """Every file that runs wrote under data/02..08 (versions included)."""
    return sorted(
        p for layer in DATA_LAYERS[1:] for p in (project / "data" / layer).rglob("*") if p.is_file()
    )


@pytest.fixture
def tiny_synthetic_params() -> dict[str, Any]:
    return {"ingest": {"source": "synthetic", "synthetic": dict(TINY_SYNTHETIC)}}
