"""Training the student on the teachers' soft targets, with [`MultitaskTrainer`] (its sampler, collator, checkpoints,
evaluation and saving unchanged).

A distillation row's `labels` hold the soft targets followed by the gold label(s), -100 where the row has none:
`K + 1` floats for a single-label task (the teacher's probabilities at temperature T, then the gold class id) and
`2K` floats for a multi-label task (the teacher's per-label probabilities, then the gold multi-hot). The collator
turns them into one float tensor like any multi-hot label; [`DistillationTrainer.task_loss`] tells them from hard
labels by their width, so evaluation rows labelled with the teacher's decisions (class ids, multi-hot) are scored
and their loss computed as in training.
"""

from collections.abc import Mapping, Sequence
from typing import Any

import datasets
import numpy as np
import torch
import torch.nn.functional as F
from transformers import PreTrainedTokenizerBase

from polyhead.decisions import decision_thresholds
from polyhead.evaluation.thresholds import above_thresholds
from polyhead.remote_code import MULTI_LABEL
from polyhead.training.trainer import MultitaskTrainer


IGNORE = -100.0  # as in the model's task_loss: a row without a gold label


def soft_targets(problem_type: str, logits: np.ndarray, temperature: float) -> np.ndarray:
    """The teacher's probabilities: softmax of `logits / temperature` (single-label) or the per-label sigmoid
    (multi-label, where the temperature does not apply)."""
    logits = np.asarray(logits, dtype=np.float64)
    if problem_type == MULTI_LABEL:
        return 1.0 / (1.0 + np.exp(-logits))
    scaled = logits / temperature
    scaled -= scaled.max(axis=-1, keepdims=True)
    exp = np.exp(scaled)
    return exp / exp.sum(axis=-1, keepdims=True)


def teacher_decisions(spec: Mapping[str, Any], logits: np.ndarray) -> list:
    """The teacher's answers as hard labels: class ids (argmax) or multi-hot lists at the task's thresholds."""
    if spec["problem_type"] == MULTI_LABEL:
        return above_thresholds(logits, decision_thresholds(spec)).astype(np.float32).tolist()
    return np.asarray(logits).argmax(axis=-1).tolist()


def pack_targets(
    problem_type: str, logits: np.ndarray, temperature: float, gold: Sequence[Any] | None = None
) -> list[list[float]]:
    r"""
    One `labels` row per text: soft targets then the gold label(s) (-100 where `gold` has `None` or is absent).

    Example:

    ```python
    >>> pack_targets("single_label_classification", np.array([[2.0, 0.0]]), 1.0, [None])
    [[0.8807970779778823, 0.11920292202211769, -100.0]]
    ```
    """
    soft = soft_targets(problem_type, logits, temperature)
    width = soft.shape[-1] if problem_type == MULTI_LABEL else 1
    rows = []
    for i, probabilities in enumerate(soft.tolist()):
        value = None if gold is None else gold[i]
        if value is None:
            tail = [IGNORE] * width
        else:
            tail = [float(v) for v in value] if problem_type == MULTI_LABEL else [float(value)]
        rows.append(probabilities + tail)
    return rows


def distillation_loss(
    problem_type: str, logits: torch.Tensor, packed: torch.Tensor, temperature: float = 2.0, gold_weight: float = 0.0
) -> torch.Tensor:
    r"""
    The student's loss on packed rows (see the module docstring), a mean over rows. Single-label: the KL divergence
    from the teacher's to the student's distribution, both at `temperature`, times `temperature**2` (Hinton et al.,
    so gradients keep their scale as T changes). Multi-label: per-label BCE against the teacher's probabilities. A
    row with a gold label mixes in the usual cross-entropy / BCE on it: `(1 - gold_weight) * soft + gold_weight *
    gold`.

    Example:

    ```python
    >>> distillation_loss("single_label_classification", torch.zeros(1, 2), torch.tensor([[0.5, 0.5, -100.0]]))
    tensor(0.)
    ```
    """
    logits = logits.float()
    packed = packed.to(logits.device, torch.float32)
    k = logits.shape[-1]
    soft, gold = packed[:, :k], packed[:, k:]
    if problem_type == MULTI_LABEL:
        soft_rows = F.binary_cross_entropy_with_logits(logits, soft, reduction="none").mean(-1)
        has_gold = (gold != IGNORE).all(-1)
        gold_rows = F.binary_cross_entropy_with_logits(logits, gold.clamp(min=0), reduction="none").mean(-1)
    else:
        log_student = F.log_softmax(logits / temperature, dim=-1)
        soft_rows = F.kl_div(log_student, soft, reduction="none").sum(-1) * temperature**2
        ids = gold[:, 0]
        has_gold = ids != IGNORE
        gold_rows = F.cross_entropy(logits, ids.clamp(min=0).long(), reduction="none")
    mixed = torch.where(has_gold, (1.0 - gold_weight) * soft_rows + gold_weight * gold_rows, soft_rows)
    return mixed.mean()


