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
"""

from __future__ import annotations

import csv
import functools
from collections.abc import Mapping, Sequence
from pathlib import Path

import evaluate
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.metrics import classification_report, confusion_matrix, multilabel_confusion_matrix

from polyhead_remote.configuration_multitask import MULTI_LABEL, SINGLE_LABEL


METRICS_DIR = Path(__file__).resolve().parent
"""Folder holding the local `evaluate` modules (shipped as package data)."""

_MODULE_NAMES = {SINGLE_LABEL: "multiclass_classification", MULTI_LABEL: "multilabel_classification"}
_PRIMARY_METRICS = {SINGLE_LABEL: "f1_macro", MULTI_LABEL: "f1_micro"}
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
    "plot_confusion_matrix",
    "primary_metric",
    "write_confusion_matrix_csv",
]


def _check_problem_type(problem_type: str) -> str:
    if problem_type not in _MODULE_NAMES:
        raise ValueError(f"Unknown problem_type {problem_type!r}; expected one of {sorted(_MODULE_NAMES)}.")
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
    ndim = 1 if _check_problem_type(problem_type) == SINGLE_LABEL else 2
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


def _shorten(name: str, max_chars: int = 24) -> str:
    """Elides the middle of long label names, keeping the start and the (often distinguishing) end."""
    if len(name) <= max_chars:
        return name
    head = (max_chars - 1) // 2
    return name[:head] + "…" + name[head + 1 - max_chars :]


def _draw_heatmap(axes, counts: np.ndarray, label_names: Sequence[str], ids: Sequence[int] | None = None) -> None:
    # Colours and written values are row shares; `ids` picks a sub-matrix (rows and columns) of the full counts.
    shares = normalize_rows(counts)
    if ids is not None:
        shares = shares[np.ix_(ids, ids)]
        label_names = [label_names[i] for i in ids]
    image = axes.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    axes.figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="share of the true label's examples")
    ticks = np.arange(len(label_names))
    rotate = max(len(str(name)) for name in label_names) > 3
    fontsize = 10 if len(label_names) <= 15 else 7
    axes.set_xticks(
        ticks, labels=label_names, rotation=60 if rotate else 0, ha="right" if rotate else "center", fontsize=fontsize
    )
    axes.set_yticks(ticks, labels=label_names, fontsize=fontsize)
    axes.set_xlabel("Predicted label")
    axes.set_ylabel("True label")
    if len(label_names) > 15:
        return  # cell values would overlap; the colour carries the share
    for (row, col), value in np.ndenumerate(shares):
        color = "white" if value > 0.5 else "black"
        axes.text(col, row, f"{value:.2f}", ha="center", va="center", color=color, fontsize=fontsize)


def _draw_most_confused(figure: Figure, counts: np.ndarray, label_names: Sequence[str]) -> None:
    matrix_axes, bar_axes = figure.subplots(1, 2, width_ratios=[1.2, 1.0])
    _draw_heatmap(matrix_axes, counts, label_names, ids=most_confused_classes(counts))
    matrix_axes.set_title("Row-normalised, most-confused classes")
    pairs = most_confused_pairs(counts)
    positions = np.arange(len(pairs))
    bar_axes.barh(positions, [count for _, _, count in pairs], color="tab:red")
    bar_axes.set_yticks(positions, labels=[f"{label_names[i]} \u2192 {label_names[j]}" for i, j, _ in pairs])
    bar_axes.invert_yaxis()
    bar_axes.set_xlabel("Examples (true \u2192 predicted)")
    bar_axes.set_title("Most frequent confusions")
    bar_axes.grid(axis="x", alpha=0.3)


def _draw_outcome_bars(figure: Figure, counts: np.ndarray, label_names: Sequence[str]) -> None:
    axes = figure.add_subplot()
    positions = np.arange(len(label_names))
    height = 0.27
    for offset, column, name, color in (
        (-1, 3, "TP", "tab:green"),
        (0, 1, "FP", "tab:red"),
        (1, 2, "FN", "tab:orange"),
    ):
        axes.barh(positions + offset * height, counts[:, column], height=height, label=name, color=color)
    axes.set_yticks(positions, labels=label_names)
    axes.invert_yaxis()
    axes.set_xlabel("Number of examples")
    figure.legend(loc="outside upper right", ncols=3)
    axes.grid(axis="x", alpha=0.3)


FULL_MATRIX_MAX_LABELS = 30
"""Above this many labels a single-label plot shows the most-confused classes, not the full matrix (use the CSV)."""
MOST_CONFUSED_CLASSES = 20
"""How many classes (and confused pairs) the large-label-set plot shows."""


def plot_confusion_matrix(
    problem_type: str,
    predictions,
    references,
    label_names: Sequence[str],
    title: str,
    path: str | Path,
) -> Path:
    """Saves a PNG picture of a task's confusion counts, readable for any number of labels.

    Single-label tasks get a heatmap of the row-normalised confusion matrix (rows: true label, columns: predicted
    label; a cell is the share of that true label's examples, so rare and frequent classes read alike), the shares
    written in the cells up to 15 labels. Above `FULL_MATRIX_MAX_LABELS` labels the full matrix is unreadable at any
    size: the plot shows the `MOST_CONFUSED_CLASSES` classes with the most errors (their normalised sub-matrix) and
    the most frequent (true, predicted) confusions as bars; the full matrix is in the CSV that
    [`write_confusion_matrix_csv`] writes. Multi-label tasks get a horizontal bar chart of true positives, false
    positives and false negatives per label. The figure grows with the number of labels shown, names longer than 24
    characters are shortened in the middle, and drawing happens on a standalone Agg canvas, so no pyplot state or GUI
    backend is touched and nothing stays open afterwards.

    Args:
        problem_type (`str`):
            `"single_label_classification"` or `"multi_label_classification"`.
        predictions (array-like):
            1-D class ids (single-label) or 2-D multi-hot array (multi-label).
        references (array-like):
            Gold labels, same shape as `predictions`.
        label_names (`Sequence[str]`):
            Name of each label id, in id order.
        title (`str`):
            Figure title.
        path (`str` or `Path`):
            Where to write the PNG; parent folders are created.

    Returns:
        `Path`: `path`.
    """
    label_names = [_shorten(str(name)) for name in label_names]
    counts = confusion_counts(problem_type, predictions, references, len(label_names))
    num = len(label_names)
    if problem_type != SINGLE_LABEL:
        height = min(max(3.0, 0.35 * num + 1.5), 60.0)
        figure = Figure(figsize=(8.0, height), layout="constrained")
        FigureCanvasAgg(figure)
        _draw_outcome_bars(figure, counts, label_names)
    elif num > FULL_MATRIX_MAX_LABELS:
        figure = Figure(figsize=(20.0, 10.0), layout="constrained")
        FigureCanvasAgg(figure)
        _draw_most_confused(figure, counts, label_names)
        title = f"{title}: the {MOST_CONFUSED_CLASSES} most-confused of {num} classes (full matrix in the CSV)"
    else:
        side = max(5.0, 0.45 * num + 2.5)  # about 0.45 inch a label: 30 labels fit their names at 7 pt
        figure = Figure(figsize=(side + 1.0, side), layout="constrained")
        FigureCanvasAgg(figure)
        _draw_heatmap(figure.add_subplot(), counts, label_names)
    figure.suptitle(title)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", dpi=100, bbox_inches="tight", pad_inches=0.15)
    figure.clear()
    return path


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
