"""Growing a trained multitask model: continue training it, add tasks, keep the others, and measure forgetting.

`scripts/train.py --init_from MODEL` uses these; from Python:

```python
>>> model = MultitaskModel.from_pretrained("outputs/base/model")
>>> model.add_task("offensive", ["not-offensive", "offensive"])
>>> freeze_heads_except(model, ["offensive"])      # the old heads keep their exact weights
>>> model.freeze_encoder()                        # and, frozen, the encoder: old tasks cannot be forgotten
>>> before = score_tasks(model, tokenizer, {"emotion": encoded_test})
>>> # ... MultitaskTrainer(model, args, train_datasets={"offensive": ...}).train() ...
>>> after = score_tasks(model, tokenizer, {"emotion": encoded_test})
>>> forgetting_report(before, after, {"emotion": "single_label_classification"}, margin=0.02)
```
"""

import logging
from collections.abc import Iterable, Mapping
from typing import Any

import datasets
import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from polyhead.data import TaskData
from polyhead.evaluation import metrics
from polyhead.evaluation.scoring import predict_all_logits, score_task
from polyhead.remote_code import MultitaskConfig, MultitaskModel, normalize_task, normalized_labels
from polyhead.run_folder import is_multitask_folder
from polyhead.tasks import check_pair_input


logger = logging.getLogger(__name__)


def freeze_heads_except(model: MultitaskModel, tasks: Iterable[str]) -> list[str]:
    r"""
    Freezes the head of every task of `model` except `tasks` (whose heads are made trainable); returns the frozen
    task names: the tasks whose head does not train. A task that shares a head (`config.shared_heads`) with one of
    `tasks` trains with it, so it is not frozen (and a log line says so). The encoder is left as it is:
    `model.freeze_encoder()` freezes it too, and only then do the other tasks keep exactly their answers.

    Example:

    ```python
    >>> freeze_heads_except(model, ["offensive"])
    ['emotion', 'hate']
    ```
    """
    keep = set(tasks)
    unknown = sorted(keep - set(model.config.tasks))
    if unknown:
        raise ValueError(f"Unknown task(s) {unknown} to train: this model has tasks {model.config.task_names}.")
    trained = trained_tasks(model.config, keep)
    if sharing := [name for name in trained if name not in keep]:
        logger.warning(
            f"Task(s) {sharing} share a head with the trained task(s) {sorted(keep)}: that head trains, so they are "
            "trained too and their answers may change."
        )
    heads = {model.config.head_of(task) for task in keep}  # a shared head trains when one of its tasks does
    for name in model.heads:
        model.heads[name].requires_grad_(name in heads)
    for name, vector in (model.task_embeddings or {}).items():
        vector.requires_grad_(name in keep)
    return [name for name in model.config.task_names if name not in trained]


def trained_tasks(config: MultitaskConfig, tasks: Iterable[str]) -> list[str]:
    """The tasks of `config` whose heads train when `tasks` train: `tasks` and every task that shares a head with one
    of them (`config.shared_heads`), in config order."""
    keep = set(tasks)
    heads = {config.head_of(task) for task in keep}
    return [name for name in config.task_names if name in keep or config.head_of(name) in heads]


def extend_task_labels(model: MultitaskModel, task: str, labels: list[str]) -> None:
    """Grows `task`'s label list to `labels` (its current labels first, in order): the existing rows of the head are
    kept, the new rows freshly initialised; tuned per-label thresholds are kept, the new labels get the task's."""
    spec = model.config.task(task)
    old = spec["labels"]
    if list(labels[: len(old)]) != old:
        raise ValueError(f"Task {task!r}: new labels {labels} must start with the current labels {old}.")
    head = model.heads[task]
    new_head = nn.Linear(head.in_features, len(labels)).to(device=head.weight.device, dtype=head.weight.dtype)
    model._init_weights(new_head)
    with torch.no_grad():
        new_head.weight[: len(old)] = head.weight
        new_head.bias[: len(old)] = head.bias
    model.heads[task] = new_head
    grown = {**spec, "labels": list(labels)}
    if spec.get("thresholds") is not None:  # tuned per label: the new labels start at the task's threshold
        grown["thresholds"] = [*spec["thresholds"], *[spec["threshold"]] * (len(labels) - len(old))]
    model.config.tasks = {**model.config.tasks, task: normalize_task(task, grown)}


