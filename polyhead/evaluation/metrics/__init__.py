"""Evaluation metrics for multitask classification.

The metric computations live in two self-contained `evaluate` modules shipped inside this package
(`multiclass_classification/` and `multilabel_classification/`), loaded with `evaluate.load(<local folder>)` so no
network access is needed. On load, `evaluate` copies the module script into `HF_MODULES_CACHE`
(`~/.cache/huggingface/modules/evaluate_modules/metrics/<name>/<hash>/`) and imports it from there; that folder must be
writable.

Problem types follow `transformers`' `config.problem_type` names:

- `"single_label_classification"`: predictions/references are 1-D class ids; primary metric `f1_macro` (robust to
  class imbalance, unlike accuracy);
- `"multi_label_classification"`: predictions/references are 2-D multi-hot 0/1 arrays; primary metric `f1_micro`
  (pooled over labels, so rare labels missing from a small evaluation set do not make it jump as macro F1 does).

`macro_average` combines per-task results into the cross-task numbers used for model selection / early stopping.
Computing only: the plots are in `polyhead.evaluation.plots` (matplotlib is imported there, not here).
"""

from __future__ import annotations

import csv
import functools
from collections.abc import Mapping, Sequence
from pathlib import Path

import evaluate
import numpy as np
from sklearn.metrics import classification_report, confusion_matrix, multilabel_confusion_matrix

from polyhead.remote_code import MULTI_LABEL, MULTIPLE_CHOICE, SINGLE_LABEL


METRICS_DIR = Path(__file__).resolve().parent
"""Folder holding the local `evaluate` modules (shipped as package data)."""

_MODULE_NAMES = {SINGLE_LABEL: "multiclass_classification", MULTI_LABEL: "multilabel_classification"}
_PRIMARY_METRICS = {SINGLE_LABEL: "f1_macro", MULTI_LABEL: "f1_micro", MULTIPLE_CHOICE: "accuracy"}
METRIC_KEYS = {
    SINGLE_LABEL: ("accuracy", "precision_macro", "recall_macro", "f1_macro"),
    MULTI_LABEL: (
        "f1_micro",
        "f1_macro",
        "precision_micro",
        "recall_micro",
        "precision_macro",
        "recall_macro",
        "exact_match",
        "label_accuracy",
    ),
    MULTIPLE_CHOICE: ("accuracy",),  # the right choice picked (choices differ per row: no per-label metric)
}
"""Stable result keys of `compute_task_metrics`, per problem type."""

__all__ = [
    "METRICS_DIR",
    "METRIC_KEYS",
    "MULTI_LABEL",
    "SINGLE_LABEL",
    "classification_report_text",
    "compute_task_metrics",
    "confusion_counts",
    "load_metric",
    "macro_average",
    "metric_path",
    "most_confused_classes",
    "most_confused_pairs",
    "normalize_rows",
    "primary_metric",
    "write_confusion_matrix_csv",
]


def _check_problem_type(problem_type: str) -> str:
    if problem_type not in _PRIMARY_METRICS:
        raise ValueError(f"Unknown problem_type {problem_type!r}; expected one of {sorted(_PRIMARY_METRICS)}.")
    return problem_type


def metric_path(problem_type: str) -> Path:
    """Returns the folder of the local `evaluate` module for `problem_type` (what `evaluate.load` is given).

    Args:
        problem_type (`str`):
            `"single_label_classification"` or `"multi_label_classification"`.

    Returns:
        `Path`: e.g. `.../polyhead/metrics/multiclass_classification`.
    """
    return METRICS_DIR / _MODULE_NAMES[_check_problem_type(problem_type)]


@functools.cache
def load_metric(problem_type: str) -> evaluate.EvaluationModule:
    """Loads (once per process) the local `evaluate` metric for a problem type, without network access.

    The instance is cached and kept in memory (no Arrow cache files); call its `compute(predictions=...,
    references=...)` directly rather than accumulating with `add_batch` from several places at once.

    Args:
        problem_type (`str`):
            `"single_label_classification"` or `"multi_label_classification"`.

    Returns:
        `evaluate.EvaluationModule`: the loaded metric.

    Raises:
        `ValueError`: if `problem_type` is not one of the two supported types.
    """
    return evaluate.load(str(metric_path(problem_type)), keep_in_memory=True)


