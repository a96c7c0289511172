"""`--max_train_samples_per_task`: a cap on every task's train rows, so that a few huge tasks do not drown the rest.

tasknet (which trained deberta-v3-base-tasksource-nli on 444 tasks) caps each task at 64k train examples. The cap is
applied once, after loading (and after any per-task `max_train_samples` subsample) and before tokenization, so the
batch samplers of `polyhead.training.sampling` then interleave the capped tasks as usual: the cap bounds what a task
can contribute, the sampler decides how often its batches come.

The kept rows are a seeded draw (the run's data seed and the task's name: the same data, cap and seed keep the same
rows in every run, whatever the other tasks);
for a single-label task the draw is stratified by label (each label keeps its share, and at least one row), so a rare
class is not lost by chance. Multi-label tasks (a label column of lists) get a plain seeded draw.
"""

import logging
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from polyhead.data import TaskData
from polyhead.remote_code import SINGLE_LABEL


logger = logging.getLogger(__name__)


def capped_rows(size: int, cap: int, rng: np.random.Generator, labels: Sequence | None = None) -> list[int]:
    r"""
    `min(size, cap)` row indices (sorted) drawn by `rng`; with `labels`, each label keeps its share of the rows
    (largest remainders break the rounding, labels in sorted order) and at least one row while the cap allows.

    Example:

    ```python
    >>> capped_rows(6, 3, np.random.default_rng(0), ["a", "a", "a", "a", "b", "b"])
    [0, 2, 5]
    ```
    """
    if cap >= size:
        return list(range(size))
    if labels is None:
        return sorted(rng.permutation(size)[:cap].tolist())
    groups: dict[str, list[int]] = {}
    for index, value in enumerate(labels):
        groups.setdefault(str(value), []).append(index)
    keys = sorted(groups)
    exact = [cap * len(groups[key]) / size for key in keys]
    quota = [int(share) for share in exact]
    if cap >= len(keys):  # every label keeps a row; the rows this costs come from the largest labels' shares
        quota = [max(n, 1) for n in quota]
    by_remainder = sorted(range(len(keys)), key=lambda i: (-(exact[i] - quota[i]), i))
    for i in by_remainder[: max(0, cap - sum(quota))]:
        quota[i] += 1
    while sum(quota) > cap:
        largest = max(range(len(keys)), key=lambda i: (quota[i], -i))
        quota[largest] -= 1
    return sorted(index for key, n in zip(keys, quota) for index in rng.permutation(groups[key])[:n].tolist())


def cap_train_rows(data: Mapping[str, TaskData], cap: int | None, seed: int) -> dict[str, Any]:
    r"""
    Keeps at most `cap` train rows of every task in `data` (in place) and returns what was done, for `results.json`:
    `{"max_train_samples_per_task": cap, "seed": seed, "tasks": {task: {"rows", "kept", "stratified"}}}` listing the
    tasks that were cut (`rows`: their train rows before the cap). `{}` when `cap` is `None`.

    Example:

    ```python
    >>> report = cap_train_rows(load_task_data(specs), 64_000, seed=42)
    >>> report["tasks"]
    {'big_task': {'rows': 120000, 'kept': 64000, 'stratified': True}}
    ```
    """
    if cap is None:
        return {}
    if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
        raise ValueError(f"max_train_samples_per_task must be an integer >= 1, got {cap!r}.")
    capped = {}
    for name, task in data.items():
        train = task.splits.get("train")
        if train is None or len(train) <= cap:
            continue
        labels = train[task.spec.label_column] if task.problem_type == SINGLE_LABEL else None
        rows = capped_rows(len(train), cap, np.random.default_rng([seed, zlib.crc32(name.encode())]), labels)
        task.splits["train"] = train.select(rows).flatten_indices()
        capped[name] = {"rows": len(train), "kept": len(rows), "stratified": labels is not None}
        logger.warning(
            f"Task {name!r}: train rows capped at max_train_samples_per_task={cap} ({len(rows)} of {len(train)}, "
            f"seed {seed}{', stratified by label' if labels is not None else ''})."
        )
        lost = sorted(set(labels) - {labels[i] for i in rows}, key=str) if labels is not None else []
        if lost:  # fewer rows than labels: the cap cannot keep one of each
            logger.warning(
                f"Task {name!r}: the cap leaves labels {lost} without train rows; raise max_train_samples_per_task "
                f"to at least {len(set(labels))} (the task's labels) to keep one row of each."
            )
    return {"max_train_samples_per_task": cap, "seed": seed, "tasks": capped}


__all__ = ["cap_train_rows", "capped_rows"]
