"""The package's shape: imports run downward with no cycle and the library never imports Kedro
(import-linter's contracts in pyproject.toml), and no function or module grows past the size a
reader can hold (60 and 350 lines)."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import REPO

LINT = str(Path(sys.executable).parent / "lint-imports")
SRC = REPO / "src" / "adagrpo_pipeline"
MAX_FUNCTION_LINES, MAX_MODULE_LINES = 60, 350


def _lint(src: Path) -> subprocess.CompletedProcess:
    """import-linter with the project's contracts on the package under `src`."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.run([LINT, "--config", str(REPO / "pyproject.toml"), "--no-cache"], cwd=src, env=env,
                          capture_output=True, text=True, timeout=300, check=False)


def test_imports_keep_the_layers_and_no_cycle_and_the_library_is_kedro_free() -> None:
    out = _lint(REPO / "src")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Contracts: 3 kept, 0 broken." in out.stdout


def test_an_upward_import_breaks_the_contracts(tmp_path: Path) -> None:
    # metrics sits at the bottom: importing the policy from it runs upward and closes a cycle
    shutil.copytree(SRC, tmp_path / "adagrpo_pipeline", ignore=shutil.ignore_patterns("__pycache__"))
    metrics = tmp_path / "adagrpo_pipeline" / "metrics.py"
    metrics.write_text(metrics.read_text() + "\nfrom adagrpo_pipeline.policy import evaluation  # noqa: E402\n")
    out = _lint(tmp_path)
    assert out.returncode == 1
    assert "adagrpo_pipeline.metrics is not allowed to import adagrpo_pipeline.policy" in out.stdout
    assert "Contracts: 1 kept, 2 broken." in out.stdout


def test_no_function_or_module_in_src_is_too_long_to_read() -> None:
    too_long = []
    for path in sorted(SRC.rglob("*.py")):
        text = path.read_text()
        if len(text.splitlines()) > MAX_MODULE_LINES:
            too_long.append(f"{path.relative_to(REPO)}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    too_long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name}: {n} lines")
    assert not too_long, "\n".join(too_long)
