#!/usr/bin/env bash
# One entry point for a fresh machine (Python 3.11, pip, the package index):
#   scripts/dev.sh run    set everything up, get the data, run the main job
#   scripts/dev.sh test   set everything up, get the data, run the tests
#   scripts/dev.sh setup | data   only those steps
# Environment: PYTHON (default python3.11, else python3), VENV (default .venv),
#   TORCH_SPEC (default torch==2.13.0; the CPU wheel here, set e.g. "torch>=2.4" for CUDA).
set -euo pipefail
cd "$(dirname "$0")/.."

export KEDRO_DISABLE_TELEMETRY=true
export PIP_DISABLE_PIP_VERSION_CHECK=1
export PYTHONUNBUFFERED=1
VENV="${VENV:-.venv}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"
if [[ -z "${PYTHON:-}" ]]; then
  if command -v python3.11 >/dev/null 2>&1; then PYTHON=python3.11; else PYTHON=python3; fi
fi

setup() {
  local stamp="$VENV/.installed" want
  want="$(sha256sum pyproject.toml | cut -d' ' -f1) $TORCH_SPEC"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    echo "[dev] environment $VENV is up to date"
    return
  fi
  echo "[dev] creating virtual environment $VENV with $($PYTHON --version)"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  echo "[dev] installing $TORCH_SPEC"
  "$VENV/bin/python" -m pip install --quiet "$TORCH_SPEC"
  echo "[dev] installing the project and its dev extra"
  "$VENV/bin/python" -m pip install --quiet -e ".[dev]"
  echo "$want" > "$stamp"
}

data() {
  "$VENV/bin/python" -m adagrpo_pipeline.recdata.download --dest data/01_raw/ml-100k
}

case "${1:-}" in
  setup) setup ;;
  data) setup; data ;;
  run) setup; data; shift; exec "$VENV/bin/kedro" run "$@" ;;
  test) setup; data; shift; exec "$VENV/bin/python" -m pytest "$@" ;;
  *) echo "usage: $0 {run|test|setup|data} [extra args for kedro run / pytest]" >&2; exit 2 ;;
esac
