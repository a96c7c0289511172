# Copyright 2026 The polyhead authors. Licensed under the Apache License, Version 2.0.
"""An onnxruntime-backed multitask model that the `multitask-classification` pipeline accepts as `model=`.

This file is copied into every saved model folder (next to `handler.py`) and runs without polyhead: it imports only
numpy, torch, transformers and onnxruntime. The graph is the one `polyhead.exporters.onnx.export_onnx` writes:
`onnx/model.onnx` (or `onnx/model_quantized.onnx`), inputs named as the tokenizer gives them, one output
`logits.<task>` per task of `config.tasks`.
"""

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from transformers import AutoConfig
from transformers.utils import ModelOutput


ONNX_FILE = "onnx/model.onnx"
QUANTIZED_FILE = "onnx/model_quantized.onnx"
OUTPUT_PREFIX = "logits."


def graph_outputs(tasks) -> list[str]:
    """The graph's outputs for `tasks`, in order: `logits.<task>`."""
    return [OUTPUT_PREFIX + task for task in tasks]


@dataclass
class OnnxMultitaskOutput(ModelOutput):
    """`logits`: per task, a float32 tensor of shape `(batch_size, num_labels)` (as `MultitaskOutput.logits`).

    `loss` is always `None`; it comes first because `ModelOutput` would unpack a dict in its first field."""

    loss: torch.FloatTensor | None = None
    logits: dict[str, torch.FloatTensor] | None = None


class OnnxMultitaskModel(torch.nn.Module):
    r"""
    A multitask model whose forward runs an ONNX graph in onnxruntime (CPU by default), shaped like `MultitaskModel`
    where a pipeline looks: `config` (the folder's `MultitaskConfig`), `model(**inputs, task=...)` returning `.logits`
    as a dict of torch tensors, `device`, `dtype`, `eval()`, `to("cpu")`.

    Example:

    ```python
    >>> from transformers import AutoTokenizer, pipeline
    >>> model = OnnxMultitaskModel.from_pretrained("outputs/model", file_name="onnx/model.onnx", num_threads=2)
    >>> classifier = pipeline("multitask-classification", model=model, tokenizer=AutoTokenizer.from_pretrained(
    ...     "outputs/model"))
    >>> classifier(["what a great match"], batch_size=32, top_k=None)
    ```
    """

    main_input_name = "input_ids"
    input_modalities = ("text",)
    output_modalities = ("text",)

    def __init__(self, session, config, file_name: str | None = None):
        super().__init__()
        self.session = session
        self.config = config
        self.file_name = file_name
        self.input_names = [node.name for node in session.get_inputs()]
        self.output_names = [node.name for node in session.get_outputs()]
        _check_outputs(self.output_names, list(config.tasks), file_name)

    @classmethod
    def from_pretrained(
        cls,
        model_dir: str | os.PathLike,
        file_name: str = ONNX_FILE,
        *,
        num_threads: int | None = None,
        providers: list | str | None = None,
        session_options=None,
        config=None,
        trust_remote_code: bool = False,
    ) -> "OnnxMultitaskModel":
        r"""
        Loads `model_dir/file_name` into an onnxruntime `InferenceSession` and the folder's config.

        Args:
            model_dir: a model folder with `config.json` and the exported graph.
            file_name: `"onnx/model.onnx"` (fp32) or `"onnx/model_quantized.onnx"` (int8), relative to `model_dir`.
            num_threads: onnxruntime intra-op threads, an integer >= 1 (default: onnxruntime's choice, usually every
                core).
            providers: onnxruntime execution providers, names (or `(name, options)` pairs) from
                `onnxruntime.get_available_providers()`; one name may be given as a string (default
                `["CPUExecutionProvider"]`).
            session_options: an `onnxruntime.SessionOptions` (set its threads there: not with `num_threads`).
            config: the `MultitaskConfig` (default: read from `model_dir`).
            trust_remote_code: read the config with the folder's own `configuration_multitask.py` (needed where
                polyhead is not installed, e.g. in `handler.py`).
        """
        ort = _import_onnxruntime()
        providers = _check_providers(providers, ort)
        if num_threads is not None and (
            isinstance(num_threads, bool) or not isinstance(num_threads, (int, np.integer)) or num_threads < 1
        ):
            raise ValueError(
                f"num_threads must be an integer >= 1 (None: onnxruntime's default), got {num_threads!r}."
            )
        if num_threads is not None and session_options is not None:
            raise ValueError(
                "Pass num_threads or session_options, not both: set session_options.intra_op_num_threads instead."
            )
        path = Path(model_dir) / file_name
        if not path.is_file():
            raise FileNotFoundError(_missing_graph_message(Path(model_dir), path))
        if session_options is None:
            session_options = ort.SessionOptions()
            if num_threads:
                session_options.intra_op_num_threads = int(num_threads)
                session_options.inter_op_num_threads = 1
        session = ort.InferenceSession(str(path), sess_options=session_options, providers=providers)
        if config is None:
            config = AutoConfig.from_pretrained(model_dir, trust_remote_code=trust_remote_code)
        return cls(session, config, file_name=str(file_name))

    @property
    def task_names(self) -> list[str]:
        return list(self.config.tasks)

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")  # inputs and outputs are CPU tensors, whatever provider runs the graph

    @property
    def dtype(self) -> torch.dtype:
        return torch.float32

    def to(self, *args, **kwargs) -> "OnnxMultitaskModel":
        device = kwargs.get("device", args[0] if args else None)
        if device is not None and not isinstance(device, torch.dtype) and torch.device(device).type != "cpu":
            raise ValueError(
                f"OnnxMultitaskModel takes CPU tensors; choose where the graph runs with providers=[...] in "
                f"from_pretrained, not .to({device!r})."
            )
        return self

    def can_generate(self) -> bool:
        return False

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, task=None, **kwargs):
        """Runs the graph on the tokenizer's tensors; `task` (a name or a list) limits the returned tasks."""
        given = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids, **kwargs}
        if given["input_ids"] is None:
            raise ValueError("OnnxMultitaskModel needs input_ids (the tokenizer's output).")
        tasks = self._resolve_tasks(task)
        feeds = {name: _as_int64(given.get(name), given["input_ids"], name) for name in self.input_names}
        values = self.session.run(graph_outputs(tasks), feeds)
        return OnnxMultitaskOutput(logits={name: torch.from_numpy(value) for name, value in zip(tasks, values)})

    def _resolve_tasks(self, task) -> list[str]:
        if task is None:
            return self.task_names
        tasks = [task] if isinstance(task, str) else list(task)
        unknown = [name for name in tasks if name not in self.config.tasks]
        if unknown or not tasks:
            raise ValueError(f"Unknown task(s) {unknown or tasks}: this model has tasks {self.task_names}.")
        return tasks

    def extra_repr(self) -> str:
        return f"file_name={self.file_name!r}, tasks={self.task_names}, inputs={self.input_names}"


