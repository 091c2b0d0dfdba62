"""Shared fixtures and helpers.

Tiers: `pytest` runs the default tier (unit tests and in-memory pipeline tests); `pytest -m
slow` runs the tests that start real Kedro sessions or `kedro` commands in throw-away projects
(the repo's conf, an isolated data/ and MLflow store), the notebook and viz. CI runs both.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
ML100K = REPO / "data" / "01_raw" / "ml-100k"
DATA_LAYERS = ("01_raw", "02_intermediate", "03_primary", "04_feature", "05_model_input", "06_models",
               "07_model_output", "08_reporting")
KEDRO = str(Path(sys.executable).parent / "kedro")

# A synthetic source small enough for a whole ingest run in a few seconds.
TINY_SYNTHETIC = {
    "n_users": 60,
    "n_items": 90,
    "n_categories": 4,
    "n_brands": 6,
    "requests_per_user": 20,
    "seed": 3,
}

# Every stage at a size that runs end to end in seconds (60 users, 90 items).
TINY_RUN = {
    "ingest": {"source": "synthetic", "synthetic": dict(TINY_SYNTHETIC)},
    "tokenize": {"levels": 2, "codebook_size": 8, "dedup_size": 16, "kmeans": {"n_init": 1}},
    "sft": {"model": {"d_model": 32, "d_kv": 8, "d_ff": 64, "num_layers": 1, "num_decoder_layers": 1, "num_heads": 4},
            "max_items": 5, "batch_size": 64, "max_steps": 30, "warmup_steps": 5, "eval_every": 15,
            "checkpoint_every": 15, "eval_users": 30, "eval_beams": 10},
    "reward": {"ranker": {"model": {"d_model": 16, "num_layers": 1, "num_heads": 2, "d_ff": 32}, "max_history": 8,
                          "batch_size": 64, "max_steps": 30, "eval_every": 10}, "report": {"negatives": 20}},
    "adagrpo": {"batch_size": 32, "max_steps": 6, "warmup_steps": 2, "checkpoint_every": 3, "eval_every": 3, "eval_users": 20,
                "eval_beams": 10, "rollout": {"group_size": 4}, "seeds": [0, 1], "reference_seeds": [0, 1],
                "mix_alphas": [0.5]},
    "tune": {"trials": 2, "max_steps": 3, "eval_every": 3, "eval_users": 20},
    "evaluate": {"ks": [5, 10], "beam_factor": 2,
                 "sasrec": {"model": {"d_model": 16, "num_layers": 1, "num_heads": 2, "d_ff": 32}, "max_history": 8,
                            "batch_size": 64, "max_steps": 40, "eval_every": 10}},
}

# The controlled study at a size that runs end to end in a couple of minutes: two bias levels,
# two information levels, on TINY_RUN's stage sizes.
TINY_STUDY = {
    "synthetic": {**{k: v for k, v in TINY_SYNTHETIC.items() if k != "seed"}, "n_users": 80, "seed": 3},
    "bias_levels": [{"name": "none", "exposure_gamma": 0.0}, {"name": "strong", "exposure_gamma": 2.0}],
    "information": [{"name": "policy_only", "attribute_noise": None}, {"name": "latent", "attribute_noise": 0.5}],
    "overrides": {"sft": {"max_steps": 30, "eval_every": 15, "checkpoint_every": 15, "eval_users": 30},
                  "reward": {"ranker": {"max_steps": 20, "eval_every": 10, "checkpoint_every": 10},
                             "informativeness": {"resamples": 200, "random_draws": 5}},
                  "adagrpo": {"max_steps": 4, "checkpoint_every": 2, "eval_every": 2, "eval_users": 20}},
    "evaluate": {"beams": 20, "batch_size": 64, "bootstrap_resamples": 200},
}

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "true")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    has_cuda = None
    for item in items:
        if "gpu" in item.keywords:
            if has_cuda is None:
                import torch

                has_cuda = torch.cuda.is_available()
            if not has_cuda:
                item.add_marker(pytest.mark.skip(reason="needs a CUDA device; none is available"))


# --------------------------------------------------------------------------- configuration
def load_parameters(env: str | None = None) -> dict[str, Any]:
    """The repo's parameters as a run in `env` reads them (the project's loader settings)."""
    from kedro.config import OmegaConfigLoader

    from adagrpo_pipeline.settings import CONFIG_LOADER_ARGS

    return OmegaConfigLoader(str(REPO / "conf"), **{**CONFIG_LOADER_ARGS, "default_run_env": env or "base"})["parameters"]


# --------------------------------------------------------------------------- throw-away projects
def merged(base: dict, over: dict) -> dict:
    """`base` with `over` merged into it key by key at every depth (a copy; `over` wins)."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = merged(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


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


def write_tiny_conf(project: Path) -> None:
    """`conf/local/parameters_tiny.yml` = TINY_RUN: every stage of the project at tiny size."""
    (project / "conf/local/parameters_tiny.yml").write_text(yaml.safe_dump({**TINY_RUN, "study": TINY_STUDY}))


@pytest.fixture(scope="session")
def mlflow_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mlflow") / "mlflow.db"


@pytest.fixture
def project(tmp_path: Path, mlflow_db: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = make_project(tmp_path / "project", mlflow_db)
    monkeypatch.chdir(path)
    return path


def run_session(project: Path, pipeline: str | None = "ingest", params: dict[str, Any] | None = None,
                env: str | None = None, **kwargs: Any) -> dict:
    """Run a pipeline (None: the default) in a real KedroSession (hooks, catalog, kedro-mlflow)."""
    import mlflow
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(project)
    try:
        with KedroSession.create(project_path=project, runtime_params=params or {}, env=env) as session:
            return session.run(pipeline_names=[pipeline] if pipeline else None, **kwargs)
    finally:
        # kedro-mlflow re-enters its run in every node (for thread safety) and ends it once,
        # leaving it on this process's active-run stack: clear it so the next session in the
        # same process starts its own run, as a new `kedro run` process would.
        while mlflow.active_run() is not None:
            mlflow.end_run()


def kedro(project: Path, *args: str, check: bool = True, timeout: int = 900) -> str:
    """`kedro <args>` as a user types it, in `project`; its stdout + stderr. With `check`, a
    non-zero exit fails the test with the end of the output."""
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true"}
    proc = subprocess.run([KEDRO, *args], cwd=project, env=env, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    out = proc.stdout + proc.stderr
    if check:
        assert proc.returncode == 0, out[-4000:]
    elif proc.returncode == 0:
        raise AssertionError(f"`kedro {' '.join(args)}` succeeded where it should fail:\n{out[-2000:]}")
    return out


def ran_nodes(output: str) -> set[str]:
    """The nodes a `kedro run` log says it completed."""
    return set(re.findall(r"Completed node: (\S+)", output))


def versions(project: Path, relpath: str) -> list[Path]:
    """Every saved version of a versioned dataset, oldest first (the file/folder inside each)."""
    root = project / relpath
    return [v / root.name for v in sorted(root.iterdir())]


def derived_files(project: Path) -> list[Path]:
    """Every file that runs wrote under data/02..08 (versions included)."""
    return sorted(
        p for layer in DATA_LAYERS[1:] for p in (project / "data" / layer).rglob("*") if p.is_file()
    )


@pytest.fixture
def tiny_synthetic_params() -> dict[str, Any]:
    return {"ingest": {"source": "synthetic", "synthetic": dict(TINY_SYNTHETIC)}}