def match_label_maps(
    data: Mapping[str, TaskData],
    config: MultitaskConfig,
    extend_labels: bool = False,
    train_tasks: Iterable[str] | None = None,
) -> dict:
    r"""
    Makes the label map of every task in `data` that `config` already has the model's own (its order, so that label
    ids mean the same): the data's labels must be among the model's, and the problem types and pair inputs equal. With
    `extend_labels`, labels the model lacks are appended (returned as `{task: full label list}`, to pass to
    [`extend_task_labels`]); without it they are an error naming them, and so are they for a task outside
    `train_tasks` (its frozen head would answer them from untrained rows). A new label that differs from one of the
    model's only in case or spaces is warned about.
    """
    trained = None if train_tasks is None else set(train_tasks)
    to_extend = {}
    for name, task in data.items():
        if name not in config.tasks:
            continue
        spec = config.tasks[name]
        if task.problem_type != spec["problem_type"]:
            raise ValueError(
                f"Task {name!r}: the data is {task.problem_type} but the model's head is {spec['problem_type']}."
            )
        check_pair_input(name, task.spec.text_pair_column, spec)
        extra = [label for label in task.labels if label not in spec["labels"]]
        if extra and not extend_labels:
            raise ValueError(
                f"Task {name!r}: labels {extra} are not in the model's label map {spec['labels']}. Pass "
                "--extend_labels true to append them (their rows of the head start fresh), or use another task name."
            )
        sharing = [other for other in config.tasks if other != name and config.head_of(other) == config.head_of(name)]
        if extra and sharing:
            raise ValueError(
                f"Task {name!r}: labels {extra} are not in its label map, and its head is shared with {sharing} "
                "(--share_heads_by_labels), whose labels cannot grow with it: use another task name for this data."
            )
        if extra and trained is not None and name not in trained:
            raise ValueError(
                f"Task {name!r}: labels {extra} would be added to a head that --train_tasks freezes, and answered "
                f"from rows that never train: add {name!r} to --train_tasks, or leave those rows out of its data."
            )
        known = dict(zip(normalized_labels(spec["labels"]), spec["labels"]))
        near = {label: known[key] for label, key in zip(extra, normalized_labels(extra)) if key in known}
        if near:
            logger.warning(
                f"Task {name!r}: new labels {list(near)} differ from the model's {list(near.values())} only in case "
                "or spaces; they become labels of their own. Rename them in the data if they mean the same."
            )
        task.labels = [*spec["labels"], *extra]
        if extra:
            to_extend[name] = task.labels
    return to_extend


def score_tasks(
    model: MultitaskModel,
    tokenizer: PreTrainedTokenizerBase,
    tasks: Mapping[str, datasets.Dataset],
    batch_size: int = 32,
) -> dict[str, dict[str, float]]:
    """`{task: metrics}` of `model` on each task's tokenized split (nothing written)."""
    predicted = predict_all_logits(model, tasks, tokenizer, batch_size, progress=False)
    return {name: score_task(model.config.task(name), *predicted[name])[0] for name in tasks}


def forgetting_report(
    before: Mapping[str, Mapping[str, float]],
    after: Mapping[str, Mapping[str, float]],
    problem_types: Mapping[str, str],
    margin: float = 0.02,
    trained: Iterable[str] = (),
) -> dict[str, Any]:
    r"""
    Before/after scores of the starting model's tasks on their primary metric (macro F1 / micro F1), and a warning
    (logged, and listed under `"warnings"`) for each task that lost more than `margin`.

    Returns `{"margin": m, "tasks": {task: {"metric", "before", "after", "change", "trained"}}, "warnings": [...]}`.
    """
    trained = set(trained)
    report: dict[str, Any] = {"margin": margin, "tasks": {}, "warnings": []}
    for name, scores in before.items():
        if name not in after:
            continue
        metric = metrics.primary_metric(problem_types[name])
        change = after[name][metric] - scores[metric]
        report["tasks"][name] = {
            "metric": metric,
            "before": scores[metric],
            "after": after[name][metric],
            "change": change,
            "trained": name in trained,
        }
        if change < -margin:
            message = f"Task {name!r} lost {-change:.4f} {metric} ({scores[metric]:.4f} -> {after[name][metric]:.4f})"
            report["warnings"].append(message)
            logger.warning("Forgetting: %s, more than the margin %s.", message, margin)
    return report


__all__ = [
    "extend_task_labels",
    "forgetting_report",
    "freeze_heads_except",
    "is_multitask_folder",
    "match_label_maps",
    "score_tasks",
    "trained_tasks",
]