def is_packed(problem_type: str, num_labels: int, labels: torch.Tensor) -> bool:
    """Whether `labels` are packed distillation targets (rather than class ids or a multi-hot)."""
    width = 2 * num_labels if problem_type == MULTI_LABEL else num_labels + 1
    return labels.is_floating_point() and labels.dim() == 2 and labels.shape[-1] == width


class DistillationTrainer(MultitaskTrainer):
    r"""
    A [`MultitaskTrainer`] whose train rows carry the teachers' soft targets (and optional gold labels); its
    evaluation rows carry the teachers' decisions, so `eval_<task>_accuracy` is the student's agreement with the
    teacher.

    Args:
        distill_temperature (`float`): softmax temperature of single-label soft targets and student logits.
        gold_weight (`float`): weight of the gold-label loss on rows that have a gold label (0: teachers only).
        args, kwargs: as for [`MultitaskTrainer`].

    Example:

    ```python
    >>> trainer = DistillationTrainer(model, args, train_datasets={"sentiment": rows}, processing_class=tokenizer,
    ...                               distill_temperature=2.0)
    >>> trainer.train()
    ```
    """

    def __init__(self, *args, distill_temperature: float = 2.0, gold_weight: float = 0.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.distill_temperature = float(distill_temperature)
        self.gold_weight = float(gold_weight)

    def task_loss(self, task: str, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        spec = self.model.config.tasks[task]
        if not is_packed(spec["problem_type"], len(spec["labels"]), labels):
            return super().task_loss(task, logits, labels)
        loss = distillation_loss(spec["problem_type"], logits, labels, self.distill_temperature, self.gold_weight)
        return loss * self.loss_weights.get(task, 1.0)


def student_dataset(
    task: str,
    texts: Sequence[str],
    pairs: Sequence[str] | None,
    labels: Sequence[Any],
    tokenizer: PreTrainedTokenizerBase,
    max_length: int,
) -> datasets.Dataset:
    r"""
    Tokenized rows of one student task (`input_ids`, `attention_mask`(, `token_type_ids`), `labels`, `task`), as
    `polyhead.data.tokenize_task_data` makes them; `labels` are packed targets, class ids or multi-hot lists.

    Example:

    ```python
    >>> student_dataset("sentiment", ["good"], None, [[0.9, 0.1, -100.0]], tokenizer, 128).column_names
    ['labels', 'input_ids', 'token_type_ids', 'attention_mask', 'task']
    ```
    """
    columns = {"text": list(texts)} | ({"text_pair": list(pairs)} if pairs is not None else {})
    first = labels[0] if len(labels) else 0
    feature = datasets.List(datasets.Value("float32")) if isinstance(first, list) else datasets.Value("int64")
    features = datasets.Features({name: datasets.Value("string") for name in columns} | {"labels": feature})
    dataset = datasets.Dataset.from_dict({**columns, "labels": list(labels)}, features=features)

    def encode(batch: dict[str, list]) -> dict[str, list]:
        inputs = [batch["text"]] + ([batch["text_pair"]] if "text_pair" in batch else [])
        encoded = tokenizer(*inputs, truncation=True, max_length=max_length)
        return {**encoded, "task": [task] * len(batch["text"])}

    return dataset.map(encode, batched=True, remove_columns=list(columns), desc=f"Tokenizing {task}")


__all__ = [
    "DistillationTrainer",
    "distillation_loss",
    "is_packed",
    "pack_targets",
    "soft_targets",
    "student_dataset",
    "teacher_decisions",
]
