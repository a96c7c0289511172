"""The timed variants: (a) the multitask pipeline (torch, torch int8, torch bfloat16, ONNX Runtime fp32/int8), (b) one
and (c) T transformers `text-classification` pipelines, (d) the bare encoder forward."""

import importlib.util
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer, pipeline

from polyhead.remote_code import PIPELINE_TASK, MultitaskModel, register_pipeline


ONNX_THREADS = 2  # as torch.set_num_threads(2) in run_benchmark: same cores for every variant


def multitask_model(encoder: str, tasks: dict[str, dict]) -> MultitaskModel:
    """A fresh multitask model over `encoder` with seeded random heads (the same heads for every variant)."""
    torch.manual_seed(0)
    return MultitaskModel.from_encoder_pretrained(encoder, tasks=tasks).eval()


def multitask_pipeline(encoder: str, tasks: dict[str, dict], int8: bool = False, model=None, bf16: bool = False):
    """(a): the `multitask-classification` pipeline over a fresh multitask model (random heads), or over `model`;
    int8: dynamically quantized; bf16: in bfloat16 (fast on CPUs with AMX, see
    `polyhead.serving.predict.load_model`)."""
    register_pipeline()
    model = model if model is not None else multitask_model(encoder, tasks)
    if int8:
        model = quantize_int8(model)
    if bf16:
        model = model.to(torch.bfloat16)
    return pipeline(PIPELINE_TASK, model=model, tokenizer=AutoTokenizer.from_pretrained(encoder))


def single_pipeline(encoder: str, num_labels: int):
    """(b): one transformers `text-classification` pipeline on the same encoder."""
    model = AutoModelForSequenceClassification.from_pretrained(encoder, num_labels=num_labels).eval()
    return pipeline("text-classification", model=model, tokenizer=AutoTokenizer.from_pretrained(encoder))


def int8_available() -> bool:
    """Whether this torch still has eager dynamic quantization (`torch.ao.quantization.quantize_dynamic`)."""
    try:
        from torch.ao.quantization import quantize_dynamic  # noqa: F401
    except ImportError:
        return False
    return bool({"fbgemm", "x86"} & set(torch.backends.quantized.supported_engines))


def quantize_int8(model: torch.nn.Module) -> torch.nn.Module:
    """int8 dynamic quantization of every `nn.Linear` (weights int8, activations quantized on the fly), CPU only.

    torch marks `torch.ao.quantization` deprecated in favour of `torchao` (whose int8 kernels target GPUs); it still
    ships and works in torch 2.13, so its deprecation warnings are silenced here and `int8_available()` gates it."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        from torch.ao.quantization import quantize_dynamic

        return quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)


def onnx_available() -> bool:
    """Whether the `onnx` extra (onnx, onnxscript, onnxruntime) is installed."""
    return all(importlib.util.find_spec(name) for name in ("onnx", "onnxscript", "onnxruntime"))


def export_multitask(model: MultitaskModel, encoder: str, folder: str | os.PathLike, parity_texts: list[str]):
    """Saves `model` to `folder` and exports fp32 + int8 ONNX graphs, parity-checked on `parity_texts`."""
    from polyhead.exporters.onnx import export_onnx
    from polyhead.saving import save_model_folder

    save_model_folder(model, AutoTokenizer.from_pretrained(encoder), folder, overwrite=True)
    return export_onnx(folder, int8=True, texts=parity_texts)


def onnx_pipeline(folder: str | os.PathLike, file_name: str, num_threads: int = ONNX_THREADS):
    """(a) on ONNX Runtime: the same pipeline over an `OnnxMultitaskModel`."""
    from polyhead.serving import OnnxMultitaskModel

    register_pipeline()
    model = OnnxMultitaskModel.from_pretrained(folder, file_name, num_threads=num_threads)
    return pipeline(PIPELINE_TASK, model=model, tokenizer=AutoTokenizer.from_pretrained(folder))


class EncoderForward:
    """(d): the bare encoder on the batches (a) runs (sorted by length, padded per batch), under `inference_mode`."""

    def __init__(self, encoder: str):
        self.model = AutoModel.from_pretrained(encoder).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(encoder)
        self._cache: dict[tuple[int, int], list[dict]] = {}  # pre-tokenized batches for the pure forward

    def batches(self, texts: list[str], batch_size: int) -> list[dict]:
        ordered = sorted(texts, key=len) if batch_size > 1 else texts
        kwargs = {"return_tensors": "pt", "truncation": True, "padding": batch_size > 1}
        return [self.tokenizer(ordered[i : i + batch_size], **kwargs) for i in range(0, len(ordered), batch_size)]

    def run(self, texts: list[str], batch_size: int, tokenize: bool) -> None:
        key = (hash(tuple(texts)), batch_size)
        if tokenize or key not in self._cache:
            self._cache[key] = self.batches(texts, batch_size)
        with torch.inference_mode():
            for batch in self._cache[key]:
                self.model(**batch)


def build_variants(
    encoder: str,
    tasks: dict[str, dict],
    shared: dict[str, Any],
    int8: bool = False,
    onnx_dir: str | os.PathLike | None = None,
    parity_texts: list[str] | None = None,
    bf16: bool = False,
) -> dict[str, Callable[[list[str], int], Any]]:
    """The timed callables `(texts, batch_size) -> None` for one task count; (b) and (d) come from `shared`.

    With `onnx_dir`, the multitask model is also exported there (fp32 + int8) and `shared["onnx"][T]` keeps the
    export's `OnnxExportResult` (parity, files)."""
    first = len(next(iter(tasks.values()))["labels"])
    if "single" not in shared:
        shared["single"] = single_pipeline(encoder, first)
        shared["encoder"] = EncoderForward(encoder)
    separate = [single_pipeline(encoder, len(spec["labels"])) for spec in tasks.values()]
    model = multitask_model(encoder, tasks)
    multitask = multitask_pipeline(encoder, tasks, model=model)
    variants = {
        "multitask": lambda texts, bs: multitask(texts, batch_size=bs),
        "multitask-unsorted": lambda texts, bs: multitask(texts, batch_size=bs, sort_by_length=False),
        "single": lambda texts, bs: shared["single"](texts, batch_size=bs),
        "separate": lambda texts, bs: [classifier(texts, batch_size=bs) for classifier in separate],
        "encoder": lambda texts, bs: shared["encoder"].run(texts, bs, tokenize=False),
        "encoder+tok": lambda texts, bs: shared["encoder"].run(texts, bs, tokenize=True),
    }
    if int8:
        quantized = multitask_pipeline(encoder, tasks, int8=True)
        variants["multitask-int8"] = lambda texts, bs: quantized(texts, batch_size=bs)
    if bf16:
        half = multitask_pipeline(encoder, tasks, bf16=True)
        variants["multitask-bf16"] = lambda texts, bs: half(texts, batch_size=bs)
    if onnx_dir is not None:
        from polyhead.serving import ONNX_FILE, QUANTIZED_FILE

        folder = Path(onnx_dir) / f"multitask-T{len(tasks)}"
        shared.setdefault("onnx", {})[len(tasks)] = export_multitask(model, encoder, folder, parity_texts)
        fp32, int8_onnx = onnx_pipeline(folder, ONNX_FILE), onnx_pipeline(folder, QUANTIZED_FILE)
        variants["onnx-fp32"] = lambda texts, bs: fp32(texts, batch_size=bs)
        variants["onnx-int8"] = lambda texts, bs: int8_onnx(texts, batch_size=bs)
    return variants
