"""The whole benchmark run: throughput grid, ONNX exports, memory per task count, accuracy and training speed."""

import dataclasses
import json
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from polyhead.benchmark.accuracy import AccuracyResult, accuracy_config, measure_accuracy
from polyhead.benchmark.inputs import DEFAULT_DATA_DIR, load_texts, save_tiny_encoder, synthetic_texts
from polyhead.benchmark.memory import MEMORY_VARIANTS, MemoryResult, measure_memory
from polyhead.benchmark.onnx_files import OnnxFilesSummary, export_summary
from polyhead.benchmark.throughput import ThroughputResult, measure_throughput
from polyhead.benchmark.variants import int8_available, onnx_available
from polyhead.presets import TINY_ENCODER


@dataclasses.dataclass
class BenchmarkReport:
    """Everything one benchmark run measured, plus its settings and wall time (all unrounded: tables round)."""

    settings: dict[str, Any]
    throughput: list[ThroughputResult] = dataclasses.field(default_factory=list)
    memory: list[MemoryResult] = dataclasses.field(default_factory=list)
    onnx: list[OnnxFilesSummary] = dataclasses.field(default_factory=list)
    accuracy: AccuracyResult | None = None
    wall_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def speed(self, variant: str, num_tasks: int, batch_size: int) -> float | None:
        """The texts/s of one variant, or `None` if it was not measured."""
        for row in self.throughput:
            if (row.variant, row.num_tasks, row.batch_size) == (variant, num_tasks, batch_size):
                return row.texts_per_second
        return None


def run_benchmark(
    task_counts: Sequence[int] = (3, 6),
    batch_sizes: Sequence[int] = (1, 32),
    num_texts: int = 96,
    batch1_texts: int | None = 24,
    repeats: int = 5,
    tiny: bool = False,
    memory: bool = True,
    accuracy: bool = True,
    int8: bool = True,
    onnx: bool = True,
    bf16: bool = False,
    accuracy_options: dict[str, Any] | None = None,
    data_dir: str | os.PathLike = DEFAULT_DATA_DIR,
    work_dir: str | os.PathLike | None = None,
) -> BenchmarkReport:
    r"""
    The whole benchmark: throughput grid (with ONNX Runtime fp32/int8 when the `onnx` extra is installed), memory of
    (a)/(b)/(c) per task count, accuracy and training throughput.

    Example:

    ```python
    >>> report = run_benchmark(task_counts=[3], batch_sizes=[32], tiny=True, accuracy=False)
    >>> print(format_report(report))
    ```
    """
    start = time.perf_counter()
    torch.set_num_threads(2)
    settings = {k: v for k, v in locals().items() if k not in ("start", "work_dir")}
    settings["data_dir"], settings["torch_threads"] = str(data_dir), torch.get_num_threads()
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(work_dir or scratch)
        if tiny:
            encoder = save_tiny_encoder(work / "tiny-encoder")
        else:
            from polyhead.demo.run import encoder_path  # the demo's import chain is not needed by the memory children

            encoder = encoder_path()
        labels_dir = None if tiny else data_dir
        texts = synthetic_texts(num_texts) if tiny else load_texts(num_texts, data_dir)
        report = BenchmarkReport(settings={**settings, "encoder": TINY_ENCODER if tiny else encoder})
        int8, onnx = _available(report, int8, onnx)
        shared: dict[str, Any] = {}
        onnx_dir = work / "onnx-models" if onnx else None
        report.throughput = measure_throughput(
            encoder, texts, task_counts, batch_sizes, repeats, labels_dir, batch1_texts, int8, onnx_dir, shared, bf16
        )
        report.onnx = [export_summary(t, export) for t, export in shared.get("onnx", {}).items()]
        if memory:
            report.memory = _measure_memory(
                encoder, task_counts, texts[: 2 * max(batch_sizes)], batch_sizes, labels_dir
            )
        if accuracy:
            options = {"tiny": tiny, **(accuracy_options or {})}
            config = accuracy_config(encoder, work / "accuracy", data_dir, **options)
            report.accuracy = measure_accuracy(config, int8, onnx)
    report.wall_seconds = time.perf_counter() - start
    return report


def _available(report: BenchmarkReport, int8: bool, onnx: bool) -> tuple[bool, bool]:
    if int8 and not int8_available():
        print("int8 dynamic quantization is not available in this torch build: skipping the int8 variant.")
        int8 = report.settings["int8"] = False
    if onnx and not onnx_available():
        print("The onnx extra is not installed (pip install 'polyhead[onnx]'): skipping the ONNX Runtime variants.")
        onnx = report.settings["onnx"] = False
    return int8, onnx


def _measure_memory(encoder, task_counts, texts, batch_sizes, labels_dir) -> list[MemoryResult]:
    # Peak memory depends on the batch shapes, not on how many batches: two batches of texts are enough.
    rows = []
    for t in task_counts:
        for variant in MEMORY_VARIANTS if t == task_counts[0] else ("multitask", "separate"):
            rows.append(measure_memory(encoder, t, texts, variant, max(batch_sizes), labels_dir))
    return rows


def save_report(report: BenchmarkReport, path: str | os.PathLike) -> Path:
    """Writes the report as JSON (creating the folder)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
    return path
