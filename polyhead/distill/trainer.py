"""Training the student on the teachers' soft targets, with [`MultitaskTrainer`] (its sampler, collator, checkpoints,
evaluation and saving unchanged).

A distillation row's `labels` hold the soft targets followed by the gold label(s), -100 where the row has none:
`K + 1` floats for a single-label task (the teacher's probabilities at the task's temperature T, then the gold class
id) and `2K` floats for a multi-label task (the teacher's per-label probabilities, then the gold multi-hot). The
collator turns them into one float tensor like any multi-hot label; [`DistillationTrainer.task_loss`] tells them from
hard labels by their width, so evaluation rows labelled with the teacher's decisions (class ids, multi-hot) are scored
and their loss computed as in training.

A joint row trains several tasks on one text: its `task` is their names joined by `+` ([`joint_name`]; `+` is no
task-name character) and its `labels` are their packed rows one after another, in that order. A batch of joint rows
runs the encoder once for all those heads, and its loss is the sum of the tasks' distillation losses (each times its
loss weight).
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


GOLD_WEIGHT_SCHEDULES = ("constant", "linear")  # how the gold-label weight moves over training, `gold_weight_at`
IGNORE = -100.0  # as in the model's task_loss: a row without a gold label
JOINT_SEPARATOR = "+"  # joins the tasks of a joint row into its `task` value


def joint_name(tasks: Sequence[str]) -> str:
    """The `task` value of rows that train every task of `tasks` at once (one task: its own name)."""
    return JOINT_SEPARATOR.join(tasks)


def joint_tasks(name: str) -> list[str]:
    """The tasks a row's `task` value trains (the inverse of [`joint_name`])."""
    return name.split(JOINT_SEPARATOR)


def temperature_for(temperature: float | Mapping[str, float], task: str, problem_type: str) -> float | None:
    """`task`'s distillation temperature: `temperature` itself (one for every task) or its entry in a `{task: T}`
    mapping (`DistillArguments.temperatures`); `None` for a multi-label task, where no temperature applies."""
    if problem_type == MULTI_LABEL:
        return None
    if not isinstance(temperature, Mapping):
        return float(temperature)
    if task not in temperature:
        raise ValueError(f"No distillation temperature for task {task!r}: the mapping has {list(temperature)}.")
    return float(temperature[task])


def soft_targets(problem_type: str, logits: np.ndarray, temperature: float | None) -> np.ndarray:
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
    problem_type: str, logits: np.ndarray, temperature: float | None, gold: Sequence[Any] | None = None
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
    problem_type: str,
    logits: torch.Tensor,
    packed: torch.Tensor,
    temperature: float | None = 2.0,
    gold_weight: float = 0.0,
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


def gold_weight_at(schedule: str, gold_weight: float, progress: float) -> float:
    r"""
    The gold-label weight after the share `progress` (0 to 1) of training: `gold_weight` under `"constant"`,
    `progress * gold_weight` under `"linear"` (teacher annealing, Clark et al. 2019: the student first copies its
    teachers, then moves to the gold labels).

    Example:

    ```python
    >>> gold_weight_at("linear", 1.0, 0.25), gold_weight_at("constant", 0.5, 0.25)
    (0.25, 0.5)
    ```
    """
    if schedule == "constant":
        return gold_weight
    if schedule == "linear":
        return gold_weight * min(max(progress, 0.0), 1.0)
    raise ValueError(f"Unknown gold_weight_schedule {schedule!r}: use one of {list(GOLD_WEIGHT_SCHEDULES)}.")


def packed_width(problem_type: str, num_labels: int) -> int:
    """Floats in one packed row: `K + 1` (single-label) or `2K` (multi-label)."""
    return 2 * num_labels if problem_type == MULTI_LABEL else num_labels + 1


def is_packed(problem_type: str, num_labels: int, labels: torch.Tensor) -> bool:
    """Whether `labels` are packed distillation targets (rather than class ids or a multi-hot)."""
    width = packed_width(problem_type, num_labels)
    return labels.is_floating_point() and labels.dim() == 2 and labels.shape[-1] == width


