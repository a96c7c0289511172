"""The decision rule: how a task's logits become its labels, everywhere polyhead decides (one owner).

- single-label tasks: float32 softmax scores, labels ranked best first (a stable sort: the first label wins a tie);
  the prediction is the best one, the `top_k` best are returned;
- multi-label tasks: float32 sigmoid scores, a label is predicted when its score is at least its threshold (float32):
  a per-call threshold, else the task's tuned per-label `thresholds`, else its `threshold` (0.5 when unset).

Evaluation, threshold tuning, bulk prediction and (through the pipeline) the model card's widget answers call this
module. The Hub pipeline (`pipelines/multitask_ranking.py`, which may import only torch and transformers)
spells the same rule vectorised; `tests/test_decisions.py` pins it to [`pipeline_answers`] on random logits.
"""

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from polyhead.remote_code import MULTI_LABEL


def decision_thresholds(spec: Mapping[str, Any], override: float | None = None) -> list[float]:
    """A multi-label task's per-label thresholds: `override` for every label, else its tuned `thresholds`, else its
    `threshold` (0.5 when unset) for every label."""
    if override is not None:
        return [float(override)] * len(spec["labels"])
    return list(spec.get("thresholds") or [spec.get("threshold", 0.5)] * len(spec["labels"]))


def scores(problem_type: str, logits: np.ndarray | torch.Tensor) -> np.ndarray:
    """Float32 scores as the pipeline computes them: softmax over labels (single-label) or a sigmoid per label."""
    values = torch.as_tensor(np.asarray(logits) if not isinstance(logits, torch.Tensor) else logits).float()
    return (torch.sigmoid(values) if problem_type == MULTI_LABEL else torch.softmax(values, dim=-1)).numpy()


def sigmoid_scores(logits: np.ndarray) -> np.ndarray:
    """Multi-label scores: a float32 torch sigmoid. Compared with float32 thresholds (see [`above_thresholds`]), a
    score within float rounding of its threshold is decided as the pipeline decides it (a float64 sigmoid put ~3% of
    logits within 1e-6 of `logit(0.37)` on the other side)."""
    return scores(MULTI_LABEL, logits)


def kept(probabilities: np.ndarray, thresholds: float | Sequence[float] | np.ndarray) -> np.ndarray:
    """`probabilities >= thresholds` (bool, broadcast), both in float32: the multi-label decision on scores."""
    return np.asarray(probabilities, dtype=np.float32) >= np.asarray(thresholds, dtype=np.float32)


def above_thresholds(logits: np.ndarray, thresholds: float | Sequence[float] | np.ndarray) -> np.ndarray:
    """`sigmoid(logits) >= thresholds` (bool, broadcast) as the pipeline decides multi-label tasks."""
    return kept(sigmoid_scores(logits), thresholds)


def best_labels(probabilities: np.ndarray) -> np.ndarray:
    """Single-label predictions: the id of the best score of each row (the first one of a tie)."""
    return np.asarray(probabilities).argmax(axis=-1)


def logits_to_predictions(problem_type: str, logits: np.ndarray, threshold: float | list[float] = 0.5) -> np.ndarray:
    """Class ids for single-label tasks, multi-hot `sigmoid >= threshold` for multi-label tasks (`threshold` may hold
    one value per label)."""
    if problem_type == MULTI_LABEL:
        return above_thresholds(logits, threshold).astype(np.int64)
    return best_labels(scores(problem_type, logits))


def ranked(probabilities: np.ndarray, keep: np.ndarray | None = None, top_k: int | None = None) -> list[list[tuple]]:
    """Per row, `(label id, score)` best first (stable: the lower id first on a tie), only where `keep` is true
    (multi-label), at most `top_k` (single-label; `None`: all)."""
    rows = []
    for row, values in enumerate(np.asarray(probabilities)):
        order = np.argsort(-values, kind="stable")
        if keep is not None:
            order = order[keep[row][order]]
        rows.append([(int(i), float(values[i])) for i in order[:top_k]])
    return rows


def task_answers(
    spec: Mapping[str, Any], logits: np.ndarray, top_k: int | None = 1, threshold: float | None = None
) -> list[list[dict[str, Any]]]:
    """One task's `[{"label", "score"}]` per row, as the pipeline answers (see the module docstring)."""
    probabilities = scores(spec["problem_type"], logits)
    if spec["problem_type"] == MULTI_LABEL:
        rows = ranked(probabilities, kept(probabilities, decision_thresholds(spec, threshold)))
    else:
        rows = ranked(probabilities, top_k=top_k)
    return [[{"label": spec["labels"][i], "score": value} for i, value in row] for row in rows]


def pipeline_answers(
    specs: Mapping[str, Mapping[str, Any]],
    logits: Mapping[str, np.ndarray],
    top_k: int | None = 1,
    thresholds: Mapping[str, float] | None = None,
) -> list[dict[str, list[dict[str, Any]]]]:
    r"""
    `{task: [{"label", "score"}]}` per row from each task's logits `(rows, labels)`: the reference answers of the
    `multitask-classification` pipeline (`top_k` for single-label tasks, per-call `thresholds` per multi-label task).

    Example:

    ```python
    >>> pipeline_answers({"s": {"labels": ["no", "yes"], "problem_type": "single_label_classification"}},
    ...                  {"s": np.array([[0.0, 2.0]])})
    [{'s': [{'label': 'yes', 'score': 0.8807970285415649}]}]
    ```
    """
    per_task = {
        task: task_answers(specs[task], values, top_k, (thresholds or {}).get(task)) for task, values in logits.items()
    }
    rows = len(next(iter(per_task.values()))) if per_task else 0
    return [{task: answers[row] for task, answers in per_task.items()} for row in range(rows)]


__all__ = [
    "above_thresholds",
    "best_labels",
    "decision_thresholds",
    "kept",
    "logits_to_predictions",
    "pipeline_answers",
    "ranked",
    "scores",
    "sigmoid_scores",
    "task_answers",
]