def _as_int64(value, input_ids, name: str) -> np.ndarray:
    if value is None:  # what the torch model assumes when the tokenizer leaves them out
        shape = tuple(input_ids.shape)
        return np.ones(shape, np.int64) if name == "attention_mask" else np.zeros(shape, np.int64)
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=np.int64)


def _check_outputs(output_names: list[str], tasks: list[str], file_name: str | None) -> None:
    expected = graph_outputs(tasks)
    if sorted(output_names) != sorted(expected):
        raise ValueError(
            f"The ONNX graph {file_name or ''} has outputs {output_names} but config.tasks expects {expected}: the "
            "graph was exported from another version of this model. Export it again with --overwrite "
            "(python scripts/export_onnx.py MODEL_DIR --overwrite)."
        )


def _check_providers(providers, ort) -> list:
    """`providers` as onnxruntime takes them, checked: a lone name becomes a list (onnxruntime would read a string
    letter by letter), and a name this onnxruntime lacks is an error (it would warn and run on CPU)."""
    if not providers:
        return ["CPUExecutionProvider"]
    if isinstance(providers, str):
        providers = [providers]
    if not isinstance(providers, (list, tuple)):
        raise ValueError(
            f"providers must be a list of onnxruntime execution provider names, got {type(providers).__name__}: e.g. "
            "providers=['CPUExecutionProvider']."
        )
    names = [item[0] if isinstance(item, (list, tuple)) and item else item for item in providers]
    available = ort.get_available_providers()
    missing = [name for name in names if name not in available]
    if missing:
        gpu = any(name in ("CUDAExecutionProvider", "TensorrtExecutionProvider") for name in missing)
        raise ValueError(
            f"providers {missing} are not available in this onnxruntime {ort.__version__}: choose from {available}"
            + (" (GPU providers need the onnxruntime-gpu package instead of onnxruntime)." if gpu else ".")
        )
    return list(providers)


def onnx_unsupported(config) -> str | None:
    """Why a model with this config has no ONNX graph (its graph is one shared pass of texts), or `None`."""
    if config.task_embeddings or config.tasks_of_kind(True):
        return (
            "models with task embeddings or multiple-choice tasks are not exported to ONNX; serve them with torch "
            "(the pipeline or the handler's torch backend)"
        )
    return None


def _missing_graph_message(model_dir: Path, path: Path) -> str:
    # Both export commands, and the graphs that are there: a misspelt file_name shows beside the right one.
    found = sorted(graph.name for graph in (model_dir / "onnx").glob("*.onnx"))
    there = f" ({model_dir / 'onnx'} has {found})" if found else ""
    return (
        f"No ONNX graph at {path}{there}: export it with `python scripts/export_onnx.py {model_dir}` ({ONNX_FILE}), "
        f"or with `python scripts/export_onnx.py {model_dir} --int8` for {QUANTIZED_FILE} too (or "
        "polyhead.exporters.onnx.export_onnx)."
    )


def _import_onnxruntime():
    try:
        import onnxruntime
    except ImportError as error:
        raise ImportError(
            "onnxruntime is not installed: pip install 'polyhead[onnx]' (or pip install onnxruntime) to run ONNX "
            "models."
        ) from error
    return onnxruntime


__all__ = ["ONNX_FILE", "QUANTIZED_FILE", "OnnxMultitaskModel", "OnnxMultitaskOutput", "onnx_unsupported"]
