"""Inference speed: texts/s of every variant for every (task count, batch size), interleaved rounds, medians kept."""

import dataclasses
import os
import random
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

from polyhead.benchmark.inputs import DEFAULT_DATA_DIR, task_label_sets
from polyhead.benchmark.variants import build_variants


TIMED_VARIANTS = (
    "multitask",
    "multitask-unsorted",
    "single",
    "separate",
    "encoder",
    "encoder+tok",
    "multitask-int8",
    "multitask-bf16",
    "onnx-fp32",
    "onnx-int8",
)
# (b) and (d) do not depend on T: timed once per batch size (under the first task count).
SHARED_VARIANTS = ("single", "encoder", "encoder+tok")


@dataclasses.dataclass
class ThroughputResult:
    """Median texts/s of one variant at one (number of tasks, batch size); `runs` are the seconds of each repeat.

    Both are kept unrounded (tables round), so `texts_per_second == num_texts / median(runs)` exactly."""

    variant: str
    num_tasks: int
    batch_size: int
    num_texts: int
    texts_per_second: float
    runs: list[float]


def measure_throughput(
    encoder: str,
    texts: list[str],
    task_counts: Sequence[int],
    batch_sizes: Sequence[int],
    repeats: int = 3,
    data_dir: str | os.PathLike | None = DEFAULT_DATA_DIR,
    batch1_texts: int | None = None,
    int8: bool = False,
    onnx_dir: str | os.PathLike | None = None,
    shared: dict[str, Any] | None = None,
    bf16: bool = False,
) -> list[ThroughputResult]:
    r"""
    Texts/s of every variant for every (task count, batch size): warmed up, repeats interleaved, medians kept.

    Args:
        encoder: a folder (or Hub id) with the encoder and its tokenizer.
        texts: the inputs, the same for every variant.
        task_counts, batch_sizes: the grid.
        repeats: interleaved rounds; the median is reported.
        data_dir: where the task label sets come from (`None`: synthetic labels).
        batch1_texts: at batch size 1, time only the first this many texts (batch 1 is slow; `None`: all).
        int8: also time the torch int8 dynamically quantized multitask pipeline.
        bf16: also time the multitask pipeline with the model in bfloat16 (CPUs with AMX run it several times faster
            than float32; others slower).
        onnx_dir: also export each multitask model there and time it on ONNX Runtime (fp32 and int8).
        shared: filled with what the variants share (pipelines; `"onnx"`: `{T: OnnxFilesSummary}`).

    Example:

    ```python
    >>> rows = measure_throughput(encoder_path(), load_texts(256), task_counts=[3], batch_sizes=[32])
    ```
    """
    shared = {} if shared is None else shared
    parity = texts[:32]
    variants = {
        t: build_variants(encoder, task_label_sets(t, data_dir), shared, int8, onnx_dir, parity, bf16)
        for t in task_counts
    }
    grid = [(t, bs, name) for bs in batch_sizes for t in task_counts for name in variants[t]]
    grid = [(t, bs, n) for t, bs, n in grid if t == task_counts[0] or n not in SHARED_VARIANTS]
    grid = [(t, bs, n) for t, bs, n in grid if bs > 1 or n != "multitask-unsorted"]  # sorting needs batches
    inputs = {bs: texts[:batch1_texts] if bs == 1 and batch1_texts else texts for bs in batch_sizes}
    for t, bs, name in grid:  # warm-up: one short pass each
        variants[t][name](inputs[bs][: max(bs, 8)], bs)
    runs = interleaved_runs(grid, lambda key: variants[key[0]][key[2]](inputs[key[1]], key[1]), repeats)
    return [_throughput_row(name, t, bs, len(inputs[bs]), runs[(t, bs, name)]) for t, bs, name in grid]


def interleaved_runs(
    grid: list, run: Callable[[Any], Any], repeats: int, timer: Callable[[], float] = time.perf_counter
) -> dict[Any, list[float]]:
    """Seconds of `run(key)` for every key of `grid`, `repeats` rounds, each round in a new seeded order so that no
    variant always runs right after another (a busy machine slows every variant alike)."""
    runs: dict[Any, list[float]] = {key: [] for key in grid}
    for round_index in range(repeats):
        for key in random.Random(round_index).sample(grid, len(grid)):
            start = timer()
            run(key)
            runs[key].append(timer() - start)
    return runs


def _throughput_row(variant: str, num_tasks: int, batch_size: int, num_texts: int, runs: list[float]):
    return ThroughputResult(variant, num_tasks, batch_size, num_texts, num_texts / statistics.median(runs), runs)
