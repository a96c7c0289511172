"""Scoring zero-shot classification through an NLI task on a labelled set the NLI head never saw.

Each text is classified with `candidate_labels` = the dataset's label names (readable names where the raw labels are
codes, e.g. trec's `LOC` -> "location"); accuracy is compared with the majority-class baseline (the most frequent
train label, predicted for every text). Entry point: `scripts/eval_zero_shot.py`.
"""

import json
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


# Readable candidate names for datasets whose labels are codes.
LABEL_NAMES = {
    "trec": {
        "ABBR": "abbreviation",
        "DESC": "description",
        "ENTY": "entity",
        "HUM": "person",
        "LOC": "location",
        "NUM": "number",
    },
}


def read_rows(path: str | Path, limit: int | None = None, seed: int = 0) -> list[dict[str, Any]]:
    """JSONL rows `{"text", "label"}`, a seeded sample of `limit` of them."""
    with open(path, encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    return rows if limit is None or limit >= len(rows) else random.Random(seed).sample(rows, limit)


def zero_shot_accuracy(
    classifier,
    rows: Sequence[Mapping[str, Any]],
    names: Mapping[str, str],
    train_labels: Sequence[str],
    hypothesis_template: str = "This example is {}.",
    nli_task: str | None = None,
    batch_size: int | None = 32,
) -> dict[str, Any]:
    r"""
    Accuracy of zero-shot predictions (`names`: raw label -> candidate name) against the majority baseline.
    `batch_size`: (text, hypothesis) pairs per forward, across texts (`None`: one forward per text).

    Example:

    ```python
    >>> zero_shot_accuracy(classifier, rows, {"negative": "negative", "positive": "positive"}, train_labels)
    {'n': 300, 'accuracy': 0.62, 'majority_accuracy': 0.5, ...}
    ```
    """
    candidates = list(names.values())
    back = {name: label for label, name in names.items()}
    texts = [row["text"] for row in rows]
    answers = classifier(
        texts,
        candidate_labels=candidates,
        hypothesis_template=hypothesis_template,
        nli_task=nli_task,
        batch_size=batch_size,
    )
    predicted = [back[answer["labels"][0]] for answer in answers]
    truth = [row["label"] for row in rows]
    majority = Counter(train_labels).most_common(1)[0][0]
    return {
        "n": len(rows),
        "candidates": candidates,
        "hypothesis_template": hypothesis_template,
        "accuracy": sum(p == t for p, t in zip(predicted, truth)) / len(rows),
        "majority_label": majority,
        "majority_accuracy": sum(t == majority for t in truth) / len(rows),
        "predicted_distribution": dict(Counter(predicted).most_common()),
    }


__all__ = ["LABEL_NAMES", "read_rows", "zero_shot_accuracy"]
