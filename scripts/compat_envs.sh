#!/usr/bin/env bash
# Builds one virtual environment per transformers release that the Hub files must support, each with ONLY torch and
# that release (no polyhead): tests/test_cross_version.py loads saved models in them as a Hub user would.
# Usage: bash scripts/compat_envs.sh [VERSION ...]   (default: the oldest supported release and two more)
# Environments already built are kept (.venv-compat/transformers-<version>); pip's cache makes a rebuild quick.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VERSIONS=("$@")
[ ${#VERSIONS[@]} -gt 0 ] || VERSIONS=(4.51.3 4.57.6 5.0.0)
build() {
    local dir=".venv-compat/transformers-$1"
    [ -x "$dir/bin/python" ] && "$dir/bin/python" -c "import torch, transformers" 2>/dev/null && return 0
    rm -rf "$dir"
    "$PYTHON" -m venv "$dir"
    # CPU torch first and pinned: a bare `torch` requirement can pull a several-GB CUDA build.
    "$dir/bin/python" -m pip install -q --disable-pip-version-check "torch==2.13.0" "transformers==$1" \
        2> >(grep -v "^WARNING: Location" >&2)
}
pids=()
for version in "${VERSIONS[@]}"; do build "$version" & pids+=($!); done
for pid in "${pids[@]}"; do wait "$pid"; done
for version in "${VERSIONS[@]}"; do
    ".venv-compat/transformers-$version/bin/python" -c "import transformers; print('compat env: transformers', transformers.__version__)"
done