def primary_metric(problem_type: str) -> str:
    """Returns the key of the metric that represents a task in cross-task model selection.

    Args:
        problem_type (`str`):
            `"single_label_classification"` (→ `"f1_macro"`) or `"multi_label_classification"` (→ `"f1_micro"`).

    Returns:
        `str`: a key of the dict returned by `compute_task_metrics`.
    """
    return _PRIMARY_METRICS[_check_problem_type(problem_type)]


def _as_label_arrays(problem_type: str, predictions, references) -> tuple[np.ndarray, np.ndarray]:
    y_pred, y_true = np.asarray(predictions, dtype=np.int64), np.asarray(references, dtype=np.int64)
    ndim = 2 if _check_problem_type(problem_type) == MULTI_LABEL else 1
    if y_pred.ndim != ndim or y_pred.shape != y_true.shape:
        raise ValueError(
            f"{problem_type} expects predictions and references as {ndim}-D arrays of one shape; got "
            f"{y_pred.shape} and {y_true.shape}."
        )
    return y_pred, y_true


def compute_task_metrics(
    problem_type: str, predictions, references, num_labels: int | None = None
) -> dict[str, float]:
    """Computes one task's metrics with its local `evaluate` module.

    Args:
        problem_type (`str`):
            `"single_label_classification"` or `"multi_label_classification"`.
        predictions (array-like):
            Single-label: 1-D predicted class ids. Multi-label: 2-D multi-hot 0/1 array `(num_examples, num_labels)`.
        references (array-like):
            Gold labels, same shape as `predictions`.
        num_labels (`int`, *optional*):
            Single-label only: number of classes, so classes absent from both arrays still count (as 0) in the macro
            averages. By default only the classes seen in `predictions` or `references` are averaged.

    Returns:
        `dict[str, float]`: plain floats under the keys `METRIC_KEYS[problem_type]`.
    """
    y_pred, y_true = _as_label_arrays(problem_type, predictions, references)
    if problem_type == MULTIPLE_CHOICE:
        return {"accuracy": float((y_pred == y_true).mean()) if len(y_true) else 0.0}
    kwargs = {"labels": list(range(num_labels))} if problem_type == SINGLE_LABEL and num_labels else {}
    results = load_metric(problem_type).compute(predictions=y_pred.tolist(), references=y_true.tolist(), **kwargs)
    return {key: float(results[key]) for key in METRIC_KEYS[problem_type]}


def _infer_problem_type(metrics: Mapping[str, float]) -> str | None:
    for problem_type in (MULTI_LABEL, SINGLE_LABEL):
        if all(key in metrics for key in METRIC_KEYS[problem_type]):
            return problem_type
    return None


def macro_average(
    results: Mapping[str, Mapping[str, float]], problem_types: Mapping[str, str] | None = None
) -> dict[str, float]:
    """Averages per-task metrics across tasks, each task weighing the same.

    Every metric key is averaged over the tasks that report it (so `accuracy` is the mean over single-label tasks,
    `f1_macro` the mean over all tasks). `"primary"` is the mean over tasks of each task's `primary_metric`.

    Args:
        results (`Mapping[str, Mapping[str, float]]`):
            Task name → that task's metrics, as returned by `compute_task_metrics`.
        problem_types (`Mapping[str, str]`, *optional*):
            Task name → problem type, used to pick each task's primary metric. Tasks not listed have their problem type
            inferred from their metric keys (the full key set of `METRIC_KEYS`).

    Returns:
        `dict[str, float]`: averaged metrics plus `"primary"` (absent when `results` is empty).

    Raises:
        `ValueError`: if a task's problem type is neither given nor inferable.
    """
    problem_types = problem_types or {}
    keys = dict.fromkeys(key for metrics in results.values() for key in metrics)
    averaged = {key: float(np.mean([metrics[key] for metrics in results.values() if key in metrics])) for key in keys}
    primaries = []
    for task, metrics in results.items():
        problem_type = problem_types.get(task) or _infer_problem_type(metrics)
        if problem_type is None:
            raise ValueError(f"Cannot tell the problem type of task {task!r}; pass it in `problem_types`.")
        primaries.append(metrics[primary_metric(problem_type)])
    if primaries:
        averaged["primary"] = float(np.mean(primaries))
    return averaged


