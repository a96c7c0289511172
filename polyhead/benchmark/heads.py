"""How throughput scales with the number of heads: the `multitask-classification` pipeline with T = 1, 10, 100, 500
tasks (2 to 20 labels each, every third multi-label) on the same encoder and the same real texts.

The heads run as one matmul and postprocessing is vectorised across tasks (see `MultitaskModel.head_logits`), so the
target is T = 500 at >= 0.9x the T = 1 throughput at batch 32 and at batch 1. Variants are interleaved (every T once
per round, a new seeded order each round) and the median round is kept, so a busy machine slows every T alike. On a
shared machine, `clock="cpu"` with one torch thread times the process's CPU seconds instead of wall time: what the
work costs, not how long other processes kept it waiting.

What the pipeline returns is most of the cost at T = 500, so each T > 1 is timed with two kinds of heads, in the same
run: `random` heads (freshly initialised: every multi-label task returns about half its labels, ~1,250 labels per
text at T = 500, far more than a trained model) and `calibrated` heads (the same weights, each multi-label head's
biases shifted on held-out texts so that the task returns about as many labels per text as a go_emotions text has
annotations, 1.18; what a trained multi-label head returns). Single-label tasks return their top label either way.

Entry point: `scripts/bench_heads.py`.
"""

import dataclasses
import gc
import json
import random
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import AutoTokenizer, pipeline

from polyhead.benchmark.throughput import interleaved_runs
from polyhead.remote_code import MULTI_LABEL, MultitaskModel, register_pipeline


HEADS = ("random", "calibrated")


@dataclasses.dataclass
class HeadsRow:
    """Median texts/s of the pipeline with `num_tasks` heads (`random` or `calibrated`, see the module docstring) at
    one batch size, its ratio to T = 1, and how many labels it returned per text. `calls`: `"list"` (one call on
    the list of texts with `batch_size`) or `"per text"` (one call per text, as a server answering requests does)."""

    num_tasks: int
    heads: str
    batch_size: int
    calls: str
    num_texts: int
    labels_per_text: float
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


def labels_per_text(path: str | Path) -> float:
    """Mean number of labels per row of a multi-label JSONL file (`{"labels": [...]}` rows), e.g. go_emotions."""
    with open(path, encoding="utf-8") as handle:
        counts = [len(json.loads(line)["labels"]) for line in handle if line.strip()]
    return sum(counts) / len(counts)


@torch.no_grad()
def calibrate_multi_label_heads(model: MultitaskModel, tokenizer, texts: list[str], per_text: float) -> None:
    """Shifts each multi-label head's biases so that on `texts` every label is at or above the task's threshold for
    a `per_text / num_labels` share of them (at most all): the task returns about `per_text` labels per text, as a
    trained head does, instead of the half that a random head returns. Weights are left as they are."""
    inputs = tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
    pooled = model.eval().encode(**inputs)
    for name, spec in model.config.tasks.items():
        if spec["problem_type"] != MULTI_LABEL:
            continue
        head, threshold = model.heads[name], spec.get("threshold", 0.5)
        share = min(1.0, per_text / len(spec["labels"]))
        # the logit each label needs to reach, minus the logit at the (1 - share) quantile of its calibration texts
        cut = torch.quantile(head(pooled), 1.0 - share, dim=0)
        head.bias += torch.logit(torch.tensor(threshold)) - cut


