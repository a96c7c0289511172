"""Confusion-matrix pictures of a task's predictions (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from polyhead.evaluation.metrics import (
    MOST_CONFUSED_CLASSES,
    SINGLE_LABEL,
    confusion_counts,
    most_confused_classes,
    most_confused_pairs,
    normalize_rows,
)


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


__all__ = ["FULL_MATRIX_MAX_LABELS", "plot_confusion_matrix"]
