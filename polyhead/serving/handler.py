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
`{"sequence", "labels", "scores"}` per text for zero-shot). A bad request raises `ValueError` with a message naming
the problem and the fix, which the toolkit answers as `400 {"error": "..."}`.
"""

import importlib.util
import json
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
# Serving defaults (docs/serving-endpoints.md has the measurements behind them). The toolkit runs one call at a
# time, so a long list holds every other client: lists run in batches and a request has at most this many inputs.
DEFAULT_BATCH_SIZE = 8
DEFAULT_MAX_INPUTS = 128
DEFAULT_NUM_THREADS = 1
SETTINGS_FILE = "serving.json"  # this machine's fastest path, written by `scripts/benchmark.py --choose --write`
BACKENDS = ("torch", "onnx")
# Each of these that is set (and not empty) overrides that one setting of serving.json; the file's other settings
# still apply, except where POLYHEAD_BACKEND asks for another backend than the file's (they were measured with it).
CHOICE_VARIABLES = {
    "POLYHEAD_BACKEND": "backend",
    "POLYHEAD_ONNX_FILE": "onnx_file",
    "POLYHEAD_DTYPE": "dtype",
    "POLYHEAD_COMPILE": "compile",
}
BOOLS = (True, False)  # serving.json's "compile"
SWITCH = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}
logger = logging.getLogger(__name__)
USAGE = (
    'send {"inputs": "a text", a {"text": ..., "text_pair": ...} pair, a {"text": ..., "choices": [...]} '
    "multiple-choice input or a list of them, "
    '"parameters": {"tasks": [...], "top_k": 1, ...}} (zero-shot: "parameters": {"candidate_labels": [...], ...})'
)


class EndpointHandler:
    """Loads the model in `path` (`serving.json`'s pick, else ONNX when `onnx/model.onnx` exists, else torch) behind
    the multitask pipeline.

    `serving.json` (written by `python scripts/benchmark.py --choose MODEL --write`) picks the backend measured
    fastest on this machine; each of `POLYHEAD_BACKEND`, `POLYHEAD_ONNX_FILE`, `POLYHEAD_DTYPE` and `POLYHEAD_COMPILE`
    that is set overrides that one setting of it, and the rest of the file still applies (see [`serving_choice`]).
    Environment: `POLYHEAD_BACKEND` is `torch` or `onnx` (the graph must exist); `POLYHEAD_ONNX_FILE` picks another
    graph (e.g. `onnx/model_quantized.onnx`; it must exist); `POLYHEAD_NUM_THREADS` (default 1; 0 for the libraries'
    own choice, every core) sets torch's and onnxruntime's threads; `POLYHEAD_BATCH_SIZE` (default 8) the batch size
    of a list sent without `batch_size`; `POLYHEAD_MAX_INPUTS` (default 128) the most inputs one request may hold
    (zero-shot: texts x candidate labels); `POLYHEAD_DTYPE=bfloat16` runs the torch model in bfloat16 (~3x float32 on
    Intel Xeon CPUs with AMX, Sapphire Rapids and later; slower on CPUs without bfloat16 instructions: see the
    project's docs/design.md). `POLYHEAD_COMPILE=1` runs the torch model through polyhead's compiled path
    (torch.compile, bfloat16 where the CPU runs it faster than float32 unless the dtype is set; needs `pip install
    polyhead`; the first request of each new batch/length bucket compiles for ~10-40 s, see the project's
    docs/cpu-acceleration.md); where it cannot run, a warning and the eager model.
    """

    def __init__(self, path: str = ""):
        path = path or os.path.dirname(os.path.abspath(__file__))
        backend, onnx_file, dtype, compile = serving_choice(path)
        self.backend = backend
        self.batch_size = _setting("POLYHEAD_BATCH_SIZE", DEFAULT_BATCH_SIZE)
        self.max_inputs = _setting("POLYHEAD_MAX_INPUTS", DEFAULT_MAX_INPUTS)
        num_threads = _set_threads()
        if backend == "onnx":
            self.pipeline = _onnx_pipeline(path, onnx_file, num_threads)
        else:
            self.pipeline = pipeline(PIPELINE_TASK, model=path, trust_remote_code=True)
            if not compile or not _compile(self.pipeline.model, dtype):
                self.pipeline.model.to(DTYPES[dtype or "float32"])
        served = onnx_file if backend == "onnx" else f"{dtype or 'auto dtype'}{', compiled' if compile else ''}"
        logger.info(
            "polyhead handler: %s backend, %s threads, lists in batches of %d, at most %d inputs a request (%s)",
            self.backend,
            num_threads or "default",
            self.batch_size,
            self.max_inputs,
            served,
        )

    def __call__(self, data: dict[str, Any]) -> Any:
        """The pipeline's answer to one request; a bad request raises `ValueError` (the toolkit answers 400)."""
        try:
            inputs, parameters = _parse_request(data)
            _check_parameters(parameters)
            _check_size(inputs, parameters, self.max_inputs)
            if isinstance(inputs, list) and parameters.get("batch_size") is None:
                parameters = {**parameters, "batch_size": self.batch_size}
            return self.pipeline(inputs, **parameters)
        except (TypeError, ValueError, KeyError) as error:  # ours and the pipeline's: unknown task, empty text...
            message = error.args[0] if isinstance(error, KeyError) and error.args else error  # KeyError quotes it
            raise ValueError(str(message)) from None  # the toolkit answers any exception with 400 and its message


def serving_choice(path: str) -> tuple[str, str, str | None, bool]:
    """`(backend, onnx_file, dtype, compile)` to serve `path` with, `backend` "torch" or "onnx".

    One rule: each of the `CHOICE_VARIABLES` set in the environment (an empty value is unset) overrides that one
    setting of `path/serving.json` (see [`read_serving_file`]), and the file's other settings still apply, unless
    `POLYHEAD_BACKEND` asks for another backend than the file's (its dtype, compile or graph were measured with its
    own backend). What neither sets: ONNX where `onnx/model.onnx` exists (or where `POLYHEAD_ONNX_FILE` names a graph),
    else torch; float32; eager. The dtype is None when compiled without one (the compiled path picks bfloat16 where
    the CPU runs it faster than float32). A bad value, or an ONNX graph asked for that `path` lacks, raises
    `ValueError` naming the fix; a torch setting for the ONNX backend (or the reverse) is ignored with a warning."""
    chosen = read_serving_file(path) or {}
    given = _environment_choice()
    if chosen and given:
        other = given.get("backend", chosen["backend"]) != chosen["backend"]
        logger.info(
            "polyhead handler: %s chooses %s; the environment overrides it with %s%s.",
            SETTINGS_FILE,
            chosen,
            ", ".join(_variable(setting) for setting in given),
            f" (the file's other settings, measured with {chosen['backend']}, do not apply)" if other else "",
        )
        chosen = {} if other else chosen
    settings = {**chosen, **given}
    onnx_file = settings.get("onnx_file", ONNX_FILE)
    found = os.path.isfile(os.path.join(path, onnx_file))
    backend = settings.get("backend") or ("onnx" if found or "onnx_file" in given else "torch")
    if backend == "onnx" and not found:  # asked for in the environment (read_serving_file checked the file's graph)
        _refuse_missing_graph(path, onnx_file, "onnx_file" in given)
    if backend == "onnx" and not _onnxruntime_installed():
        logger.warning("%s exists but onnxruntime is not installed (requirements.txt): using torch.", onnx_file)
        backend = "torch"
    compile = settings.get("compile", False)
    dtype = settings.get("dtype", None if compile else "float32")
    if backend == "onnx" and (dtype not in (None, "float32") or compile):
        logger.warning(
            "%s is for the torch model, but %s is served with onnxruntime (in the precision it was exported in): "
            "ignored. Set POLYHEAD_BACKEND=torch to serve the torch model.",
            _variable("dtype") if dtype not in (None, "float32") else "POLYHEAD_COMPILE",
            onnx_file,
        )
    if backend == "torch" and "onnx_file" in given:
        logger.warning(
            "%s is for the ONNX backend, but the torch model is served (%s): ignored. Set POLYHEAD_BACKEND=onnx to "
            "serve the graph.",
            _variable("onnx_file"),
            _variable("backend") if "backend" in given else f"{SETTINGS_FILE} chooses torch",
        )
    return backend, onnx_file, dtype, compile


def _refuse_missing_graph(path: str, onnx_file: str, named: bool) -> None:
    """The error for an ONNX graph that the environment asks for (`named` by POLYHEAD_ONNX_FILE, else the default
    graph of POLYHEAD_BACKEND=onnx) and `path` lacks, as `read_serving_file` refuses the file's."""
    folder = os.path.join(path, "onnx")
    graphs = (
        sorted(f"onnx/{name}" for name in os.listdir(folder) if name.endswith(".onnx"))
        if os.path.isdir(folder)
        else []
    )
    if named:
        asker, undo = "POLYHEAD_ONNX_FILE", f"name one it has ({', '.join(graphs)})" if graphs else "unset it"
    else:
        asker, undo = _variable("backend"), "set POLYHEAD_BACKEND=torch"
    raise ValueError(
        f"{asker} chooses {onnx_file}, which {path} lacks: export it with polyhead's `python scripts/export_onnx.py "
        f"{path}` (--int8 for onnx/model_quantized.onnx), or {undo}."
    )


def _environment_choice() -> dict[str, Any]:
    """The `CHOICE_VARIABLES` set in the environment, checked, as `{setting: value}` (an empty value is unset)."""
    given = {setting: os.environ.get(name, "").strip() for name, setting in CHOICE_VARIABLES.items()}
    given = {setting: value for setting, value in given.items() if value}
    if given.get("backend", "torch") not in BACKENDS:
        raise ValueError(
            f"POLYHEAD_BACKEND must be one of {list(BACKENDS)}, got {given['backend']!r}: set one of them, or unset "
            f"it for {SETTINGS_FILE}'s pick (else ONNX where {ONNX_FILE} exists, else torch)."
        )
    if given.get("dtype", "float32") not in DTYPES:
        raise ValueError(
            f"POLYHEAD_DTYPE must be one of {list(DTYPES)}, got {given['dtype']!r}: set one of them, or unset it for "
            f"{SETTINGS_FILE}'s pick (else float32)."
        )
    if "compile" in given:
        switch = given["compile"].lower()
        if switch not in SWITCH:
            raise ValueError(f"POLYHEAD_COMPILE must be 1 or 0 (true/false), got {switch!r}.")
        given["compile"] = SWITCH[switch]
    return given


def _variable(setting: str) -> str:
    """`NAME=value` of the environment variable that sets `setting`, as the user wrote it."""
    name = next(name for name, each in CHOICE_VARIABLES.items() if each == setting)
    return f"{name}={os.environ.get(name, '').strip()}"


def _compile(model: torch.nn.Module, dtype: str | None) -> bool:
    """`model` through polyhead's compiled path in `dtype` (None: bfloat16 where the CPU runs it faster); False (a
    warning) where polyhead is not installed. Where compiling cannot run, polyhead warns and leaves the model eager."""
    try:
        from polyhead.serving.compiled import compile_model
    except ImportError:
        logger.warning("POLYHEAD_COMPILE needs the polyhead package (pip install polyhead): serving the eager model.")
        return False
    compile_model(model, dtype or "auto")
    return True


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


def _onnxruntime_installed() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None


def _setting(name: str, default: int, minimum: int = 1) -> int:
    """An integer setting from the environment (at least `minimum`), else `default`."""
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    if not value.isdigit() or int(value) < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}: unset it for {default}.")
    return int(value)


def _set_threads() -> int | None:
    """Torch's intra-op threads from POLYHEAD_NUM_THREADS; the same number is returned for onnxruntime (None: each
    library's own default, every core). Both backends use torch (tokenizer tensors, heads, ranking)."""
    threads = _setting("POLYHEAD_NUM_THREADS", DEFAULT_NUM_THREADS, minimum=0)
    if threads:
        torch.set_num_threads(threads)
    return threads or None


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
    parameters = data.get("parameters")
    parameters = {} if parameters is None else parameters  # a JSON null is no parameters; "" or [] is a mistake
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


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _is_probability(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1  # NaN fails too


def _is_strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


# The pipeline's truncation strategies (a copy: the remote code loads after these checks; a test pins it).
TRUNCATION_STRATEGIES = ("longest_first", "only_first", "only_second", "do_not_truncate")
# Per parameter: whether a JSON value is acceptable, and what it must be. `null` means the default, except for top_k
# where it means every label (the pipeline's `top_k=None`).
PARAMETER_RULES = {
    "tasks": (lambda v: v is None or isinstance(v, str) or _is_strings(v), "a task name or a list of task names"),
    "top_k": (lambda v: v is None or _is_count(v), "an integer >= 1, or null for every label"),
    "threshold": (
        lambda v: (
            v is None
            or _is_probability(v)
            or (isinstance(v, dict) and all(isinstance(k, str) and _is_probability(x) for k, x in v.items()))
        ),
        "a number in [0, 1], or a {task: number in [0, 1]} object for multi-label tasks",
    ),
    "truncation": (
        lambda v: v is None or isinstance(v, bool) or v in TRUNCATION_STRATEGIES,
        f"true, false or one of the tokenizer's strategies {list(TRUNCATION_STRATEGIES)}",
    ),
    "max_length": (lambda v: v is None or _is_count(v), "an integer >= 1"),
    "batch_size": (lambda v: v is None or _is_count(v), "an integer >= 1"),
    "candidate_labels": (lambda v: isinstance(v, str) or _is_strings(v), "a list of label strings"),
    "hypothesis_template": (lambda v: isinstance(v, str), "a string with {} where the label goes"),
    "multi_label": (lambda v: v is None or isinstance(v, bool), "true or false"),
    "nli_task": (lambda v: v is None or isinstance(v, str), "a task name"),
}


def _check_parameters(parameters: dict[str, Any]) -> None:
    """Each parameter's JSON type and range, before the model runs (`true` is no top_k, 5 is no threshold)."""
    for name, value in parameters.items():
        accepts, expected = PARAMETER_RULES[name]
        if not accepts(value):
            raise ValueError(f"'{name}' must be {expected}, got {value!r:.80}.")


def _check_size(inputs: Any, parameters: dict[str, Any], max_inputs: int) -> None:
    """At most `max_inputs` inputs a request (zero-shot: texts x candidate labels, one encoder row each)."""
    items = inputs if isinstance(inputs, list) else [inputs]  # a multiple-choice input: one row per choice
    count = sum(len(i["choices"]) if isinstance(i, dict) and isinstance(i.get("choices"), list) else 1 for i in items)
    labels = parameters.get("candidate_labels")
    if labels:
        count *= len(labels.split(",") if isinstance(labels, str) else labels)
    if count > max_inputs:
        what = "texts x candidate labels" if labels else "inputs"
        raise ValueError(
            f"The request has {count} {what}, more than this endpoint's limit of {max_inputs} (POLYHEAD_MAX_INPUTS): "
            "split it into several requests."
        )
