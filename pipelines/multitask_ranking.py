# Copyright 2026 The polyhead authors. Licensed under the Apache License, Version 2.0.
"""The multitask pipeline's decision rule, vectorised: fused logits of the requested tasks -> their answers.

Single-label tasks: float32 softmax, the `top_k` best labels (a stable sort: the first label wins a tie); multi-label
tasks: every label whose float32 sigmoid score is at least its float32 threshold, best first. The rule is
`polyhead.decisions` (this file may import only torch and transformers): `tests/test_decisions.py` pins it. Each
problem type's tasks become one `(batch, tasks, max labels)` grid, so hundreds of tasks cost about what one does;
only returned entries become Python objects (measurements: docs/design-hub-files.md).
"""

import contextlib
import gc
import itertools
import operator
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import torch


MULTI_LABEL = "multi_label_classification"
MULTIPLE_CHOICE = "multiple_choice"


class _Group(NamedTuple):
    """The requested tasks of one problem type, their labels' columns padded to a `(tasks, max labels)` grid."""

    positions: torch.Tensor  # (G,) where each task sits among the requested tasks
    offsets: torch.Tensor  # (G,) each task's first column in the fused logits
    index: torch.Tensor  # (G, L) column of each (task, label) in the fused logits; padding: the -inf column
    sizes: torch.Tensor  # (G,) label counts
    thresholds: torch.Tensor  # (G, L) per-label decision thresholds (multi-label); padding: inf, never reached


class Layout(NamedTuple):
    """How the fused logits of the requested tasks become their answers (cached per tasks and thresholds)."""

    tasks: list[str]
    column_labels: list[str]  # the label name of every fused logits column
    single_label: _Group | None
    multi_label: _Group | None
    to_task_order: Callable | None  # a row's single-label then multi-label answers -> task order (None: same)


def layout_of(specs: dict, tasks: tuple[str, ...], thresholds: dict[str, float] | None = None) -> Layout:
    """The `Layout` of `tasks` (names in `specs`, the config's tasks), with per-call `thresholds` by task."""
    sizes = [len(specs[task]["labels"]) for task in tasks]
    offsets = list(itertools.accumulate(sizes, initial=0))  # the last one: the -inf padding column
    is_multi = [specs[task]["problem_type"] == MULTI_LABEL for task in tasks]
    single, multi = [i for i, m in enumerate(is_multi) if not m], [i for i, m in enumerate(is_multi) if m]
    limits = {i: _label_thresholds(specs[tasks[i]], (thresholds or {}).get(tasks[i])) for i in multi}
    column_labels = [label for task in tasks for label in specs[task]["labels"]]
    # answers come single-label tasks first: where each requested task's answer is among them
    order = [position for _, position in sorted(zip(single + multi, itertools.count()))]
    to_task_order = operator.itemgetter(*order) if order != sorted(order) else None  # 2+ tasks: gives a tuple
    single_label, multi_label = _group(single, sizes, offsets), _group(multi, sizes, offsets, limits)
    return Layout(list(tasks), column_labels, single_label, multi_label, to_task_order)


def rank(logits: torch.Tensor, layout: Layout, top_k: int | None = 1) -> list[tuple]:
    """Each problem type's `(group, scores, columns, counts)` (numpy) from fused logits `(batch, columns)`: what
    [`as_dicts`] turns into answers."""
    logits = logits.float()
    logits = torch.cat([logits, logits.new_full((len(logits), 1), float("-inf"))], dim=-1)  # the padding column
    groups = []
    if layout.single_label is not None:
        groups.append((layout.single_label, *_top_labels(logits, layout.single_label, top_k)))
    if layout.multi_label is not None:
        groups.append((layout.multi_label, *_labels_above_threshold(logits, layout.multi_label)))
    return groups


def _label_thresholds(spec: dict, override: float | None) -> list[float]:
    """Per-label thresholds of one multi-label task: a per-call override, else the tuned per-label `thresholds`,
    else the task's `threshold`."""
    if override is not None:
        return [override] * len(spec["labels"])
    return list(spec.get("thresholds") or [spec.get("threshold", 0.5)] * len(spec["labels"]))


