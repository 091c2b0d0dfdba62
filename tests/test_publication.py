"""Fault drills: a stage's outputs become visible together or not at all (commit manifests), a
damaged artifact is named, and a killed `kedro run` re-runs to the same result as an
uninterrupted one."""

from __future__ import annotations

import copy
import json
import logging
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from kedro_datasets.pandas import ParquetDataset

from adagrpo_pipeline.datasets import SafetensorsDataset
from adagrpo_pipeline.publication import ArtifactIntegrityError, Manifests

from conftest import KEDRO, TINY_RUN, TINY_SYNTHETIC, make_project, run_session, versions

pytestmark = pytest.mark.slow


def _ingest(users: int, items: int) -> dict[str, Any]:
    return {"ingest": {"source": "synthetic", "synthetic": {**TINY_SYNTHETIC, "n_users": users, "n_items": items}}}


def _committed(project: Path, dataset: str) -> list[str]:
    return sorted(Manifests(project / "data" / "09_commits").committed(dataset))


def _failing_save(monkeypatch: pytest.MonkeyPatch, cls: type, fragment: str) -> None:
    """Make `cls.save` fail for the dataset whose path contains `fragment` (a full disk, say)."""
    original = cls.save

    def save(self: Any, data: Any) -> None:
        if fragment in str(self._filepath):
            raise OSError(28, f"No space left on device (drill) writing {self._filepath}")
        original(self, data)

    monkeypatch.setattr(cls, "save", save)


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())

    def readouterr(self) -> str:
        text, self.lines = "\n".join(self.lines), []
        return text


@pytest.fixture
def hook_log(monkeypatch: pytest.MonkeyPatch) -> _Records:
    """What the publication hook logs (through `publication`, where its rules live). Each session's
    logging set-up (dictConfig) empties the handlers of every logger under `adagrpo_pipeline`, so
    `publication` logs to a logger outside it."""
    from adagrpo_pipeline import publication

    handler, logger = _Records(), logging.getLogger("publication_drill")
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    monkeypatch.setattr(publication, "log", logger)
    yield handler
    logger.removeHandler(handler)


def _loaded(project: Path, name: str) -> Any:
    """What a new session's catalog loads for `name` (the newest committed version)."""
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(project)
    with KedroSession.create(project_path=project) as session:
        return session.load_context().catalog.load(name)


def test_a_save_that_fails_mid_stage_leaves_the_previous_versions_latest(
        tmp_path: Path, mlflow_db: Path, monkeypatch: pytest.MonkeyPatch, hook_log: _Records) -> None:
    project = make_project(tmp_path / "project", mlflow_db)
    monkeypatch.chdir(project)
    run_session(project, "ingest", params=_ingest(60, 90))
    good = {n: [v.parent.name for v in versions(project, p)]  # version names, as the manifests list them
            for n, p in (("user_map", "data/02_intermediate/user_map.parquet"),
                         ("test_sequences", "data/05_model_input/test_sequences.parquet"))}
    users_before = len(_loaded(project, "user_map"))

    with monkeypatch.context() as mp:  # ingest of 61 users whose test_sequences cannot be written
        _failing_save(mp, ParquetDataset, "test_sequences")
        with pytest.raises(Exception, match="No space left on device"):
            run_session(project, "ingest", params=_ingest(61, 90))
    assert len(versions(project, "data/02_intermediate/user_map.parquet")) == 2  # written to disk ...
    kept = versions(project, "data/05_model_input/test_sequences.parquet")
    assert [v.parent.name for v in kept] == good["test_sequences"]
    assert _committed(project, "user_map") == good["user_map"]  # ... but never committed
    hook_log.readouterr()
    user_map, test = _loaded(project, "user_map"), _loaded(project, "test_sequences")
    log = hook_log.readouterr()
    assert len(user_map) == users_before == test["user_id"].nunique()  # one run's tables, never a mix
    assert "'user_map': skipping version(s)" in log and "never committed" in log

    # tokenize: the trie cannot be saved after sid_vocab was; the new sid_vocab stays invisible
    (project / "conf/local/parameters_tiny.yml").write_text(yaml.safe_dump({"tokenize": TINY_RUN["tokenize"]}))
    run_session(project, "tokenize")
    vocab = _loaded(project, "sid_vocab")
    with monkeypatch.context() as mp:
        _failing_save(mp, SafetensorsDataset, "sid_trie")
        with pytest.raises(Exception, match="No space left on device"):
            run_session(project, "tokenize", params={"tokenize": {"codebook_size": 9}})
    assert len(versions(project, "data/04_feature/sid_vocab.json")) == 2
    assert len(_committed(project, "sid_vocab")) == 1
    assert _loaded(project, "sid_vocab") == vocab


