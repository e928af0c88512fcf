#!/usr/bin/env bash
# Create .venv and install jepa_pipe (editable) with its test tools. Idempotent: a second run
# only checks that everything is installed.
#
# torch is installed first and pinned so that nothing resolved afterwards pulls a second
# build: on a CPU-only machine `torch==2.13.0` is the CPU wheel; on a GPU machine set
# TORCH_SPEC (e.g. TORCH_SPEC="torch==2.13.0" with your CUDA index) before running this.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "jepa_pipe needs Python >= 3.11")'
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check "${TORCH_SPEC:-torch==2.13.0}"
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[test]"
.venv/bin/python -c 'import jepa_pipe, torch; print(f"jepa_pipe {jepa_pipe.__version__}, torch {torch.__version__}: ready in .venv")'