def classification_report_text(
    problem_type: str, predictions, references, label_names: Sequence[str], digits: int = 4
) -> str:
    """Returns scikit-learn's per-label text report (precision, recall, F1, support) for one task.

    Args:
        problem_type (`str`):
            `"single_label_classification"` or `"multi_label_classification"`.
        predictions (array-like):
            1-D class ids (single-label) or 2-D multi-hot array (multi-label).
        references (array-like):
            Gold labels, same shape as `predictions`.
        label_names (`Sequence[str]`):
            Name of each label id, in id order; every label is listed, even with zero support.
        digits (`int`, *optional*, defaults to 4):
            Number of decimals.

    Returns:
        `str`: the report.
    """
    y_pred, y_true = _as_label_arrays(problem_type, predictions, references)
    return classification_report(
        y_true,
        y_pred,
        labels=list(range(len(label_names))),
        target_names=[str(name) for name in label_names],
        digits=digits,
        zero_division=0,
    )


def confusion_counts(problem_type: str, predictions, references, num_labels: int) -> np.ndarray:
    """Counts prediction outcomes per label.

    Args:
        problem_type (`str`):
            `"single_label_classification"` or `"multi_label_classification"`.
        predictions (array-like):
            1-D class ids (single-label) or 2-D multi-hot array (multi-label).
        references (array-like):
            Gold labels, same shape as `predictions`.
        num_labels (`int`):
            Number of labels.

    Returns:
        `np.ndarray`: single-label, the `(num_labels, num_labels)` confusion matrix (rows: reference, columns:
        prediction); multi-label, a `(num_labels, 4)` array of `[tn, fp, fn, tp]` per label.
    """
    y_pred, y_true = _as_label_arrays(problem_type, predictions, references)
    labels = list(range(num_labels))
    if problem_type == SINGLE_LABEL:
        return confusion_matrix(y_true, y_pred, labels=labels)
    return multilabel_confusion_matrix(y_true, y_pred, labels=labels).reshape(num_labels, 4)


MOST_CONFUSED_CLASSES = 20
"""How many classes (and confused pairs) the large-label-set plot shows."""


def normalize_rows(counts: np.ndarray) -> np.ndarray:
    """Each row divided by its sum (the share of a true label's examples predicted as each label); empty rows 0."""
    counts = np.asarray(counts, dtype=np.float64)
    totals = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)


def most_confused_classes(counts: np.ndarray, k: int = MOST_CONFUSED_CLASSES) -> list[int]:
    """The `k` class ids with the most errors, as true label (row) or as prediction (column), in id order."""
    errors = np.asarray(counts) - np.diag(np.diag(counts))
    involvement = errors.sum(axis=0) + errors.sum(axis=1)
    chosen = np.argsort(-involvement, kind="stable")[:k]
    return sorted(int(i) for i in chosen)


def most_confused_pairs(counts: np.ndarray, k: int = MOST_CONFUSED_CLASSES) -> list[tuple[int, int, int]]:
    """The `k` most frequent confusions as `(true id, predicted id, count)`, most frequent first (no zero counts)."""
    errors = np.asarray(counts) - np.diag(np.diag(counts))
    order = np.argsort(-errors, axis=None, kind="stable")[:k]
    pairs = [(int(i), int(j), int(errors[i, j])) for i, j in zip(*np.unravel_index(order, errors.shape))]
    return [pair for pair in pairs if pair[2] > 0]


def write_confusion_matrix_csv(
    problem_type: str, predictions, references, label_names: Sequence[str], path: str | Path
) -> Path:
    """Writes the full confusion counts as CSV: single-label, a `true \\ predicted` matrix with a row and a column per
    label; multi-label, one row per label with `tn, fp, fn, tp`."""
    counts = confusion_counts(problem_type, predictions, references, len(label_names))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        if problem_type == SINGLE_LABEL:
            writer.writerow(["true \\ predicted", *label_names])
        else:
            writer.writerow(["label", "tn", "fp", "fn", "tp"])
        writer.writerows([name, *(int(value) for value in row)] for name, row in zip(label_names, counts))
    return path