def test_a_flipped_byte_is_named_and_the_fallback_is_only_taken_when_asked(
        tmp_path: Path, mlflow_db: Path, monkeypatch: pytest.MonkeyPatch, hook_log: _Records) -> None:
    project = make_project(tmp_path / "project", mlflow_db)
    monkeypatch.chdir(project)
    (project / "conf/local/parameters_tiny.yml").write_text(yaml.safe_dump({"tokenize": TINY_RUN["tokenize"]}))
    run_session(project, "ingest", params=_ingest(60, 90))
    run_session(project, "ingest", params=_ingest(62, 90))
    old, new = _committed(project, "interactions")
    target = project / "data/03_primary/interactions.parquet" / new / "interactions.parquet"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    with pytest.raises(ArtifactIntegrityError) as err:
        run_session(project, "tokenize")
    msg = str(err.value)
    assert f"version {new} of 'interactions' is damaged: '{target}' has sha256" in msg and "(corrupt)" in msg
    assert "artifacts.fallback_to_last_complete=true" in msg and f"--load-versions interactions:{old}" in msg
    hook_log.readouterr()
    run_session(project, "tokenize", params={"artifacts": {"fallback_to_last_complete": True}})
    log = hook_log.readouterr()
    assert f"version {new} of 'interactions' is damaged" in log and "falling back" in log
    assert len(_committed(project, "semantic_ids")) == 1  # tokenize ran on the intact older version


# --------------------------------------------------------------------------- SIGKILL drills
DRILL = copy.deepcopy(TINY_RUN)
DRILL["sft"].update({"max_steps": 160, "eval_every": 40, "checkpoint_every": 10})
DRILL["adagrpo"].update({"max_steps": 12, "eval_every": 6, "checkpoint_every": 2, "seeds": [0], "reference_seeds": [0]})


def _drill_project(root: Path, mlflow_db: Path) -> Path:
    project = make_project(root, mlflow_db)
    (project / "conf/local/parameters_tiny.yml").write_text(yaml.safe_dump(DRILL))
    return project


def _kedro_run(project: Path) -> subprocess.CompletedProcess:
    return subprocess.run([KEDRO, "run"], cwd=project, env={**os.environ, "KEDRO_DISABLE_TELEMETRY": "true"},
                          capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL)


def _kill_when(project: Path, ready: str, log: Path) -> None:
    """Start `kedro run`, SIGKILL it (and its children) as soon as `ready` (a glob under the
    project) exists: mid-stage, after the training loop saved a resumable state."""
    with open(log, "w") as out:
        proc = subprocess.Popen([KEDRO, "run"], cwd=project, env={**os.environ, "KEDRO_DISABLE_TELEMETRY": "true"},
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 600
        while not list(project.glob(ready)):
            assert proc.poll() is None, f"the run ended (rc {proc.returncode}) before {ready} appeared:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"{ready} never appeared"
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL


def _stages(project: Path) -> list[str]:
    return sorted(json.loads(p.read_text())["stage"] for p in (project / "data/09_commits").glob("*.json"))


def _results(project: Path) -> pd.DataFrame:
    (version,) = _committed(project, "evaluation_results")
    df = pd.read_parquet(project / "data/08_reporting/evaluation_results.parquet" / version / "evaluation_results.parquet")
    return df.sort_values(list(df.columns[:2])).reset_index(drop=True)


def test_sigkill_during_sft_and_during_rl_then_rerun_gives_the_uninterrupted_metrics(
        tmp_path: Path, mlflow_db: Path) -> None:
    reference = _drill_project(tmp_path / "reference", mlflow_db)
    assert _kedro_run(reference).returncode == 0

    project = _drill_project(tmp_path / "killed", mlflow_db)
    _kill_when(project, "data/06_models/sft_state/state.json", tmp_path / "kill_sft.log")
    assert _stages(project) == ["ingest", "tokenize"]  # sft was running: nothing of it is visible
    assert not _committed(project, "sft_policy")

    _kill_when(project, "data/06_models/adagrpo_state/adagrpo/state.json", tmp_path / "kill_rl.log")
    assert "resuming from step" in (tmp_path / "kill_rl.log").read_text()  # SFT picks up its saved state
    assert "adagrpo" not in _stages(project) and "sft" in _stages(project)
    assert not _committed(project, "adagrpo.policy")

    final = _kedro_run(project)
    assert final.returncode == 0, (final.stdout + final.stderr)[-3000:]
    assert "resuming from step" in final.stdout + final.stderr
    metrics = _results(project)
    expected = _results(reference)
    numeric = [c for c in expected.columns if pd.api.types.is_float_dtype(expected[c])]
    assert len(metrics) == len(expected) > 0 and len(numeric) >= 3
    pd.testing.assert_frame_equal(metrics, expected, check_exact=False, rtol=1e-9, atol=1e-12)
