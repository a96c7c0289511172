#!/usr/bin/env bash
# Builds .venv-toolkit/: the Hugging Face Inference Toolkit 0.5.6 (the server Inference Endpoints run) with the
# runtime dependencies it imports, pinned as its setup.py pins them, plus what a polyhead model folder's
# requirements.txt adds (onnxruntime). tests/test_toolkit_server.py serves model folders with it.
# The toolkit is not on PyPI: it installs from PyPI if it ever appears there, else from a local checkout of its
# repository named by POLYHEAD_TOOLKIT_SOURCE (e.g. `git clone -b v0.5.6 .../huggingface-inference-toolkit`). With
# neither, nothing is built and the server tests skip, saying so. Kept when already built.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
DIR=.venv-toolkit
CHECK="import huggingface_inference_toolkit.webservice_starlette, onnxruntime, transformers; print('toolkit env: transformers', transformers.__version__)"
if [ -x "$DIR/bin/python" ] && HF_MODEL_DIR=/nonexistent "$DIR/bin/python" -c "$CHECK" 2>/dev/null; then exit 0; fi
SOURCE=${POLYHEAD_TOOLKIT_SOURCE:-}
if [ -n "$SOURCE" ] && [ ! -f "$SOURCE/setup.py" ]; then
    echo "POLYHEAD_TOOLKIT_SOURCE=$SOURCE is not a checkout of huggingface-inference-toolkit (no setup.py)" >&2
    exit 1
fi
if [ -z "$SOURCE" ] && ! "$PYTHON" -m pip download -q --no-deps -d "$(mktemp -d)" "huggingface-inference-toolkit==0.5.6" \
    >/dev/null 2>&1; then
    echo "toolkit env: not built (huggingface-inference-toolkit 0.5.6 is not on PyPI; set POLYHEAD_TOOLKIT_SOURCE" \
        "to a checkout of its repository to build it)"
    exit 0
fi
rm -rf "$DIR"
"$PYTHON" -m venv "$DIR"
pip_install() { "$DIR/bin/python" -m pip install -q --disable-pip-version-check "$@" 2> >(grep -v "^WARNING: Location" >&2); }
# CPU torch first and pinned: a bare `torch` requirement can pull a several-GB CUDA build. The toolkit pins
# transformers 4.51.3 and huggingface_hub 0.30.2; starlette 1.x removed the `on_startup` argument its app passes.
pip_install "torch==2.13.0" "transformers==4.51.3" "huggingface_hub==0.30.2" "starlette<1" uvicorn orjson Pillow \
    anyio typing_extensions -r polyhead/serving/requirements.txt
# --no-deps: install_requires names a git URL (kenlm) and audio/vision extras the text handler never imports.
pip_install --no-deps "${SOURCE:-huggingface-inference-toolkit==0.5.6}"
HF_MODEL_DIR=/nonexistent "$DIR/bin/python" -c "$CHECK"
