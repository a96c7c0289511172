"""Serving files that are copied into every saved model folder and run without polyhead installed.

- `onnx_multitask.py`: [`OnnxMultitaskModel`], an onnxruntime-backed stand-in for `MultitaskModel` that the
  `multitask-classification` pipeline accepts as `model=` (imports only numpy, torch, transformers, onnxruntime);
- `handler.py`: the Inference Endpoints entry point (`EndpointHandler`): the pick of the folder's `serving.json`
  (`scripts/benchmark.py --choose --write`), else ONNX when `onnx/model.onnx` exists, else torch;
- `requirements.txt`: what an Inference Endpoint installs next to its own torch/transformers.
"""

from pathlib import Path

from polyhead.serving.onnx_multitask import ONNX_FILE, QUANTIZED_FILE, OnnxMultitaskModel, OnnxMultitaskOutput


SERVING_DIR = Path(__file__).resolve().parent
SERVING_FILES = ("handler.py", "onnx_multitask.py", "requirements.txt")

__all__ = [
    "ONNX_FILE",
    "QUANTIZED_FILE",
    "SERVING_DIR",
    "SERVING_FILES",
    "OnnxMultitaskModel",
    "OnnxMultitaskOutput",
]
