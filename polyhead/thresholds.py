"""Per-label decision thresholds of multi-label tasks, tuned on validation data (`--tune_thresholds`).

For every label of a multi-label task, the threshold on its sigmoid score that maximises that label's F1 on the
validation split, searched over 0.01, 0.02, ..., 0.99. Ties go to the task's threshold (0.5 by default) when it is
among the best, else to the best threshold closest to it. A label keeps the task's threshold when no threshold beats
the constant classifier that marks every text with it (F1 = 2p / (1 + p) at prevalence p): on go_emotions, labels a
short run never learned to rank otherwise got 0.01-0.02 and fired on up to every text. A label with no validation
positives keeps it too. The thresholds are stored per label in the config (`tasks[name]["thresholds"]`); the task's
`threshold` stays as the fallback.
"""

from collections.abc import Mapping

import datasets
import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from polyhead_remote.configuration_multitask import MULTI_LABEL, normalize_task


GRID = np.round(np.arange(1, 100) / 100, 2)


def sigmoid_scores(logits: np.ndarray) -> np.ndarray:
    """Multi-label scores exactly as the pipeline computes them: a float32 torch sigmoid. Compared with float32
    thresholds (see [`above_thresholds`]), a score within float rounding of its threshold is decided as the pipeline
    decides it (why float32: docs/design.md)."""
    return torch.sigmoid(torch.as_tensor(np.asarray(logits), dtype=torch.float32)).numpy()


def above_thresholds(logits: np.ndarray, thresholds: float | list[float] | np.ndarray) -> np.ndarray:
    """`sigmoid(logits) >= thresholds` (bool, broadcast) as the pipeline decides multi-label tasks: float32 scores
    against float32 thresholds."""
    return sigmoid_scores(logits) >= np.asarray(thresholds, dtype=np.float32)


def tune_label_thresholds(
    logits: np.ndarray, references: np.ndarray, grid: np.ndarray = GRID, fallback: float = 0.5
) -> list[float]:
    r"""
    The F1-maximising threshold of each label, given validation logits `(n, num_labels)` and multi-hot references;
    `fallback` (the task's threshold) for ties and for labels where no threshold beats marking every text.

    Example:

    ```python
    >>> tune_label_thresholds(np.array([[2.0], [-1.0], [0.1]]), np.array([[1], [0], [1]]))
    [0.5]
    ```
    """
    truth = np.asarray(references).astype(bool)
    predicted = above_thresholds(np.asarray(logits)[:, :, None], grid[None, None, :])  # (n, labels, thresholds)
    tp = (predicted & truth[:, :, None]).sum(axis=0)
    fp = (predicted & ~truth[:, :, None]).sum(axis=0)
    fn = (~predicted & truth[:, :, None]).sum(axis=0)
    denominator = 2 * tp + fp + fn
    f1 = np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), 0.0)
    best = f1.max(axis=1, keepdims=True)
    # Among the best thresholds, the one closest to the fallback (the fallback itself when it is among them).
    distance = np.where(np.isclose(f1, best), np.abs(grid - fallback)[None, :], np.inf)
    chosen = grid[distance.argmin(axis=1)]
    positives = truth.sum(axis=0)
    constant = 2 * positives / (len(truth) + positives)  # F1 of marking every text with the label
    learned = best[:, 0] > constant + 1e-12
    return [float(value) if keep else float(fallback) for value, keep in zip(chosen, learned)]


def tunable_tasks(model, eval_sets: Mapping[str, datasets.Dataset]) -> list[str]:
    """The multi-label tasks that have a validation split to tune on."""
    return [name for name in eval_sets if model.config.task(name)["problem_type"] == MULTI_LABEL]


def tune_model_thresholds(
    model,
    tokenizer: PreTrainedTokenizerBase,
    eval_sets: Mapping[str, datasets.Dataset],
    batch_size: int = 32,
    progress: bool = False,
) -> dict[str, list[float]]:
    r"""
    Tunes and stores (in `model.config.tasks`) per-label thresholds of every multi-label task of `eval_sets`
    (`{task: tokenized validation Dataset}`); returns them. Raises when there is no such task.

    Example:

    ```python
    >>> tune_model_thresholds(model, tokenizer, {"emotions": encoded["emotions"]["eval"]})["emotions"][:3]
    [0.31, 0.5, 0.22]
    ```
    """
    from polyhead.evaluation import predict_all_logits

    names = tunable_tasks(model, eval_sets)
    if not names:
        raise ValueError(
            "--tune_thresholds needs a multi-label task with a validation split; tasks with one: "
            f"{list(eval_sets)} (none multi-label)."
        )
    predicted = predict_all_logits(model, {name: eval_sets[name] for name in names}, tokenizer, batch_size, progress)
    tuned = {}
    for name in names:
        logits, references = predicted[name]
        tuned[name] = tune_label_thresholds(logits, references, fallback=model.config.task(name)["threshold"])
        spec = normalize_task(name, {**model.config.task(name), "thresholds": tuned[name]})
        model.config.tasks = {**model.config.tasks, name: spec}
    return tuned


__all__ = [
    "GRID",
    "above_thresholds",
    "sigmoid_scores",
    "tunable_tasks",
    "tune_label_thresholds",
    "tune_model_thresholds",
]
