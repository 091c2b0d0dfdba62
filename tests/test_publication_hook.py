"""`AtomicPublicationHook` in the default tier: real versioned kedro-datasets datasets, Kedro's
catalog and sequential runner, and Kedro's public hook specs, called in the order a `KedroSession`
calls them (the fault drills on whole `kedro run`s are in test_publication.py, slow tier)."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest
from kedro.framework.hooks.markers import HOOK_NAMESPACE
from kedro.framework.hooks.specs import DataCatalogSpecs, DatasetSpecs, KedroContextSpecs, NodeSpecs, PipelineSpecs
from kedro.io import DataCatalog
from kedro.pipeline import Pipeline, node
from kedro_datasets.pandas import ParquetDataset
from pluggy import PluginManager

from adagrpo_pipeline.hooks import AtomicPublicationHook
from adagrpo_pipeline.publication import ArtifactIntegrityError, Manifests

pytestmark = pytest.mark.filterwarnings("ignore:One or more dataset names contain '.':UserWarning")

V1, V2, V3, V4 = (f"2026-01-0{d}T00.00.00.000Z" for d in range(1, 5))


def _users(n: int) -> pd.DataFrame:
    return pd.DataFrame({"user_id": range(n)})


def _count(users: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"n": [len(users)]})


def _report(counts: pd.DataFrame) -> int:
    return int(counts["n"].iloc[0])


def _pipeline() -> Pipeline:
    """Nodes `stage.users` and `stage.count` (stage `stage`), then `report`: a stage of its own with no
    versioned output."""
    stage = Pipeline([node(_users, "params:n", "users", name="users"), node(_count, "users", "counts", name="count")],
                     namespace="stage", parameters={"params:n"})
    return stage + Pipeline([node(_report, "counts", "report", name="report")], inputs={"counts": "stage.counts"})

class _Project:
    """One project folder and one hook instance, used by every session as `settings.HOOKS` is."""

    def __init__(self, root: Path) -> None:
        self.root, self.hook, self.manager = root, AtomicPublicationHook(), PluginManager(HOOK_NAMESPACE)
        for specs in (NodeSpecs, PipelineSpecs, DataCatalogSpecs, DatasetSpecs, KedroContextSpecs):
            self.manager.add_hookspecs(specs)
        self.manager.register(self.hook)

    def catalog(self, save_version: str, n: int = 2, load_versions: dict[str, str] | None = None,
                **artifacts: Any) -> DataCatalog:
        """What `KedroContext._get_catalog` makes and announces (`after_context_created` first)."""
        self.manager.hook.after_context_created(context=SimpleNamespace(project_path=self.root))
        conf = {name: {"type": "pandas.ParquetDataset", "filepath": str(self.root / "data" / f"{name[6:]}.parquet"),
                       "versioned": True} for name in ("stage.users", "stage.counts")}
        catalog = DataCatalog.from_config(conf, load_versions=load_versions or {}, save_version=save_version)
        parameters = {"parameters": {"n": n, "artifacts": artifacts}, "params:n": n, "params:artifacts": artifacts}
        for name, value in parameters.items():
            catalog[name] = value
        self.manager.hook.after_catalog_created(catalog=catalog, conf_catalog=conf, conf_creds={}, parameters=parameters,
                                                save_version=save_version, load_versions=load_versions or {})
        return catalog

    def run(self, save_version: str, pipeline: Pipeline | None = None, **kwargs: Any) -> dict[str, Any]:
        """What `KedroSession.run` does around the runner."""
        from kedro.runner import SequentialRunner

        catalog, pipeline = self.catalog(save_version, **kwargs), pipeline or _pipeline()
        run_params = {"run_id": save_version, "pipeline_names": None}
        self.manager.hook.before_pipeline_run(run_params=run_params, pipeline=pipeline, catalog=catalog)
        try:
            result = SequentialRunner().run(pipeline, catalog, self.manager, run_id=save_version)
        except Exception as error:
            self.manager.hook.on_pipeline_error(error=error, run_params=run_params, pipeline=pipeline, catalog=catalog)
            raise
        return {name: dataset.load() for name, dataset in result.items()}

    def file(self, name: str, version: str) -> Path:
        return self.root / "data" / f"{name}.parquet" / version / f"{name}.parquet"

    def committed(self, dataset: str) -> list[str]:
        return sorted(Manifests(self.root / "data" / "09_commits").committed(dataset))


@pytest.fixture
def project(tmp_path: Path) -> _Project:
    return _Project(tmp_path)


@pytest.fixture
def warnings(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.WARNING, logger="adagrpo_pipeline")
    return caplog


def _fail_saving(monkeypatch: pytest.MonkeyPatch, fragment: str) -> None:
    original = ParquetDataset.save

    def save(self: ParquetDataset, data: Any) -> None:
        if fragment in str(self._filepath):
            raise OSError(28, "No space left on device (drill)")
        original(self, data)

    monkeypatch.setattr(ParquetDataset, "save", save)


def test_a_stage_commits_one_manifest_with_the_sha256_of_every_file(project: _Project) -> None:
    assert project.run(V1)["report"] == 2
    (manifest,) = (project.root / "data" / "09_commits").iterdir()  # the report stage has no versioned output
    body = json.loads(manifest.read_text())
    assert manifest.name == f"{V1}__stage.json" and body["stage"] == "stage" and body["save_version"] == V1
    assert body["pipelines"] == ["__default__"] and body["run_id"] == V1
    assert sorted(body["datasets"]) == ["stage.counts", "stage.users"]
    for name in ("users", "counts"):
        data = project.file(name, V1).read_bytes()
        assert body["datasets"][f"stage.{name}"] == {
            "version": V1, "path": str(project.file(name, V1)),
            "files": {".": {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}}}


def test_a_stage_that_fails_half_way_stays_invisible_and_a_run_loads_its_own_outputs(
        project: _Project, monkeypatch: pytest.MonkeyPatch, warnings: pytest.LogCaptureFixture) -> None:
    project.run(V1, n=2)
    with monkeypatch.context() as mp:
        _fail_saving(mp, "counts")
        with pytest.raises(Exception, match="No space left on device"):
            project.run(V2, n=3)
    assert project.file("users", V2).exists() and not project.file("counts", V2).exists()
    assert project.committed("stage.users") == [V1]
    assert "stage(s) ['report', 'stage'] were not committed" in warnings.text
    warnings.clear()
    assert len(project.catalog(V3).load("stage.users")) == 2  # outside a run: the newest committed version
    assert f"'stage.users': skipping version(s) {V2}, never committed" in warnings.text
    report = _pipeline().filter(node_names=["report"])
    assert project.run(V3, report)["report"] == 2  # a run loads committed versions ...
    assert project.run(V4, n=4)["report"] == 4  # ... and the versions it has just saved itself
    assert project.committed("stage.users") == [V1, V4]


def test_a_damaged_version_is_named_and_older_ones_are_loaded_only_when_asked(
        project: _Project, warnings: pytest.LogCaptureFixture) -> None:
    project.run(V1, n=2)
    project.run(V2, n=3)
    target = project.file("users", V2)
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    count = _pipeline().filter(node_names=["stage.count"])
    with pytest.raises(ArtifactIntegrityError) as err:
        project.run(V3, count)
    msg = str(err.value)
    assert f"version {V2} of 'stage.users' is damaged: '{target}' has sha256" in msg and "(corrupt)" in msg
    assert "artifacts.fallback_to_last_complete=true" in msg and f"--load-versions stage.users:{V1}" in msg
    with pytest.raises(ArtifactIntegrityError, match=f"the pinned version {V2} of 'stage.users' is damaged"):
        project.run(V3, count, load_versions={"stage.users": V2})
    warnings.clear()
    project.run(V3, count, fallback_to_last_complete=True)
    assert f"version {V2} of 'stage.users' is damaged" in warnings.text and "falling back" in warnings.text
    project.run(V4, count, load_versions={"stage.users": V1})
    assert [pd.read_parquet(project.file("counts", v))["n"].iloc[0] for v in (V3, V4)] == [2, 2]  # V1's users
    assert project.committed("stage.counts") == [V1, V2, V3, V4]