class DistillationTrainer(MultitaskTrainer):
    r"""
    A [`MultitaskTrainer`] whose train rows carry the teachers' soft targets (and optional gold labels); its
    evaluation rows carry the teachers' decisions, so `eval_<task>_accuracy` is the student's agreement with the
    teacher. A train dataset may be joint (see the module docstring: keyed and labelled by [`joint_name`]); the
    sampler treats it as one task, each of its batches trains all its tasks with one encoder pass. Training logs add
    `loss_<task>` (each task's weighted loss, mean over this process's batches since the last log) and the final
    metrics `train_loss_<task>` (mean over the batches of this `train()` call), so joint and per-task runs compare
    task by task.

    Args:
        distill_temperature (`float` or `dict[str, float]`): softmax temperature of single-label soft targets and
            student logits, one for every task or `{task: T}` for each single-label task ([`temperature_for`]).
        gold_weight (`float`): weight of the gold-label loss on rows that have a gold label (0: teachers only).
        gold_weight_schedule (`str`): `"constant"`, or `"linear"`: the weight grows from 0 at the first step to
            `gold_weight` at the last (teacher annealing, [`gold_weight_at`]).
        args, kwargs: as for [`MultitaskTrainer`].

    Example:

    ```python
    >>> trainer = DistillationTrainer(model, args, train_datasets={"sentiment": rows}, processing_class=tokenizer,
    ...                               distill_temperature=2.0)
    >>> trainer.train()
    ```
    """

    def __init__(
        self,
        *args,
        distill_temperature: float | Mapping[str, float] = 2.0,
        gold_weight: float = 0.0,
        gold_weight_schedule: str = "constant",
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.distill_temperature = (
            dict(distill_temperature) if isinstance(distill_temperature, Mapping) else float(distill_temperature)
        )
        self.gold_weight = float(gold_weight)
        gold_weight_at(gold_weight_schedule, self.gold_weight, 0.0)  # an unknown schedule fails here
        self.gold_weight_schedule = gold_weight_schedule
        for task in (task for key in self.train_datasets for task in self.batch_tasks(key)):
            self.temperature_for(task)  # a task without a temperature fails here, not mid-training
        if any(len(self.batch_tasks(key)) > 1 for key in self.train_datasets):
            check_joint_batches(self.args)
        self._logged_losses: dict[str, dict[str, list]] = {"loss": {}, "train_loss": {}}  # {task: [sum, count]}

    def batch_tasks(self, task: str) -> list[str]:
        return joint_tasks(task)

    def compute_loss(
        self,
        model: torch.nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, dict[str, Any]]:
        """A per-task batch: [`MultitaskTrainer`]'s loss. A joint batch: one forward for all its tasks, the sum of
        their losses."""
        tasks = self.batch_tasks(inputs["task"])
        if len(tasks) == 1:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        inputs = dict(inputs)
        labels = inputs.pop("labels")
        logits = model(**{**inputs, "task": tasks}).logits
        specs = [self.model.config.tasks[task] for task in tasks]
        widths = [packed_width(spec["problem_type"], len(spec["labels"])) for spec in specs]
        if labels.shape[-1] != sum(widths):
            raise ValueError(f"Joint rows of {tasks} need {sum(widths)} packed floats, got {labels.shape[-1]}.")
        losses = []
        for task, task_labels in zip(tasks, labels.split(widths, dim=-1)):
            loss = self.task_loss(task, logits[task], task_labels, self.label_smoothing(model))
            losses.append(self.balancer(task, loss) if self.balancer is not None and model.training else loss)
        loss = torch.stack(losses).sum()
        if model.training:  # weight 1 for clipping: the tasks' weights act within the joint gradient
            self._step_tasks.append(None)
        return (loss, {"loss": loss, "logits": logits}) if return_outputs else loss

    def temperature_for(self, task: str) -> float | None:
        """`task`'s distillation temperature (`None`: a multi-label task)."""
        return temperature_for(self.distill_temperature, task, self.model.config.tasks[task]["problem_type"])

    def current_gold_weight(self) -> float:
        """The gold-label weight of this step: `gold_weight_at` the share of training done."""
        progress = self.state.global_step / self.state.max_steps if self.state.max_steps else 1.0
        return gold_weight_at(self.gold_weight_schedule, self.gold_weight, progress)

    def task_loss(
        self, task: str, logits: torch.Tensor, labels: torch.Tensor, label_smoothing: float = 0.0
    ) -> torch.Tensor:
        spec = self.model.config.tasks[task]
        if not is_packed(spec["problem_type"], len(spec["labels"]), labels):  # gold labels: smoothed if asked
            return super().task_loss(task, logits, labels, label_smoothing)
        temperature = self.temperature_for(task)
        loss = distillation_loss(spec["problem_type"], logits, labels, temperature, self.current_gold_weight())
        loss = loss * self.loss_weights.get(task, 1.0)
        if self.model.training:  # a training batch (evaluation runs the model in eval mode)
            for totals in self._logged_losses.values():
                total = totals.setdefault(task, [0.0, 0])
                total[0], total[1] = total[0] + loss.detach(), total[1] + 1
        return loss

    def log(self, logs: dict[str, float], *args, **kwargs) -> None:
        for key, totals in self._logged_losses.items():  # "loss": a periodic log, "train_loss": the final metrics
            if key in logs:
                logs.update({f"{key}_{task}": round(float(s) / n, 4) for task, (s, n) in totals.items()})
                if key == "loss":
                    totals.clear()
        super().log(logs, *args, **kwargs)


def check_joint_batches(training_args: Any) -> None:
    """Joint batches train several tasks in one backward pass: refused with `--pcgrad`, which needs each task's own
    gradient."""
    if getattr(training_args, "pcgrad", False):
        raise ValueError(
            "--pcgrad projects each task's own gradient, but a joint batch trains several tasks in one pass: use "
            "--joint_batches false with --pcgrad."
        )


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
    "GOLD_WEIGHT_SCHEDULES",
    "JOINT_SEPARATOR",
    "DistillationTrainer",
    "check_joint_batches",
    "distillation_loss",
    "gold_weight_at",
    "is_packed",
    "joint_name",
    "joint_tasks",
    "pack_targets",
    "packed_width",
    "soft_targets",
    "student_dataset",
    "teacher_decisions",
    "temperature_for",
]
