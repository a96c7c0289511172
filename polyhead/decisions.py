"""The decision rule: how a task's logits become its labels, the same in every component.

Single-label tasks: the label of the highest logit (the pipeline ranks by softmax score, which orders labels alike).
Multi-label tasks: every label whose float32 sigmoid score reaches its float32 threshold, exactly as the pipeline
decides (a float64 sigmoid decided ~3% of logits within 1e-6 of a threshold the other way). Evaluation, threshold
tuning, bulk prediction and the card's examples call these functions; the pipeline, which may import only torch and
transformers, keeps its own copy, pinned to this one by `tests/test_decisions.py`.
"""

import numpy as np
import torch

from polyhead.remote_code import MULTI_LABEL


def sigmoid_scores(logits: np.ndarray) -> np.ndarray:
    """Multi-label scores exactly as the pipeline computes them: a float32 torch sigmoid. Compared with float32
    thresholds (see [`above_thresholds`]), a score within float rounding of its threshold is decided as the pipeline
    decides it (a float64 sigmoid put ~3% of logits within 1e-6 of `logit(0.37)` on the other side)."""
    return torch.sigmoid(torch.as_tensor(np.asarray(logits), dtype=torch.float32)).numpy()


def above_thresholds(logits: np.ndarray, thresholds: float | list[float] | np.ndarray) -> np.ndarray:
    """`sigmoid(logits) >= thresholds` (bool, broadcast) as the pipeline decides multi-label tasks: float32 scores
    against float32 thresholds."""
    return sigmoid_scores(logits) >= np.asarray(thresholds, dtype=np.float32)


def logits_to_predictions(problem_type: str, logits: np.ndarray, threshold: float | list[float] = 0.5) -> np.ndarray:
    """Class ids (argmax) for single-label tasks, multi-hot `sigmoid >= threshold` for multi-label tasks (`threshold`
    may hold one value per label), decided in float32 as the pipeline decides them."""
    if problem_type == MULTI_LABEL:
        return above_thresholds(logits, threshold).astype(np.int64)
    return np.asarray(logits).argmax(axis=-1)


__all__ = ["above_thresholds", "logits_to_predictions", "sigmoid_scores"]
