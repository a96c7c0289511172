# Copyright 2026 The polyhead authors. Licensed under the Apache License, Version 2.0.
"""Inference Endpoints entry point of a polyhead multitask model (the toolkit loads `handler.EndpointHandler`).

Copied into every saved model folder. It imports only torch, transformers (4.51.3, the toolkit's, or later),
onnxruntime when the folder has `onnx/model.onnx`, and the folder's own files, so it runs without polyhead.

Request: `{"inputs": "a text" | ["text", ...], "parameters": {"tasks": [...], "top_k": 2, "threshold": 0.3, ...}}`;
a sentence pair is `{"text": ..., "text_pair": ...}` (alone or in the list), as for text-classification endpoints.
Zero-shot, as for zero-shot-classification endpoints, through the model's NLI task:
`{"inputs": "a text" | [...], "parameters": {"candidate_labels": [...], "hypothesis_template": "This example is {}.",
"multi_label": false, "nli_task": "nli"}}`.
Response: the `multitask-classification` pipeline's answer (`{task: [{"label", "score"}]}` per text, or
`{"sequence", "labels", "scores"}` per text for zero-shot), or `{"error": "..."}` for a bad request.
"""

import importlib.util
import logging
import os
import sys
from typing import Any

import torch
from transformers import AutoConfig, AutoTokenizer, pipeline
from transformers.dynamic_module_utils import get_class_from_dynamic_module


PIPELINE_TASK = "multitask-classification"
ONNX_FILE = os.path.join("onnx", "model.onnx")
PARAMETERS = ("tasks", "top_k", "threshold", "truncation", "max_length", "batch_size")
ZERO_SHOT_PARAMETERS = ("candidate_labels", "hypothesis_template", "multi_label", "nli_task")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
logger = logging.getLogger(__name__)
USAGE = (
    'send {"inputs": "a text", a {"text": ..., "text_pair": ...} pair or a list of them, '
    '"parameters": {"tasks": [...], "top_k": 1, ...}} (zero-shot: "parameters": {"candidate_labels": [...], ...})'
)


class EndpointHandler:
    """Loads the model in `path` (ONNX when `onnx/model.onnx` exists, else torch) behind the multitask pipeline.

    Environment: `POLYHEAD_BACKEND=torch` forces torch; `POLYHEAD_ONNX_FILE` picks another graph (e.g.
    `onnx/model_quantized.onnx`); `POLYHEAD_NUM_THREADS` sets onnxruntime's threads; `POLYHEAD_DTYPE=bfloat16` runs
    the torch model in bfloat16 (fast on CPUs with AMX, slower on CPUs without bfloat16 instructions: see the
    project's docs/design.md).
    """

    def __init__(self, path: str = ""):
        path = path or os.path.dirname(os.path.abspath(__file__))
        onnx_file = os.environ.get("POLYHEAD_ONNX_FILE", ONNX_FILE)
        dtype = os.environ.get("POLYHEAD_DTYPE", "float32")
        if dtype not in DTYPES:
            raise ValueError(f"POLYHEAD_DTYPE must be one of {list(DTYPES)}, got {dtype!r}.")
        use_onnx = os.environ.get("POLYHEAD_BACKEND", "") != "torch" and os.path.isfile(os.path.join(path, onnx_file))
        if use_onnx and dtype != "float32":
            raise ValueError(
                f"POLYHEAD_DTYPE={dtype} is for the torch model, but {onnx_file} is served with onnxruntime: set "
                "POLYHEAD_BACKEND=torch too."
            )
        if use_onnx and not _onnxruntime_installed():
            logger.warning("%s exists but onnxruntime is not installed (requirements.txt): using torch.", onnx_file)
            use_onnx = False
        self.backend = "onnx" if use_onnx else "torch"
        if use_onnx:
            self.pipeline = _onnx_pipeline(path, onnx_file, int(os.environ.get("POLYHEAD_NUM_THREADS", 0)) or None)
        else:
            self.pipeline = pipeline(PIPELINE_TASK, model=path, trust_remote_code=True)
            self.pipeline.model.to(DTYPES[dtype])

    def __call__(self, data: dict[str, Any]) -> Any:
        try:
            inputs, parameters = _parse_request(data)
            return self.pipeline(inputs, **parameters)
        except (TypeError, ValueError, KeyError) as error:  # the pipeline's own checks: unknown task, empty text...
            message = error.args[0] if isinstance(error, KeyError) and error.args else error  # KeyError quotes it
            return {"error": str(message)}


def _onnxruntime_installed() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None


def _onnx_pipeline(path: str, onnx_file: str, num_threads: int | None):
    if path not in sys.path:
        sys.path.insert(0, path)  # the toolkit does this too; onnx_multitask.py is a flat sibling of this file
    from onnx_multitask import OnnxMultitaskModel

    config = AutoConfig.from_pretrained(path, trust_remote_code=True)
    model = OnnxMultitaskModel.from_pretrained(path, onnx_file, num_threads=num_threads, config=config)
    pipeline_class = get_class_from_dynamic_module(config.custom_pipelines[PIPELINE_TASK]["impl"], path)
    return pipeline_class(model=model, tokenizer=AutoTokenizer.from_pretrained(path, trust_remote_code=True))


def _parse_request(data: Any) -> tuple[Any, dict[str, Any]]:
    if not isinstance(data, dict):
        raise TypeError(f"The request must be a JSON object, got {type(data).__name__}: {USAGE}.")
    if "inputs" not in data:
        raise ValueError(f"The request has no 'inputs': {USAGE}.")
    inputs = data["inputs"]
    if not isinstance(inputs, (str, dict, list)):
        raise TypeError(
            f"'inputs' must be a string, a sentence pair or a list of them, got {type(inputs).__name__}: {USAGE}."
        )
    parameters = data.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise TypeError(f"'parameters' must be an object, got {type(parameters).__name__}: {USAGE}.")
    unknown = sorted(set(parameters) - set(PARAMETERS) - set(ZERO_SHOT_PARAMETERS))
    if unknown:
        raise ValueError(
            f"Unknown parameter(s) {unknown}: the accepted parameters are {list(PARAMETERS)}, and for zero-shot "
            f"{list(ZERO_SHOT_PARAMETERS)}."
        )
    if "candidate_labels" in parameters:
        apart = sorted(set(parameters) & {"tasks", "top_k", "threshold"})
        if apart:
            raise ValueError(f"{apart} do not apply to zero-shot classification (candidate_labels): drop them.")
    else:
        alone = sorted(set(parameters) & set(ZERO_SHOT_PARAMETERS))
        if alone:
            raise ValueError(f"{alone} are zero-shot parameters: give candidate_labels too.")
    return inputs, parameters