def _group(
    positions: list[int], sizes: list[int], offsets: list[int], thresholds: dict[int, list[float]] | None = None
) -> _Group | None:
    """The `_Group` of the requested tasks at `positions` (None if there are none); `offsets[i]` is the first
    fused logits column of task `i`, `offsets[-1]` the -inf padding column."""
    if not positions:
        return None
    width = max(sizes[i] for i in positions)
    index = [[offsets[i] + j if j < sizes[i] else offsets[-1] for j in range(width)] for i in positions]
    limits = [(thresholds or {}).get(i, []) for i in positions]
    limits = [values + [float("inf")] * (width - len(values)) for values in limits]  # padding: never returned
    return _Group(
        torch.tensor(positions),
        torch.tensor([offsets[i] for i in positions]),
        torch.tensor(index),
        torch.tensor([sizes[i] for i in positions]),
        torch.tensor(limits),
    )


def _grid(logits: torch.Tensor, group: _Group) -> torch.Tensor:
    """The group's `(batch, tasks, max labels)` grid of logits (index_select: faster than indexing)."""
    return logits.index_select(-1, group.index.flatten()).view(len(logits), *group.index.shape)


def _top_labels(logits: torch.Tensor, group: _Group, top_k: int | None) -> tuple:
    """Single-label tasks: `(scores, columns, counts)` of the `top_k` best labels (all if None) by softmax score, as
    numpy arrays `(batch, tasks, k)`, `(batch, tasks, k)`, `(batch, tasks)`."""
    probabilities = torch.softmax(_grid(logits, group), dim=-1)
    k = min(top_k or probabilities.shape[-1], probabilities.shape[-1])
    if k == 1:  # the default: a max instead of a sort (both pick the first label of a tie)
        scores, order = probabilities.max(dim=-1, keepdim=True)
    else:
        scores, order = probabilities.sort(dim=-1, descending=True, stable=True)
        scores, order = scores[..., :k], order[..., :k]
    counts = group.sizes.clamp(max=k).expand(len(logits), -1)
    return scores.numpy(), (order + group.offsets[:, None]).numpy(), counts.numpy()


def _labels_above_threshold(logits: torch.Tensor, group: _Group) -> tuple:
    """Multi-label tasks: `(scores, columns, counts)` of every label whose sigmoid score is at least its threshold,
    best first (the first `counts` of each task's row), as numpy arrays."""
    probabilities = torch.sigmoid(_grid(logits, group))
    keep = probabilities >= group.thresholds
    counts = keep.sum(dim=-1)
    scores, order = torch.where(keep, probabilities, -1.0).sort(dim=-1, descending=True, stable=True)
    width = int(counts.max())  # nothing past the longest answer is returned
    columns = order[..., :width] + group.offsets[:, None]
    return scores[..., :width].numpy(), columns.numpy(), counts.numpy()


def _answers(names: list[str], scores, columns, counts) -> Iterator[list]:
    """One group's answers in (row, task) order: the first `counts` of each ranked row as `{"label", "score"}`
    (numpy from here: faster than torch for small operations and `tolist`)."""
    if (counts == 1).all():  # e.g. top-1 of single-label tasks: one entry each, no slicing
        columns, scores = columns[..., 0].ravel().tolist(), scores[..., 0].ravel().tolist()
        return iter([[{"label": names[c], "score": v}] for c, v in zip(columns, scores)])
    returned = torch.arange(scores.shape[-1]).numpy() < counts[..., None]
    ends = counts.cumsum()  # flattened
    starts, ends = (ends - counts.ravel()).tolist(), ends.tolist()
    items = [{"label": names[c], "score": v} for c, v in zip(columns[returned].tolist(), scores[returned].tolist())]
    return map(items.__getitem__, map(slice, starts, ends))


def as_dicts(layout: Layout, groups: list[tuple], batch_size: int) -> list[dict[str, list[dict[str, Any]]]]:
    """`{task: [{"label", "score"}, ...]}` per row from each group's ranked `(group, scores, columns, counts)`."""
    answers = [(_answers(layout.column_labels, *ranked), len(group.positions)) for group, *ranked in groups]
    rows = []
    for _ in range(batch_size):
        row = list(itertools.chain.from_iterable([itertools.islice(group, size) for group, size in answers]))
        rows.append(dict(zip(layout.tasks, layout.to_task_order(row) if layout.to_task_order else row)))
    return rows


@contextlib.contextmanager
def collection_paused():
    # Tens of thousands of small dicts and lists would trigger many garbage collections, each walking every object
    # of the process (all of torch and transformers): they hold no cycles, so collection waits until they are built.
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


__all__ = ["Layout", "as_dicts", "collection_paused", "layout_of", "rank"]
