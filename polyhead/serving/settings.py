"""The serving settings a model folder may carry: `serving.json`, this machine's fastest path as
`scripts/benchmark.py --choose MODEL --write` measured it, and the torch precisions served. Bulk prediction and the
chooser use these; `handler.py`, which runs without polyhead, keeps a copy pinned to them by
`tests/test_choose_backend.py`.
"""

import json
import os

import torch

from polyhead.serving.onnx_multitask import ONNX_FILE


SETTINGS_FILE = "serving.json"
TORCH_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
DTYPES = TORCH_DTYPES  # the handler's name for them, so the reader below reads as the handler's copy does
BOOLS = (True, False)  # serving.json's "compile" (1 and 0 compare equal: JSON true/false are what the chooser writes)


def read_serving_file(path: str) -> dict[str, str] | None:
    """The fastest path that `python scripts/benchmark.py --choose MODEL --write` measured on this machine:
    `{"backend": "torch", "dtype": ...}` (and `"compile": True` for the compiled path) or
    `{"backend": "onnx", "onnx_file": ...}` from `path/serving.json`, or None without that file."""
    file = os.path.join(path, SETTINGS_FILE)
    if not os.path.isfile(file):
        return None
    with open(file, encoding="utf-8") as handle:
        try:
            settings = json.load(handle)
        except json.JSONDecodeError as error:
            raise ValueError(f"{file} is not valid JSON ({error}): run the chooser again or delete it.") from None
    backend = settings.get("backend") if isinstance(settings, dict) else None
    if backend == "torch" and settings.get("dtype", "float32") in DTYPES and settings.get("compile", False) in BOOLS:
        compiled = {"compile": True} if settings.get("compile") else {}  # the compiled path (polyhead installed)
        return {"backend": backend, "dtype": settings.get("dtype", "float32"), **compiled}
    onnx_file = settings.get("onnx_file", ONNX_FILE) if backend == "onnx" else None
    if isinstance(onnx_file, str) and not os.path.isfile(os.path.join(path, onnx_file)):
        raise ValueError(f"{file} chooses {onnx_file}, which {path} lacks: run the chooser again or delete it.")
    if isinstance(onnx_file, str):
        return {"backend": backend, "onnx_file": onnx_file}
    raise ValueError(
        f"{file} must hold {{'backend': 'torch', 'dtype': one of {list(DTYPES)}, 'compile': true/false}} or "
        f"{{'backend': 'onnx', "
        f"'onnx_file': 'onnx/...'}}, got {settings!r:.200}: run the chooser again or delete it."
    )


__all__ = ["SETTINGS_FILE", "TORCH_DTYPES", "read_serving_file"]
