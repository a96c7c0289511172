"""The model-shape options of a training run: heads shared by label list (`--share_heads_by_labels`) and task
embeddings (`--task_embeddings`), turned into `MultitaskConfig` fields (see docs/multitask-kinds.md)."""

import logging
from collections.abc import Mapping
from typing import Any

from polyhead.remote_code import MULTIPLE_CHOICE, normalized_labels  # the config's rule: what `shared_heads` accepts


logger = logging.getLogger(__name__)


def shared_heads_by_labels(tasks: Mapping[str, dict]) -> dict[str, list[str]] | None:
    r"""
    `{first task: [tasks]}` for the classification tasks whose normalised label lists (and problem types) are
    identical, in task order; None when no two match. Multiple-choice tasks keep their own scoring head. Tasks whose
    labels match only as sets (another order) are refused: a shared head would swap their labels.

    Example:

    ```python
    >>> shared_heads_by_labels({"mnli": {"labels": ["entailment", "neutral", "contradiction"], ...},
    ...                         "snli": {"labels": ["Entailment", "neutral", "contradiction"], ...}})
    {'mnli': ['mnli', 'snli']}
    ```
    """
    groups: dict[tuple, list[str]] = {}
    orders: dict[tuple, dict[tuple, str]] = {}
    for name, spec in tasks.items():
        if spec["problem_type"] == MULTIPLE_CHOICE:
            continue
        labels = normalized_labels(spec["labels"])
        groups.setdefault((spec["problem_type"], labels), []).append(name)
        orders.setdefault((spec["problem_type"], frozenset(labels)), {}).setdefault(labels, name)
    for (_, _), found in orders.items():
        if len(found) > 1:
            described = "; ".join(f"{task}: {list(labels)}" for labels, task in found.items())
            raise ValueError(
                f"--share_heads_by_labels: tasks have the same labels in different orders ({described}); a shared "
                "head needs one order: give the tasks the same `labels` list in their task specs, or train without "
                "--share_heads_by_labels."
            )
    shared = {members[0]: members for members in groups.values() if len(members) > 1}
    return shared or None


def config_options(model_args: Any, tasks: Mapping[str, dict]) -> dict[str, Any]:
    """The `MultitaskConfig` keyword arguments that `model_args` asks for (empty when none is on)."""
    options: dict[str, Any] = {}
    if model_args.share_heads_by_labels:
        options["shared_heads"] = shared_heads_by_labels(tasks)
        if options["shared_heads"] is None:
            logger.warning(
                "--share_heads_by_labels: no two tasks have the same labels; every task keeps its own head."
            )
    if model_args.task_embeddings:
        options.update(task_embeddings=True, task_embedding_dropout=model_args.task_embedding_dropout)
    return options