def measure_heads(
    encoder: str,
    texts: list[str],
    task_counts: Sequence[int] = (1, 10, 100, 500),
    batch_sizes: Sequence[int] = (32, 1),
    repeats: int = 5,
    batch1_texts: int = 32,
    clock: str = "wall",
    heads: Sequence[str] = HEADS,
    calibration_texts: list[str] | None = None,
    calibration_labels_per_text: float | None = None,
    per_text_calls: bool = False,
) -> list[HeadsRow]:
    r"""
    Texts/s of the pipeline for every (task count, heads, batch size), interleaved rounds, medians kept. T = 1 (the
    first count; a single-label task) is timed once, the reference of both kinds of heads; `calibrated` heads need
    `calibration_texts` and `calibration_labels_per_text` (see [`calibrate_multi_label_heads`]). `per_text_calls`
    adds one call per text (`classifier(text)`) on the `batch1_texts` texts, after the batch sizes.

    Example:

    ```python
    >>> rows = measure_heads(encoder_path(), load_texts(128), task_counts=[1, 500],
    ...                      calibration_texts=load_texts(128, split="validation"), calibration_labels_per_text=1.18)
    ```
    """
    timer = {"wall": time.perf_counter, "cpu": time.process_time}[clock]
    if not heads or set(heads) - set(HEADS):
        raise ValueError(f"heads must be some of {HEADS}, got {list(heads)}.")
    if "calibrated" in heads and (not calibration_texts or calibration_labels_per_text is None):
        raise ValueError("calibrated heads need calibration_texts and calibration_labels_per_text.")
    register_pipeline()
    tokenizer = AutoTokenizer.from_pretrained(encoder)
    variants = [(task_counts[0], heads[0])] + [(count, kind) for count in task_counts[1:] for kind in heads]
    classifiers = {}
    for count, kind in variants:
        torch.manual_seed(0)  # the same weights for both kinds of heads
        model = MultitaskModel.from_encoder_pretrained(encoder, tasks=synthetic_tasks(count)).eval()
        if kind == "calibrated":
            calibrate_multi_label_heads(model, tokenizer, calibration_texts, calibration_labels_per_text)
        classifiers[(count, kind)] = pipeline("multitask-classification", model=model, tokenizer=tokenizer)
    modes = [(bs, "list") for bs in batch_sizes] + ([(1, "per text")] if per_text_calls else [])
    inputs = {mode: texts[:batch1_texts] if mode[0] == 1 else texts for mode in modes}
    grid = [(variant, mode) for mode in modes for variant in variants]
    returned = {}  # labels per text, counted on an untimed warm-up pass (which also builds the fused weights)
    for variant, mode in grid:
        returned[(variant, mode)] = _labels_per_text(_classify(classifiers[variant], inputs[mode], *mode))
    runs = interleaved_runs(
        grid, lambda key: _answer_and_free(classifiers[key[0]], inputs[key[1]], key[1]), repeats, timer
    )
    rates = {key: len(inputs[key[1]]) / statistics.median(times) for key, times in runs.items()}
    return [
        HeadsRow(
            count,
            kind,
            mode[0],
            mode[1],
            len(inputs[mode]),
            round(returned[((count, kind), mode)], 1),
            round(rates[((count, kind), mode)], 2),
            round(rates[((count, kind), mode)] / rates[(variants[0], mode)], 3),
            [round(t, 4) for t in runs[((count, kind), mode)]],
        )
        for (count, kind), mode in grid
    ]


def _labels_per_text(answers: list[dict]) -> float:
    return sum(len(labels) for answer in answers for labels in answer.values()) / len(answers)


def _classify(classifier, texts: list[str], batch_size: int, calls: str) -> list[dict]:
    if calls == "per text":
        return [classifier(text) for text in texts]
    return classifier(texts, batch_size=batch_size)


def _answer_and_free(classifier, texts: list[str], mode: tuple[int, str]) -> None:
    """Classifies `texts` (`mode`: batch size and calls), then runs the young-generation garbage collection that the
    caller's next allocation would trigger (it walks the new answers once) and frees the answers: timed together,
    as part of what the answers cost at ~1,000 labels per text, not only their making."""
    answers = _classify(classifier, texts, *mode)
    gc.collect(0)
    del answers


def heads_table(rows: list[HeadsRow]) -> str:
    """Markdown: one row per (T, heads, batch size, calls)."""
    lines = [
        "| tasks T | heads | batch | calls | labels returned per text | texts/s | vs T=1 |",
        "|---:|---|---:|---|---:|---:|---:|",
    ]
    lines += [
        f"| {r.num_tasks} | {r.heads} | {r.batch_size} | {r.calls} | {r.labels_per_text:.1f} | "
        f"{r.texts_per_second:.1f} | {r.ratio_to_one_task:.2f}x |"
        for r in rows
    ]
    return "\n".join(lines)


__all__ = [
    "HEADS",
    "HeadsRow",
    "calibrate_multi_label_heads",
    "heads_table",
    "labels_per_text",
    "measure_heads",
    "synthetic_tasks",
]
