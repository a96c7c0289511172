"""Agreement with a reference model (a distillation teacher) broken down by how sure the reference is: its top-2
softmax margin (at temperature 1, `p1 - p2`), in buckets of fixed edges. Distillation reports it per task
(`polyhead.distill.job`), and its end-of-run table and the model card show the confident bucket, and the
temperature the student learned each teacher at ([`temperature_text`])."""

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


# Edges of the teacher's top-2 margin buckets: [0, 0.2), [0.2, 0.5), [0.5, 1]; the last one is "confident".
MARGIN_EDGES = (0.0, 0.2, 0.5, 1.0)
CONFIDENT_MARGIN = MARGIN_EDGES[-2]


def top2_margin(logits: np.ndarray) -> np.ndarray:
    r"""
    Per row, the top-1 minus the top-2 softmax probability of `logits` (temperature 1): 0 when the two best classes
    tie, near 1 when one class takes it all.

    Example:

    ```python
    >>> top2_margin(np.array([[0.0, 0.0], [2.0, 0.0]])).round(4).tolist()
    [0.0, 0.7616]
    ```
    """
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim != 2 or logits.shape[-1] < 2:
        raise ValueError(f"top2_margin needs (rows, classes >= 2) logits, got shape {logits.shape}.")
    exp = np.exp(logits - logits.max(axis=-1, keepdims=True))
    probabilities = exp / exp.sum(axis=-1, keepdims=True)
    top2 = np.sort(probabilities, axis=-1)[:, -2:]
    return np.clip(top2[:, 1] - top2[:, 0], 0.0, 1.0)


def bucket_names(edges: Sequence[float] = MARGIN_EDGES) -> list[str]:
    """The buckets' names, `"[0, 0.2)"` ... with the last one closed (`"[0.5, 1]"`)."""
    last = len(edges) - 2
    return [f"[{lo:g}, {hi:g}{']' if i == last else ')'}" for i, (lo, hi) in enumerate(zip(edges[:-1], edges[1:]))]


def agreement_by_margin(
    margins: np.ndarray, agrees: np.ndarray, edges: Sequence[float] = MARGIN_EDGES
) -> dict[str, Any]:
    r"""
    The share of rows where the student agrees with the teacher, per bucket of the teacher's margin, and on the
    confident rows (margin >= `edges[-2]`, the last bucket) as the headline:
    `{"by_teacher_margin": {name: {"n", "agreement"}}, "confident": {"min_margin", "n", "agreement"}}`; an empty
    bucket's agreement is `None`.

    Example:

    ```python
    >>> agreement_by_margin(np.array([0.1, 0.3, 0.9]), np.array([False, True, True]))["confident"]
    {'min_margin': 0.5, 'n': 1, 'agreement': 1.0}
    ```
    """
    margins, agrees = np.asarray(margins, dtype=np.float64), np.asarray(agrees, dtype=bool)
    if margins.shape != agrees.shape:
        raise ValueError(f"{len(margins)} margins for {len(agrees)} agreements: they must describe the same rows.")
    buckets = {}
    for i, name in enumerate(bucket_names(edges)):
        lo, hi = edges[i], edges[i + 1]
        inside = (margins >= lo) & ((margins <= hi) if i == len(edges) - 2 else (margins < hi))
        buckets[name] = _share(agrees[inside])
    return {"by_teacher_margin": buckets, "confident": {"min_margin": edges[-2], **buckets[bucket_names(edges)[-1]]}}


def _share(agrees: np.ndarray) -> dict[str, Any]:
    return {"n": int(agrees.size), "agreement": float(agrees.mean()) if agrees.size else None}


def temperature_text(summary: Mapping[str, Any], quote: str = "") -> str | None:
    r"""
    The soft targets' temperature of a distillation summary in one sentence: one value when every single-label task
    used it, else each task's (`quote` wraps task names, e.g. "`" in Markdown); `None` when no task used one (all
    multi-label). Results without `"temperatures"` (older runs) had one temperature for every task.

    Example:

    ```python
    >>> temperature_text({"temperature": 2.0, "temperatures": {"question": 0.5, "sentiment": 2.0}})
    'Soft-target temperature per single-label task: question 0.5, sentiment 2.'
    ```
    """
    temperatures = summary.get("temperatures")
    if temperatures is None:
        values = {summary["temperature"]} if summary.get("temperature") is not None else set()
    else:
        values = set(temperatures.values())
    if not values:
        return None
    if len(values) == 1:
        return f"Soft targets of the single-label tasks at temperature {values.pop():g}."
    each = ", ".join(f"{quote}{task}{quote} {value:g}" for task, value in temperatures.items())
    return f"Soft-target temperature per single-label task: {each}."


def gold_text(summary: Mapping[str, Any]) -> str | None:
    r"""
    How a distillation summary mixed in gold labels, in one sentence; `None` when it did not (`gold_weight` 0).

    Example:

    ```python
    >>> gold_text({"gold_weight": 1.0, "gold_weight_schedule": "linear"})
    'Gold labels mixed in on their rows, annealed: the gold weight grew from 0 to 1 over training.'
    ```
    """
    weight = summary.get("gold_weight") or 0.0
    if not weight:
        return None
    if summary.get("gold_weight_schedule") == "linear":
        return (
            f"Gold labels mixed in on their rows, annealed: the gold weight grew from 0 to {weight:g} over training."
        )
    return f"Gold labels mixed in on their rows with weight {weight:g}."


def forgetting_text(summary: Mapping[str, Any], quote: str = "") -> str | None:
    r"""
    How the `--init_from` model's tasks without a teacher still answer (a distillation summary's `"forgetting"`),
    in one sentence: per task the share of its answers (macro F1 of the decisions for multi-label tasks) the student
    keeps on held-out texts, those below 1 - margin flagged; `None` when there were none.

    Example:

    ```python
    >>> forgetting = {"init_from": "org/model", "margin": 0.02, "tasks": {"topic": {"n": 40, "agreement": 0.95}}}
    >>> forgetting_text({"forgetting": forgetting})
    'Tasks of org/model without a teacher, agreement with its answers on 40 held-out texts: topic 0.950 (beyond the
    margin 0.02).'
    ```
    """
    forgetting = summary.get("forgetting") or {}
    tasks = forgetting.get("tasks") or {}
    if not tasks:
        return None
    margin = forgetting.get("margin", 0.0)
    each = ", ".join(
        f"{quote}{task}{quote} {row['agreement']:.3f}"
        + (f" (beyond the margin {margin:g})" if row["agreement"] < 1 - margin else "")
        for task, row in tasks.items()
    )
    counts = sorted({row["n"] for row in tasks.values()})
    texts = "/".join(str(n) for n in counts)
    return (
        f"Tasks of {forgetting.get('init_from')} without a teacher, agreement with its answers on {texts} held-out "
        f"texts: {each}."
    )


__all__ = [
    "CONFIDENT_MARGIN",
    "MARGIN_EDGES",
    "agreement_by_margin",
    "bucket_names",
    "forgetting_text",
    "gold_text",
    "temperature_text",
    "top2_margin",
]
