"""How throughput scales with the number of heads: the `multitask-classification` pipeline with T = 1, 10, 100, 500
tasks (2 to 20 labels each, every third multi-label) on the same encoder and the same real texts.

The heads run as one matmul and postprocessing is vectorised across tasks (see `MultitaskModel.head_logits`), so the
target is T = 500 at >= 0.9x the T = 1 throughput at batch 32 and at batch 1. Variants are interleaved (every T once
per round, a new seeded order each round) and the median round is kept, so a busy machine slows every T alike. On a
shared machine, `clock="cpu"` with one torch thread times the process's CPU seconds instead of wall time: what the
work costs, not how long other processes kept it waiting.

Entry point: `scripts/bench_heads.py`.
"""

import dataclasses
import json
import random
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import AutoTokenizer, pipeline

from polyhead_remote.configuration_multitask import MULTI_LABEL
from polyhead_remote.modeling_multitask import MultitaskModel
from polyhead_remote.pipelines.multitask_classification import register_pipeline


DEFAULT_DATA_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
TEXT_DATASETS = ("tweet_emotion", "tweet_hate", "tweet_offensive")


@dataclasses.dataclass
class HeadsRow:
    """Median texts/s of the pipeline with `num_tasks` heads at one batch size, and its ratio to T = 1."""

    num_tasks: int
    batch_size: int
    num_texts: int
    texts_per_second: float
    ratio_to_one_task: float
    runs: list[float]


def synthetic_tasks(num_tasks: int, seed: int = 0) -> dict[str, dict]:
    """`num_tasks` label sets of 2 to 20 labels; every third task multi-label."""
    rng = random.Random(seed)
    tasks = {}
    for index in range(num_tasks):
        spec = {"labels": [f"label_{j}" for j in range(rng.randint(2, 20))]}
        if index % 3 == 2:
            spec["problem_type"] = MULTI_LABEL
        tasks[f"task_{index}"] = spec
    return tasks


def real_texts(num_texts: int, data_dir: str | Path = DEFAULT_DATA_DIR, seed: int = 0) -> list[str]:
    """A seeded sample of the three tweet test sets (lengths vary)."""
    texts = []
    for name in TEXT_DATASETS:
        with open(Path(data_dir) / name / "test.jsonl", encoding="utf-8") as handle:
            texts += [json.loads(line)["text"] for line in handle if line.strip()]
    return random.Random(seed).sample(texts, min(num_texts, len(texts)))


def measure_heads(
    encoder: str,
    texts: list[str],
    task_counts: Sequence[int] = (1, 10, 100, 500),
    batch_sizes: Sequence[int] = (32, 1),
    repeats: int = 5,
    batch1_texts: int = 32,
    clock: str = "wall",
) -> list[HeadsRow]:
    r"""
    Texts/s of the pipeline for every (task count, batch size), interleaved rounds, medians kept.

    Example:

    ```python
    >>> rows = measure_heads(encoder_path(), real_texts(128), task_counts=[1, 500])
    ```
    """
    timer = {"wall": time.perf_counter, "cpu": time.process_time}[clock]
    register_pipeline()
    tokenizer = AutoTokenizer.from_pretrained(encoder)
    classifiers = {}
    for count in task_counts:
        torch.manual_seed(0)
        model = MultitaskModel.from_encoder_pretrained(encoder, tasks=synthetic_tasks(count)).eval()
        classifiers[count] = pipeline("multitask-classification", model=model, tokenizer=tokenizer)
    inputs = {bs: texts[:batch1_texts] if bs == 1 else texts for bs in batch_sizes}
    grid = [(count, bs) for bs in batch_sizes for count in task_counts]
    for count, bs in grid:  # warm-up (also builds the fused weights and the postprocessing layout)
        classifiers[count](inputs[bs][: max(bs, 4)], batch_size=bs)
    runs: dict[tuple, list[float]] = {key: [] for key in grid}
    for round_index in range(repeats):
        for count, bs in random.Random(round_index).sample(grid, len(grid)):
            start = timer()
            classifiers[count](inputs[bs], batch_size=bs)
            runs[(count, bs)].append(timer() - start)
    rates = {key: len(inputs[key[1]]) / statistics.median(times) for key, times in runs.items()}
    return [
        HeadsRow(
            count,
            bs,
            len(inputs[bs]),
            round(rates[(count, bs)], 2),
            round(rates[(count, bs)] / rates[(task_counts[0], bs)], 3),
            [round(t, 4) for t in runs[(count, bs)]],
        )
        for count, bs in grid
    ]


def heads_table(rows: list[HeadsRow]) -> str:
    """Markdown: one row per (T, batch size)."""
    lines = ["| tasks T | batch | texts/s | vs T=1 |", "|---:|---:|---:|---:|"]
    lines += [
        f"| {r.num_tasks} | {r.batch_size} | {r.texts_per_second:.1f} | {r.ratio_to_one_task:.2f}x |" for r in rows
    ]
    return "\n".join(lines)


__all__ = ["HeadsRow", "heads_table", "measure_heads", "real_texts", "synthetic_tasks"]
