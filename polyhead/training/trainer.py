"""Multitask training on transformers' `Trainer`: single-task batches, per-task loss weights, multitask evaluation.

[`MultitaskTrainer`] changes only what multitask training needs: the train dataloader (a [`TaskBatchSampler`] over the
concatenated task train sets), the loss (per-task loss weights, optional class weights) and `evaluate()` (every task's
validation split in one pass over all tasks' rows, `eval_<task>_<metric>` plus `eval_average_primary`, the metric
early stopping and `reduce_lr_on_plateau` watch). AdamW, schedules, gradient accumulation, fp16/bf16, checkpoints and
resume, progress bars and DDP are Trainer's own. In a multi-process run (`torchrun`, `accelerate launch`; gloo on CPU,
see `MultitaskTrainingArguments`) the sampler gives each process its share of every epoch's batches, and only rank 0
scores the final model and writes the model folder while the others wait.

[`run`] is the whole job behind `scripts/train.py`. The final model folder (`training_args.model_dir`) holds:

- the Hub-ready model (`polyhead.saving.save_model_folder`: safetensors weights, config, remote code, tokenizer);
- `results.json`, `classification_report_<task>.txt`, `confusion_matrix_<task>.png` (`polyhead.evaluation.scoring`);
- `training_args.json`, with the stable keys `{"model": ModelArguments, "data": DataArguments with "tasks" as a list
  of TaskSpec dicts, "training": TrainingArguments.to_dict(), "tasks": config tasks (labels, problem type),
  "num_train_examples": {task: n}, "train_metrics": {...}, "log_history": [...], "polyhead_version": str}`;
- with `single_task_baselines`, `baselines/results.json`: the same schema as `results.json`, one single-task model per
  task trained with the same arguments (their model folders are under `<output_dir>/baselines/<task>/model`; their
  checkpoints are removed once that folder is written, unless `keep_baseline_checkpoints`).
"""

import dataclasses
import inspect
import json
import logging
import os
import re
import shutil
import time
import zipfile
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import datasets
import torch
from accelerate.data_loader import prepare_data_loader
from torch.utils.data import ConcatDataset, DataLoader
from transformers import (
    AutoTokenizer,
    EarlyStoppingCallback,
    EvalPrediction,
    PreTrainedTokenizerBase,
    Trainer,
    TrainingArguments,
    set_seed,
)
from transformers.tokenization_utils_base import VERY_LARGE_INTEGER
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, EvalLoopOutput

from polyhead import __version__, choices
from polyhead.data import MultitaskCollator, TaskData, class_weights, load_task_data, tokenize_task_data
from polyhead.encoders import (
    TINY_ENCODER,
    check_max_length,
    default_max_length,
    encoder_config,
    encoder_hub_id,
    hub_id,
    hub_id_or_none,
    resolve_encoder,
)
from polyhead.evaluation import metrics
from polyhead.evaluation.scoring import (
    NOT_SCORED_HINT,
    predict_all_logits,
    score_model,
    score_task,
    task_records,
    trained_max_length,
    write_evaluation,
)
from polyhead.evaluation.thresholds import tune_model_thresholds
from polyhead.presets import tiny_encoder_config, tiny_tokenizer
from polyhead.remote_code import (
    MULTI_LABEL,
    MULTIPLE_CHOICE,
    MultitaskConfig,
    MultitaskModel,
    check_room_for_text,
    check_tokenizer,
    normalize_task,
)
from polyhead.run_folder import (
    BASELINES_DIR,
    MODEL_DIR,
    TRAINING_ARGS_FILE,
    check_output_folder,
    check_weights_file,
    model_loading,
    read_results,
    read_training_args,
    write_baseline_results,
    write_training_args,
)
from polyhead.saving import CHECKPOINT_MARKER, check_target_folder, save_model_folder
from polyhead.serving.compiled import faster_bf16
from polyhead.training import balancing, head_options, parity
from polyhead.training.arguments import DataArguments, ModelArguments, MultitaskTrainingArguments
from polyhead.training.capping import cap_train_rows
from polyhead.training.grow import (
    extend_task_labels,
    forgetting_report,
    freeze_heads_except,
    match_label_maps,
    score_tasks,
    trained_tasks,
)
from polyhead.training.pcgrad import PCGradAccumulator, average_gradients
from polyhead.training.sampling import TaskBatchSampler


logger = logging.getLogger(__name__)

CHECKPOINT_PATTERN = re.compile(r"checkpoint-(\d+)")  # transformers' Trainer names checkpoints checkpoint-<step>


class MultitaskTrainer(Trainer):
    r"""
    A `Trainer` whose batches each hold one task, drawn by a [`TaskBatchSampler`].

    Args:
        model (`MultitaskModel`): the model; its config lists the tasks.
        args (`TrainingArguments`): as for `Trainer`.
        train_datasets (`dict[str, Dataset]`): tokenized train split of each task (columns of
            `polyhead.data.tokenize_task_data`).
        eval_datasets (`dict[str, Dataset]`, *optional*): tokenized validation split of each task.
        processing_class: the tokenizer (pads batches, saved with checkpoints).
        loss_weights (`dict[str, float]`, *optional*): multiplies each task's loss (default 1). Gradient clipping
            (`max_grad_norm`) is scaled by the step's mean weight, so a weight also survives a clipped step.
        class_weights (`dict[str, list[float]]`, *optional*): weighted cross-entropy / BCE `pos_weight` per task, one
            weight per label. Both are refused for a task the model lacks ([`check_task_weights`]).
        sampling (`str`), temperature (`float`): the [`TaskBatchSampler`] strategy.
        head_learning_rates (`dict[str, float | None]`, *optional*): per-task head learning rate overrides (over
            `args.head_learning_rate`); with `args.loss_balancing` and `args.pcgrad`, the remedies of
            `polyhead.training.balancing` and `polyhead.training.pcgrad`.
        kwargs: passed to `Trainer` (callbacks, optimizers...). `compute_metrics` is called once per task with the
            task's `EvalPrediction` (logits of all its evaluation rows, labels) and, when it takes a `task`
            argument, the task's name; what it returns is logged as `eval_<task>_<name>` beside polyhead's metrics.

    Example:

    ```python
    >>> trainer = MultitaskTrainer(model, args, train_datasets={"a": train_a, "b": train_b},
    ...                            eval_datasets={"a": val_a, "b": val_b}, processing_class=tokenizer)
    >>> trainer.train()
    >>> trainer.evaluate()["eval_average_primary"]
    ```
    """

    def __init__(
        self,
        model: MultitaskModel,
        args: MultitaskTrainingArguments,
        train_datasets: Mapping[str, datasets.Dataset] | None = None,
        eval_datasets: Mapping[str, datasets.Dataset] | None = None,
        processing_class: PreTrainedTokenizerBase | None = None,
        loss_weights: Mapping[str, float] | None = None,
        class_weights: Mapping[str, list[float] | None] | None = None,
        sampling: str = "proportional",
        temperature: float = 2.0,
        head_learning_rates: Mapping[str, float | None] | None = None,
        **kwargs,
    ):
        self.train_datasets = dict(train_datasets or {})
        self.eval_datasets = dict(eval_datasets or {})
        trained = {task for key in self.train_datasets for task in self.batch_tasks(key)}
        unknown = sorted((trained | set(self.eval_datasets)) - set(model.config.tasks))
        if unknown:
            raise ValueError(f"Datasets given for task(s) {unknown} that the model lacks ({model.config.task_names}).")
        check_task_weights(model.config, loss_weights or {}, class_weights or {})
        kwargs.setdefault("data_collator", MultitaskCollator(processing_class))
        train_dataset = ConcatDataset(list(self.train_datasets.values())) if self.train_datasets else None
        check_metrics_arguments(args, kwargs.get("compute_metrics"))
        super().__init__(
            model=model,
            args=args,
            train_dataset=train_dataset,
            eval_dataset=self.eval_datasets or None,
            processing_class=processing_class,
            **kwargs,
        )
        # Our loss is a per-batch mean: Trainer must scale it for gradient accumulation itself.
        self.model_accepts_loss_kwargs = False
        self.loss_weights = {task: float(w) for task, w in (loss_weights or {}).items()}
        self.class_weights = {task: w for task, w in (class_weights or {}).items() if w is not None}
        self.sampling, self.temperature = sampling, temperature
        self._set_up_remedies(head_learning_rates)
        self._check_best_metric()
        # the tasks of the current step's batches (None: a joint batch), and the clipping scale their loss weights
        # give (see _clip_grad_norm)
        self._step_tasks: list[str | None] = []
        self._clip_scale = 1.0

    def _set_up_remedies(self, head_learning_rates: Mapping[str, float | None] | None) -> None:
        # The remedies for a losing task (all off by default): loss balancing and head rates (balancing.py), PCGrad.
        tasks = list(dict.fromkeys(t for key in self.train_datasets for t in self.batch_tasks(key)))
        tasks = tasks or list(self.model.config.tasks)
        rates = balancing.head_learning_rates(
            tasks, getattr(self.args, "head_learning_rate", None), head_learning_rates
        )
        self.head_learning_rates = balancing.rates_by_head(rates, tasks, self.model.config.head_of)
        self.balancer = balancing.make_balancer(getattr(self.args, "loss_balancing", "none"), tasks)
        if self.balancer is not None:
            self.balancer.to(self.args.device)
        use_pcgrad = getattr(self.args, "pcgrad", False)
        if use_pcgrad and self.args.gradient_accumulation_steps * self.args.world_size < len(tasks):
            logger.warning(
                f"pcgrad: a step holds {self.args.gradient_accumulation_steps * self.args.world_size} single-task "
                f"batches for {len(tasks)} tasks, so it often sees one task and has nothing to project: use "
                f"--gradient_accumulation_steps {len(tasks)} with --sampling round_robin."
            )
        self.pcgrad = PCGradAccumulator(self.model, tasks, seed=self.args.seed) if use_pcgrad else None

    def _check_best_metric(self) -> None:
        # Trainer would raise a KeyError at the first evaluation, after training up to it: refuse before any step.
        evaluated = {task: self.model.config.task(task)["problem_type"] for task in self.eval_datasets}
        if self.args.eval_strategy != "no":  # else `evaluate` checks the names when called
            check_metric_names(evaluated)
        if self.compute_metrics is None:  # its names are known only once it runs
            check_best_metric(self.args.metric_for_best_model, evaluated)

    def batch_tasks(self, task: str) -> list[str]:
        """The model tasks that a train batch (or train dataset) named `task` trains: that one task here;
        `polyhead.distill.DistillationTrainer` adds joint batches that train several."""
        return [task]

    def create_optimizer(self, *args, **kwargs) -> torch.optim.Optimizer:
        """Trainer's optimizer, with the heads' own learning rates and the loss balancer's parameters when asked."""
        fresh = self.optimizer is None
        optimizer = super().create_optimizer(*args, **kwargs)
        if fresh:
            balancing.split_head_learning_rates(optimizer, self.model, self.head_learning_rates)
            if self.balancer is not None:
                rate = getattr(self.args, "balancing_learning_rate", 0.01)
                optimizer.add_param_group(
                    {"params": list(self.balancer.parameters()), "lr": rate, "weight_decay": 0.0}
                )
        return optimizer

    def training_step(self, model: torch.nn.Module, inputs: dict[str, Any], *args, **kwargs) -> torch.Tensor:
        """Trainer's step; with PCGrad each micro-batch's encoder gradient goes to its task's buffer (no DDP
        reduction: the accumulator reduces per task) and the last micro-batch of a step writes the projected sum."""
        task = inputs["task"]
        if self.pcgrad is None:
            loss = super().training_step(model, inputs, *args, **kwargs)
        else:
            with self.accelerator.no_sync(model):
                loss = super().training_step(model, inputs, *args, **kwargs)
            self.pcgrad.collect(task)
        if self.accelerator.sync_gradients:
            if self.pcgrad is not None:
                self.pcgrad.apply(self.args.world_size)
            if self.balancer is not None and self.args.world_size > 1:
                average_gradients(self.balancer.parameters(), self.args.world_size)
            self._clip_scale = self._step_clip_scale()
        return loss

    def _weighted(self) -> bool:
        """Whether any task's loss is weighted (fixed weights other than 1, or a balancer): then clipping scales."""
        return self.balancer is not None or any(w != 1.0 for w in self.loss_weights.values())

    def _step_clip_scale(self) -> float:
        """The mean loss weight of the step's batches (over every process): a task's fixed weight times the balancer's
        (constant within a step), 1 for a joint batch; the step's tasks are reset for the next step."""
        tasks, self._step_tasks = self._step_tasks, []
        if not self._weighted():
            return 1.0
        learned = self.balancer.weights() if self.balancer is not None else {}
        weights = [1.0 if t is None else self.loss_weights.get(t, 1.0) * learned.get(t, 1.0) for t in tasks]
        scale = sum(weights) / len(weights) if weights else 1.0
        if self.args.world_size > 1:  # every process must clip the all-reduced gradient alike
            scale = float(self.accelerator.reduce(torch.tensor(scale, device=self.args.device), reduction="mean"))
        return scale

    def _clip_grad_norm(self, model: torch.nn.Module):
        """Trainer's clipping with `max_grad_norm` times the step's mean loss weight. A step holds one task's batches,
        and clipping sets its gradient's norm whatever the loss was multiplied by: at the default `max_grad_norm=1`
        many steps are clipped, and a fixed `loss_weight` or a balancer's weight changed nothing on those. Scaled, a
        one-task step's update is its weight times the unweighted gradient clipped (docs/parity.md)."""
        if self._clip_scale == 1.0:
            return super()._clip_grad_norm(model)
        max_grad_norm = self.args.max_grad_norm
        self.args.max_grad_norm = max_grad_norm * self._clip_scale
        try:
            return super()._clip_grad_norm(model)
        finally:
            self.args.max_grad_norm = max_grad_norm

    def log(self, logs: dict[str, float], *args, **kwargs) -> None:
        if "loss" in logs and self.balancer is not None:  # training logs: each task's current learned weight
            logs.update({f"loss_weight_{task}": round(w, 4) for task, w in self.balancer.weights().items()})
        if "loss" in logs and self.pcgrad is not None:
            logs["pcgrad_conflicts"] = self.pcgrad.pop_conflicts()
        super().log(logs, *args, **kwargs)

    def _save_optimizer_and_scheduler(self, output_dir: str) -> None:
        super()._save_optimizer_and_scheduler(output_dir)
        if self.balancer is not None and self.args.should_save:
            self.balancer.save(output_dir)

    def _load_optimizer_and_scheduler(self, checkpoint: str | None) -> None:
        super()._load_optimizer_and_scheduler(checkpoint)
        if self.balancer is not None and checkpoint is not None:
            self.balancer.load(checkpoint)

    def make_batch_sampler(self) -> TaskBatchSampler:
        """The train batch sampler (seeded by `data_seed`, else `seed`), holding this process's share of each epoch."""
        seed = self.args.sampling_seed
        sizes = [len(dataset) for dataset in self.train_datasets.values()]
        return TaskBatchSampler(
            sizes,
            self._train_batch_size,
            self.sampling,
            self.temperature,
            seed=seed,
            num_replicas=self.args.world_size,
            rank=self.args.process_index,
            lengths=self.train_lengths() if self.args.train_sampling_strategy == "group_by_length" else None,
        )

    def train_lengths(self) -> list[list[int]]:
        """Each train set's row lengths for `--train_sampling_strategy group_by_length`: its `length_column_name`
        column when it has one, else the tokens of `input_ids` (a multiple-choice row: its longest choice)."""
        column = self.args.length_column_name
        lengths = []
        for dataset in self.train_datasets.values():
            if column in dataset.column_names:
                lengths.append([int(n) for n in dataset[column]])
            else:
                rows = dataset["input_ids"]
                lengths.append([max(map(len, ids)) if ids and isinstance(ids[0], list) else len(ids) for ids in rows])
        return lengths

    def get_train_dataloader(self) -> DataLoader:
        if not self.train_datasets:
            raise ValueError("MultitaskTrainer: training requires train_datasets.")
        loader = DataLoader(
            self.train_dataset,
            batch_sampler=self.make_batch_sampler(),
            collate_fn=self.data_collator,
            num_workers=self.args.dataloader_num_workers,
            pin_memory=self.args.dataloader_pin_memory and torch.cuda.is_available(),
            persistent_workers=self.args.dataloader_persistent_workers and self.args.dataloader_num_workers > 0,
        )
        if self.args.world_size == 1:
            return self.accelerator.prepare(loader)
        # Our sampler already holds this process's share of the batches. accelerate's own sharding
        # (BatchSamplerShard) assumes equal-sized batches: with a task's short last batch it drops batches and pads
        # with rows of other tasks, so the loader is only placed on the device, as a one-process loader.
        return prepare_data_loader(
            loader, self.accelerator.device, num_processes=1, process_index=0, put_on_device=True, rng_types=None
        )

    def compute_loss(
        self,
        model: torch.nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, dict[str, torch.Tensor]]:
        inputs = dict(inputs)
        labels, task = inputs.pop("labels"), inputs["task"]
        logits = model(**inputs).logits[task]
        loss = self.task_loss(task, logits, labels, self.label_smoothing(model))
        if model.training:  # training only: evaluation losses stay comparable
            if self.balancer is not None:
                loss = self.balancer(task, loss)
            self._step_tasks.append(task)
        return (loss, {"loss": loss, "logits": logits}) if return_outputs else loss

    def task_loss(
        self, task: str, logits: torch.Tensor, labels: torch.Tensor, label_smoothing: float = 0.0
    ) -> torch.Tensor:
        """The model's loss for `task`, class-weighted if asked, label-smoothed by `label_smoothing`, times the task's
        loss weight."""
        class_weights = self.class_weights.get(task)
        loss = self.model.task_loss(task, logits, labels, class_weights, label_smoothing=label_smoothing)
        return loss * self.loss_weights.get(task, 1.0)

    def label_smoothing(self, model: torch.nn.Module) -> float:
        """`--label_smoothing_factor` while training; 0 in evaluation, whose losses stay comparable across runs."""
        return self.args.label_smoothing_factor if model.training else 0.0

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None) -> tuple:
        """The Trainer's step; a multiple-choice batch's logits come with its choice mask as 0/1 (`evaluation_loop`
        pads both, then keeps only the real choices' logits)."""
        loss, logits, labels = super().prediction_step(model, inputs, prediction_loss_only, ignore_keys)
        if logits is not None and "choice_mask" in inputs:
            logits = (logits, inputs["choice_mask"].long())
        return loss, logits, labels

    def evaluation_loop(self, *args, **kwargs) -> EvalLoopOutput:
        """The Trainer's loop (what `predict` and a multi-process `evaluate` run). It pads logits of different widths
        with -100 across batches and processes; multiple-choice logits get `PADDED_CHOICE` there instead
        ([`polyhead.choices.real_choice_logits`]), so that a padding choice is never chosen nor scored."""
        output = super().evaluation_loop(*args, **kwargs)
        if isinstance(output.predictions, tuple):  # (logits, choice mask) from `prediction_step`
            output = output._replace(predictions=choices.real_choice_logits(*output.predictions))
        return output

    def evaluate(
        self,
        eval_dataset: Mapping[str, datasets.Dataset] | None = None,
        ignore_keys: list[str] | None = None,
        metric_key_prefix: str = "eval",
    ) -> dict[str, float]:
        """Evaluates every task; returns `{prefix}_<task>_<metric>`, `{prefix}_<task>_loss` (the task's weighted loss
        over all its rows), `{prefix}_loss` (mean of the task losses) and `{prefix}_average_primary` (mean of each
        task's primary metric).

        On one process every task's rows run in ONE pass ([`predict_all_logits`]: texts shared by tasks are encoded
        once, batches mix tasks), so hundreds of small tasks cost what their rows cost rather than a DataLoader and an
        evaluation loop each. With several processes each task goes through the Trainer's distributed loop, every
        process scoring its share of the rows."""
        eval_datasets = dict(eval_dataset) if eval_dataset is not None else self.eval_datasets
        if not eval_datasets:
            raise ValueError("MultitaskTrainer: evaluation requires eval_datasets ({task: Dataset}).")
        evaluated = {task: self.model.config.task(task)["problem_type"] for task in eval_datasets}
        check_metric_names(evaluated)
        ours = {f"{metric_key_prefix}_{name}" for name in reported_metrics(evaluated)}
        start, output, task_results, losses = time.time(), {}, {}, []
        for task, (logits, labels) in self._task_logits(eval_datasets, ignore_keys, metric_key_prefix).items():
            prefix = f"{metric_key_prefix}_{task}"
            task_results[task], _ = score_task(self.model.config.task(task), logits, labels)
            output.update({f"{prefix}_{key}": value for key, value in task_results[task].items()})
            loss = self.task_loss(task, torch.as_tensor(logits).float(), torch.as_tensor(labels))
            output[f"{prefix}_loss"] = float(loss)
            losses.append(float(loss))
            output.update(self._user_metrics(task, logits, labels, prefix, ours | set(output)))
        output[f"{metric_key_prefix}_average_primary"] = metrics.macro_average(task_results, evaluated)["primary"]
        output[f"{metric_key_prefix}_loss"] = float(sum(losses) / len(losses))
        output[f"{metric_key_prefix}_runtime"] = round(time.time() - start, 4)
        self.log(output)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, output)
        return output

    def _user_metrics(self, task: str, logits, labels, prefix: str, reported: Collection[str]) -> dict[str, Any]:
        """What the user's `compute_metrics` returns for `task`, prefixed; a name already `reported` (polyhead's for
        any task, or the user's for an earlier task) is refused."""
        if self.compute_metrics is None:
            return {}
        prediction = EvalPrediction(predictions=logits, label_ids=labels)
        takes_task = "task" in inspect.signature(self.compute_metrics).parameters
        values = self.compute_metrics(prediction, task=task) if takes_task else self.compute_metrics(prediction)
        clashes = sorted(f"{prefix}_{name}" for name in values if f"{prefix}_{name}" in reported)
        if clashes:
            raise ValueError(
                f"compute_metrics returned {clashes} for task {task!r}, which evaluation already reports (polyhead's "
                "metrics, or another task's): give your metrics other names."
            )
        return {f"{prefix}_{name}": value for name, value in values.items()}

    def _task_logits(
        self, eval_datasets: Mapping[str, datasets.Dataset], ignore_keys: list[str] | None, metric_key_prefix: str
    ) -> dict[str, tuple]:
        """`{task: (logits, labels)}` over each task's evaluation rows (see [`evaluate`])."""
        if self.args.world_size == 1:
            tokenizer = self.processing_class or getattr(self.data_collator, "tokenizer", None)
            with self.autocast_smart_context_manager():
                return predict_all_logits(
                    self.model, eval_datasets, tokenizer, self.args.eval_batch_size, not self.args.disable_tqdm
                )
        results = {}
        for task, dataset in eval_datasets.items():
            prefix = f"{metric_key_prefix}_{task}"
            loader = self._get_dataloader(
                dataset,
                f"Evaluation [{task}]",
                self.args.eval_batch_size,
                self._get_eval_sampler,
                dataloader_key=prefix,
            )
            user_metrics, self.compute_metrics = self.compute_metrics, None  # called by `evaluate`, once per task
            try:
                loop = self.evaluation_loop(loader, f"Evaluation [{task}]", False, ignore_keys, prefix)
            finally:
                self.compute_metrics = user_metrics
            results[task] = (loop.predictions, loop.label_ids)
        return results


def reported_metrics(problem_types: Mapping[str, str]) -> list[str]:
    """The names [`MultitaskTrainer.evaluate`] reports (without `eval_`) for tasks evaluated with these problem types:
    `average_primary`, `loss`, and per task `<task>_loss` and `<task>_<metric>` for its problem type's metrics."""
    names = ["average_primary", "loss"]
    for task, problem_type in problem_types.items():
        names += _task_metric_names(task, problem_type)
    return names


def _task_metric_names(task: str, problem_type: str) -> list[str]:
    return [f"{task}_{key}" for key in ("loss", *metrics.METRIC_KEYS[problem_type])]


def check_metric_names(problem_types: Mapping[str, str]) -> None:
    """Raises a `ValueError` naming both tasks when two evaluated tasks would report a metric under one name (a
    multi-label `topic`'s `topic_label_accuracy` and a single-label `topic_label`'s accuracy): one would overwrite the
    other, and `metric_for_best_model` or early stopping could follow the wrong task."""
    owners: dict[str, str] = {}
    for task, problem_type in problem_types.items():
        for name in _task_metric_names(task, problem_type):
            if name in owners:
                raise ValueError(
                    f"Tasks {owners[name]!r} and {task!r} would both report the metric eval_{name}, one overwriting "
                    "the other's (metric_for_best_model and early stopping could follow the wrong task): rename one "
                    "of the two tasks."
                )
            owners[name] = task


def check_task_weights(
    config: MultitaskConfig, loss_weights: Mapping[str, Any], class_weights: Mapping[str, Any]
) -> None:
    """Raises a `ValueError` for `MultitaskTrainer`'s `loss_weights` or `class_weights` keyed by a task the model
    lacks (they would be ignored), or class weights that are not one per label of their task (torch would fail at the
    task's first batch)."""
    for option, weights in (("loss_weights", loss_weights), ("class_weights", class_weights)):
        unknown = sorted(set(weights) - set(config.tasks))
        if unknown:
            raise ValueError(
                f"{option} given for task(s) {unknown} that the model lacks ({config.task_names}): key them by the "
                "model's task names."
            )
    for task, weights in class_weights.items():
        if weights is None:
            continue
        head = config.task(task)
        if head["problem_type"] == MULTIPLE_CHOICE:
            raise ValueError(f"class_weights given for {task!r}: a multiple-choice task takes no class_weights.")
        if len(weights) != len(head["labels"]):
            raise ValueError(
                f"class_weights of task {task!r}: {len(weights)} weights for its {len(head['labels'])} labels "
                f"{head['labels']}: give one weight per label, in that order."
            )


def never_reported(name: str | None, problem_types: Mapping[str, str]) -> bool:
    """Whether `metric_for_best_model` is set to a name that evaluation of these tasks (with their problem types)
    never reports; `False` without tasks to evaluate (nothing to check)."""
    return (
        name is not None and bool(problem_types) and name.removeprefix("eval_") not in reported_metrics(problem_types)
    )


def check_best_metric(name: str | None, problem_types: Mapping[str, str]) -> None:
    """Raises a `ValueError`, listing the names evaluation reports, when [`never_reported`] holds."""
    if never_reported(name, problem_types):
        reported = reported_metrics(problem_types)
        shown = ", ".join(reported[:12]) + (f", ... ({len(reported)} in all)" if len(reported) > 12 else "")
        raise ValueError(
            f"metric_for_best_model={name!r} is not a metric that evaluation reports. Choose 'average_primary' "
            f"(the default: the mean of each task's primary metric) or another of: {shown}."
        )


def check_metrics_arguments(args: TrainingArguments, compute_metrics) -> None:
    """Raises a `ValueError` for the Trainer's metric options that `MultitaskTrainer.evaluate` cannot honour: it
    scores each task on all its rows at once, from logits and labels."""
    if compute_metrics is None:
        return
    if args.batch_eval_metrics:
        raise ValueError(
            "batch_eval_metrics is not supported: MultitaskTrainer calls compute_metrics once per task with all its "
            "evaluation rows. Leave batch_eval_metrics off."
        )
    if args.include_for_metrics:
        raise ValueError(
            f"include_for_metrics={args.include_for_metrics} is not supported: compute_metrics gets each task's "
            "logits and labels. Leave include_for_metrics empty."
        )


def load_tokenizer(model_args: ModelArguments) -> PreTrainedTokenizerBase:
    """The tokenizer of `tokenizer_name_or_path` (default: `init_from`'s or the encoder's), or the tiny preset's."""
    if model_args.init_from and not model_args.tokenizer_name_or_path:
        return initial_tokenizer(model_args)
    name = model_args.tokenizer_name_or_path or model_args.encoder_name_or_path
    if name == TINY_ENCODER:
        return tiny_tokenizer()
    with model_loading(resolve_encoder(name)):
        return AutoTokenizer.from_pretrained(resolve_encoder(name))


def check_tokenizer_fits(tokenizer: PreTrainedTokenizerBase, model_args: ModelArguments) -> None:
    """Refuses a `tokenizer_name_or_path` whose token ids run past the encoder's embedding table (the starting model's
    with `init_from`), which would fail inside torch at the first batch holding one, or that has no vocabulary; and,
    with `init_from`, one whose vocabulary is not the starting model's tokenizer's ([`check_same_vocabulary`])."""
    if not model_args.tokenizer_name_or_path:
        return
    if model_args.init_from:
        config, source = initial_config(model_args).encoder, f"the encoder of {model_args.init_from!r}"
    else:
        name = model_args.encoder_name_or_path
        config, source = encoder_config(name), f"encoder {name!r}"
    try:
        check_tokenizer(tokenizer, getattr(config, "vocab_size", None), model_args.tokenizer_name_or_path)
    except ValueError as error:  # the pipeline's check; its remedy is for a model folder, here it is the option
        raise ValueError(
            f"--tokenizer_name_or_path {model_args.tokenizer_name_or_path!r} does not fit {source}: "
            f"{str(error).split(': ')[0]}. Use the tokenizer the model was trained with (leave the option out)."
        ) from None
    if model_args.init_from:
        check_same_vocabulary(tokenizer, initial_tokenizer(model_args), model_args)


def check_same_vocabulary(
    tokenizer: PreTrainedTokenizerBase, own: PreTrainedTokenizerBase, model_args: ModelArguments
) -> None:
    """Refuses a `tokenizer_name_or_path` whose vocabulary (token -> id, `get_vocab()`) is not that of `own`, the
    `init_from` model's tokenizer: the encoder's embeddings are indexed by the model's ids, so another vocabulary of
    the same size passes the size check and silently changes what every task reads (and its answers)."""
    given, trained = tokenizer.get_vocab(), own.get_vocab()
    if given == trained:
        return
    differ = sorted(token for token in given.keys() | trained.keys() if given.get(token) != trained.get(token))
    token = differ[0]
    raise ValueError(
        f"--tokenizer_name_or_path {model_args.tokenizer_name_or_path!r} has another vocabulary than the tokenizer "
        f"of --init_from {model_args.init_from!r} ({len(differ)} token(s) differ, e.g. {token!r}: id "
        f"{given.get(token)} in it, {trained.get(token)} in the model's): the model's embeddings are indexed by its "
        "own vocabulary, so its tasks would read other tokens and answer differently. Leave --tokenizer_name_or_path "
        "out to use the model's own tokenizer."
    )


def build_model(
    model_args: ModelArguments,
    tasks: Mapping[str, dict],
    train_tasks: list[str] | None = None,
    thresholds_from: Collection[str] = (),
) -> MultitaskModel:
    r"""
    A [`MultitaskModel`] with fresh heads for `tasks` on the pretrained encoder (or the tiny random preset); with
    `init_from`, the trained model, its heads kept, a fresh head for each new task and grown label maps (see
    `polyhead.training.grow.extend_task_labels`), and for the multi-label tasks of `thresholds_from` that it has, the
    decision threshold(s) of `tasks` (distillation: a head a teacher continues decides as the teacher). With
    `train_tasks`, every other head is frozen.

    Example:

    ```python
    >>> model = build_model(ModelArguments("tiny-random-bert"), {"a": {"labels": ["x", "y"]}})
    ```
    """
    options = {"pooling": model_args.pooling, "classifier_dropout": model_args.classifier_dropout}
    options.update(head_options.config_options(model_args, tasks))
    if model_args.init_from:
        model = load_initial_model(model_args, tasks, thresholds_from)
    elif model_args.encoder_name_or_path == TINY_ENCODER:
        model = MultitaskModel(MultitaskConfig(encoder=tiny_encoder_config(), tasks=dict(tasks), **options))
    else:
        encoder = resolve_encoder(model_args.encoder_name_or_path)
        model = MultitaskModel.from_encoder_pretrained(encoder, dict(tasks), **options)
    if model_args.freeze_encoder:
        model.freeze_encoder()
    if train_tasks is not None:
        frozen = freeze_heads_except(model, train_tasks)
        logger.info(f"Training the heads of {train_tasks}; frozen: {frozen}.")
    return model


def load_initial_model(
    model_args: ModelArguments, tasks: Mapping[str, dict], thresholds_from: Collection[str] = ()
) -> MultitaskModel:
    """The trained model of `init_from` (at `revision`), with a fresh head for each new task of `tasks` and the label
    maps that `polyhead.training.grow.match_label_maps` grew. A multi-label task of the model named in
    `thresholds_from` takes the `threshold` (and per-label `thresholds`, or none) of its entry in `tasks`; every
    other task keeps the model's (training keeps tuned thresholds)."""
    with model_loading(model_args.init_from):
        model = MultitaskModel.from_pretrained(model_args.init_from, revision=model_args.revision)
    existing = set(model.config.tasks)
    for name, head in tasks.items():
        if name not in model.config.tasks:
            model.add_task(name, head["labels"], head["problem_type"], head.get("threshold"))
            # add_task records no input kind: the task's own entry (text_pair included), as a new model's config has
            model.config.tasks = {**model.config.tasks, name: normalize_task(name, head)}
        elif head["labels"] != model.config.tasks[name]["labels"]:
            extend_task_labels(model, name, head["labels"])
    for name in thresholds_from:
        spec = model.config.tasks.get(name)
        if name not in existing or name not in tasks or spec["problem_type"] != MULTI_LABEL:
            continue
        decided = {key: value for key, value in spec.items() if key not in ("threshold", "thresholds")}
        for key in ("threshold", "thresholds"):
            if tasks[name].get(key) is not None:
                decided[key] = tasks[name][key]
        decided = normalize_task(name, decided)
        if decided != spec:
            old, new = (entry.get("thresholds") or entry["threshold"] for entry in (spec, decided))
            logger.warning(
                f"Task {name!r} of --init_from {model_args.init_from!r}: its decision threshold(s) {old} become "
                f"{new}, its teacher's, so that it decides as the teacher it learns from."
            )
        model.config.tasks = {**model.config.tasks, name: decided}
    return model


@dataclasses.dataclass
class PreparedTasks:
    """Validated task data and its tokenized splits (`{task: {role: Dataset}}`)."""

    data: dict[str, TaskData]
    encoded: dict[str, dict[str, datasets.Dataset]]
    train_cap: dict[str, Any] = dataclasses.field(default_factory=dict)  # what max_train_samples_per_task cut

    def subset(self, names: list[str]) -> "PreparedTasks":
        cap = {**self.train_cap, "tasks": {n: v for n, v in self.train_cap.get("tasks", {}).items() if n in names}}
        return PreparedTasks({n: self.data[n] for n in names}, {n: self.encoded[n] for n in names}, cap)


def prepare_tasks(
    model_args: ModelArguments, data_args: DataArguments, tokenizer: PreTrainedTokenizerBase, seed: int = 0
) -> PreparedTasks:
    """Loads, validates (before any training) and tokenizes every task of `data_args`."""
    max_length = resolve_max_length(model_args)
    check_room_for_text(tokenizer, max_length)
    data = load_task_data(data_args.task_specs(), seed=seed, split_seed=data_args.split_seed)
    train_cap = cap_train_rows(data, data_args.max_train_samples_per_task, seed)
    if model_args.init_from:
        config = initial_config(model_args)
        match_label_maps(data, config, model_args.extend_labels, model_args.train_task_names)
    encoded = {name: tokenize_task_data(task, tokenizer, max_length) for name, task in data.items()}
    return PreparedTasks(data, encoded, train_cap)


def initial_config(model_args: ModelArguments) -> MultitaskConfig:
    """The config of `init_from` (at `revision`); a Hub id that does not load is a `ValueError` naming it."""
    with model_loading(model_args.init_from):
        return MultitaskConfig.from_pretrained(model_args.init_from, revision=model_args.revision)


def initial_tokenizer(model_args: ModelArguments) -> PreTrainedTokenizerBase:
    """The tokenizer of `init_from` (at `revision`); a Hub id that does not load is a `ValueError` naming it."""
    with model_loading(model_args.init_from):
        return AutoTokenizer.from_pretrained(
            model_args.init_from, revision=model_args.revision, trust_remote_code=True
        )


def resolve_max_length(model_args: ModelArguments) -> int:
    """`model_args.max_length` checked against the encoder's position table (default: 128 or the table's size); with
    `init_from`, the starting model's encoder, and by default the length it was trained at (as its pipeline and
    evaluation run it), so that the tasks it does not train keep their answers."""
    if model_args.init_from:
        config = initial_config(model_args)
        max_length = model_args.max_length
        if max_length is None:  # its training_args.json record, else its tokenizer's model_max_length
            max_length = trained_max_length(model_args.init_from) or default_max_length(
                initial_tokenizer(model_args), config.encoder
            )
            max_length = None if max_length >= VERY_LARGE_INTEGER else max_length  # saved with no length: the default
        return check_max_length(max_length, config.encoder, f"the encoder of {model_args.init_from!r}")
    name = model_args.encoder_name_or_path
    return check_max_length(model_args.max_length, encoder_config(name), f"encoder {name!r}")


def train_and_evaluate(
    prepared: PreparedTasks,
    tokenizer: PreTrainedTokenizerBase,
    model_args: ModelArguments,
    data_args: DataArguments,
    training_args: MultitaskTrainingArguments,
) -> dict[str, Any]:
    r"""
    Trains one model on the prepared tasks, scores it on the final split and writes the model folder
    (`training_args.model_dir`). Returns the results dict (also in `results.json`).

    Example:

    ```python
    >>> results = train_and_evaluate(prepared, tokenizer, model_args, data_args, training_args)
    ```
    """
    check_output_locations(training_args)
    check_prepared(prepared, model_args, data_args, training_args)
    validation = {name: encoded["eval"] for name, encoded in prepared.encoded.items() if "eval" in encoded}
    resume = resolve_resume_checkpoint(training_args.resume_from_checkpoint, training_args.output_dir)
    trainer = make_trainer(prepared, tokenizer, model_args, data_args, training_args)
    if resume:
        check_checkpoint_fits(resume, trainer.model.config)
    elif trainer.is_world_process_zero():
        warn_earlier_checkpoints(training_args.output_dir)
    final, split_rows = _final_eval_sets(prepared, data_args.final_eval_split)
    before = None
    if model_args.init_from and trainer.is_world_process_zero():
        # The starting model's tasks that have evaluation data, scored before any step (for the forgetting table).
        initial = initial_config(model_args)
        old = {name: dataset for name, dataset in final.items() if name in initial.tasks}
        before = score_tasks(trainer.model, tokenizer, old, training_args.per_device_eval_batch_size)
    try:
        train_result = trainer.train(resume_from_checkpoint=resume)
    except ValueError as error:  # torch's optimizer load_state_dict: a checkpoint of other remedy options
        if not resume or "parameter group" not in str(error):
            raise
        raise ResumeError(
            f"Cannot resume from {resume}: its optimizer holds other parameter groups than this run's (another "
            "--head_learning_rate or --loss_balancing): resume with the options it was trained with, or start afresh "
            "in another --output_dir."
        ) from error
    model = trainer.model
    if data_args.tune_thresholds:  # before the final evaluation and saving, so both use the tuned thresholds
        model.eval()
        tune_model_thresholds(model, tokenizer, validation, training_args.per_device_eval_batch_size)
    split = "test" if data_args.final_eval_split == "test" else "validation"
    train_labels = {name: task.label_ids("train") for name, task in prepared.data.items()}
    if not trainer.is_world_process_zero():
        trainer.accelerator.wait_for_everyone()  # rank 0 scores the model and writes the folder meanwhile
        return {}
    model.eval()
    # Evaluate, then save: the model folder is written (atomically) once its results exist.
    results, outputs = score_model(
        model,
        tokenizer,
        final,
        split,
        training_args.per_device_eval_batch_size,
        train_labels,
        model_path=str(training_args.model_dir),
        progress=not training_args.disable_tqdm,
        split_rows=split_rows,
    )
    held_out = {name: task.held_out for name, task in prepared.data.items() if task.held_out}
    if held_out:
        results["held_out"] = held_out
    if prepared.train_cap:
        results["train_cap"] = prepared.train_cap
    not_scored = [name for name in prepared.data if name not in final]
    if not_scored:
        results["not_scored"] = not_scored
    if before is not None:
        results["forgetting"] = {
            "init_from": model_args.init_from,
            **forgetting_report(
                before,
                results["tasks"],
                results["problem_types"],
                model_args.forgetting_margin,
                # a task whose head is shared with a trained one (config.shared_heads) is trained too
                trained=trained_tasks(model.config, model_args.train_task_names or list(prepared.data)),
            ),
        }
    run_info = training_run_info(model_args, data_args, training_args, prepared, trainer, train_result.metrics)

    def write_run_files(folder: Path) -> None:
        write_evaluation(model, results, outputs, folder, split)
        write_training_args(run_info, folder)

    # The trained length is saved as the tokenizer's model_max_length: what the model is run and scored at by default.
    save_model_folder(
        model,
        tokenizer,
        training_args.model_dir,
        overwrite=True,
        extra=write_run_files,
        max_length=resolve_max_length(model_args),
    )
    trainer.accelerator.wait_for_everyone()
    return results


def make_trainer(
    prepared: PreparedTasks,
    tokenizer: PreTrainedTokenizerBase,
    model_args: ModelArguments,
    data_args: DataArguments,
    training_args: MultitaskTrainingArguments,
    **trainer_kwargs,
) -> MultitaskTrainer:
    """Builds the model and its [`MultitaskTrainer`] (with early stopping when asked); `trainer_kwargs` (e.g.
    `compute_metrics`) go to the trainer."""
    set_seed(training_args.seed)
    train_tasks = model_args.train_task_names
    model = build_model(model_args, {name: task.head for name, task in prepared.data.items()}, train_tasks)
    trained = train_tasks or list(prepared.data)
    check_trained_tasks(prepared, model_args, training_args)
    callbacks = []
    if training_args.early_stopping_patience is not None:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=training_args.early_stopping_patience))
    return MultitaskTrainer(
        model=model,
        args=training_args,
        train_datasets={name: prepared.encoded[name]["train"] for name in trained},
        eval_datasets={name: encoded["eval"] for name, encoded in prepared.encoded.items() if "eval" in encoded},
        processing_class=tokenizer,
        loss_weights={name: task.spec.loss_weight for name, task in prepared.data.items()},
        class_weights={name: class_weights(task) for name, task in prepared.data.items()},
        sampling=data_args.sampling,
        temperature=data_args.temperature,
        callbacks=callbacks,
        head_learning_rates={name: task.spec.head_learning_rate for name, task in prepared.data.items()},
        **trainer_kwargs,
    )


def check_output_locations(training_args: MultitaskTrainingArguments) -> None:
    r"""
    Raises before any training if writing the model folder (`model_dir`) could destroy checkpoints or other files:
    `model_dir` may not be `output_dir`, a folder above it, a checkpoint folder or (with `single_task_baselines`)
    where the baselines go, nor any target [`polyhead.saving.check_target_folder`] refuses. Inside `output_dir`
    (the default `<output_dir>/model`) it sits next to the checkpoints, which it never touches.

    Example:

    ```python
    >>> check_output_locations(MultitaskTrainingArguments(output_dir="runs/a", model_dir="runs/a"))
    Traceback (most recent call last):
    ValueError: model_dir 'runs/a' is output_dir ...
    ```
    """
    model_dir, output_dir = training_args.model_dir, training_args.output_dir or "trainer_output"
    check_output_folder(output_dir, "output_dir")
    check_output_folder(model_dir, "model_dir")
    model_path, output_path = Path(model_dir).resolve(), Path(output_dir).resolve()
    reason = None
    if model_path == output_path:
        reason = "is output_dir, where the checkpoints are"
    elif model_path in output_path.parents:
        reason = "is a parent folder of output_dir, where the checkpoints are"
    elif output_path in model_path.parents and CHECKPOINT_PATTERN.fullmatch(model_path.parts[len(output_path.parts)]):
        reason = "is in a checkpoint folder of output_dir, which Trainer writes and deletes"
    elif training_args.single_task_baselines and (output_path / BASELINES_DIR) in (model_path, *model_path.parents):
        reason = f"is where the single-task baselines are trained ({output_dir}/{BASELINES_DIR})"
    if reason is not None:
        raise ValueError(
            f"model_dir {model_dir!r} {reason}: writing the model folder there would delete them. Use the default "
            f"<output_dir>/model or a folder outside {output_dir!r}."
        )
    check_target_folder(model_dir, overwrite=True)


class ResumeError(ValueError):
    """The checkpoint asked for cannot be resumed from (the message names it and the fix); raised before any step."""


def check_checkpoint_fits(checkpoint: str | os.PathLike, config: MultitaskConfig) -> None:
    """Refuses to resume from a checkpoint whose model has other tasks (names, labels, kinds), task embeddings or
    shared heads than this run's: its weights and optimizer state would not fit (a traceback from inside torch)."""
    saved = MultitaskConfig.from_pretrained(checkpoint)
    keys = ("tasks", "task_embeddings", "shared_heads")
    differ = [key for key in keys if getattr(saved, key) != getattr(config, key)]
    if differ:
        described = "; ".join(f"{key}: {getattr(saved, key)} there, {getattr(config, key)} here" for key in differ)
        raise ResumeError(
            f"Cannot resume from {checkpoint}: it was trained as another model ({described}). Resume with the tasks "
            "and options it was trained with, or start afresh in another --output_dir."
        )


def resolve_resume_checkpoint(value: str | bool | None, output_dir: str | None) -> str | None:
    r"""
    The checkpoint folder to resume from, or `None` to start afresh.

    `true`/`last` picks the newest complete `checkpoint-<step>` of `output_dir`, skipping (with a warning naming
    each) any that is broken, for instance half-written when a run was killed; a path must be a complete checkpoint.

    Raises:
        [`ResumeError`] (a `ValueError`): no complete checkpoint; the message names every broken file.

    Example:

    ```python
    >>> resolve_resume_checkpoint("true", "outputs/run")
    'outputs/run/checkpoint-40'
    ```
    """
    if value is None or value is False or (isinstance(value, str) and value.lower() in ("", "false", "none")):
        return None
    if not (value is True or str(value).lower() in ("true", "last")):
        problem = checkpoint_problem(Path(value))
        if problem:
            raise ResumeError(f"Cannot resume from {value}: {problem}")
        return str(value)
    folder = Path(output_dir or "trainer_output")
    found = _checkpoint_folders(folder)
    if not found:
        raise ResumeError(f"resume_from_checkpoint={value!r}: no checkpoint-<step> folder in {folder}.")
    broken = []
    for checkpoint in sorted(found, key=lambda p: int(p.name.split("-")[1]), reverse=True):
        problem = checkpoint_problem(checkpoint)
        if problem is None:
            if broken:
                logger.warning(f"Resuming from {checkpoint}; skipped broken checkpoint(s): {'; '.join(broken)}")
            return str(checkpoint)
        broken.append(problem)
    raise ResumeError(f"resume_from_checkpoint={value!r}: no complete checkpoint in {folder}: {'; '.join(broken)}")


def warn_slow_bf16(training_args: MultitaskTrainingArguments) -> None:
    """Warns when `--bf16` trains on a CPU whose bfloat16 matmuls are slower than float32 (Intel's AVX512-BF16
    without AMX: 0.77x float32's training speed measured, docs/cpu-acceleration.md)."""
    on_cpu = training_args.use_cpu or not torch.cuda.is_available()
    if training_args.bf16 and on_cpu and not faster_bf16():
        logger.warning(
            "--bf16 on this CPU: its bfloat16 matmuls run slower than float32 (no AMX tiles, no AMD AVX512-BF16), so "
            "training is slower than without --bf16 (docs/cpu-acceleration.md). Drop --bf16 here."
        )


def warn_earlier_checkpoints(output_dir: str | os.PathLike) -> None:
    """Warns when a run starting afresh finds checkpoints of an earlier run in `output_dir`: a later resume would
    take them."""
    earlier = _checkpoint_folders(Path(output_dir))
    if earlier:
        names = sorted(path.name for path in earlier)
        logger.warning(
            f"{output_dir} holds checkpoints of an earlier run ({', '.join(names)}): this run starts afresh and "
            "leaves them, but a later --resume_from_checkpoint true takes the newest checkpoint there, which may be "
            "that run's. Give each new run its own --output_dir."
        )


def _checkpoint_folders(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return [path for path in folder.iterdir() if path.is_dir() and CHECKPOINT_PATTERN.fullmatch(path.name)]


def checkpoint_problem(checkpoint: Path) -> str | None:
    """Why a Trainer checkpoint folder cannot be resumed from (naming the file), or `None` when it looks complete."""
    if not checkpoint.is_dir():
        return f"{checkpoint} is not a folder"
    state = checkpoint / CHECKPOINT_MARKER
    try:
        json.loads(state.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        return f"{state} is missing or unreadable ({type(error).__name__})"
    weights = sorted(checkpoint.glob("*.safetensors"))
    if not weights and not (checkpoint / "pytorch_model.bin").is_file():
        return f"{checkpoint} holds no model weights"
    for path in weights:
        try:
            check_weights_file(path)
        except ValueError as error:
            return str(error)
    for path in sorted([*checkpoint.glob("*.pt"), *checkpoint.glob("*.pth"), *checkpoint.glob("*.bin")]):
        if not zipfile.is_zipfile(path):  # torch.save writes zip archives; a cut one lacks its central directory
            return f"{path} is empty or truncated (not a complete torch.save archive)"
    return None


def _final_eval_sets(prepared: PreparedTasks, role: str) -> tuple[dict[str, datasets.Dataset], dict[str, int]]:
    # The scored split of each task, and its size before max_eval_samples (results.json says when it was capped).
    final, split_rows = {}, {}
    for name, encoded in prepared.encoded.items():
        chosen = role if role in encoded else "eval"
        if chosen not in encoded:
            logger.warning(f"Task {name!r} has no test or validation split: it is not scored; {NOT_SCORED_HINT}.")
            continue
        if chosen != role:
            logger.warning(f"Task {name!r} has no {role} split: scoring its validation split instead.")
        final[name] = encoded[chosen]
        split_rows[name] = prepared.data[name].split_rows.get(chosen, len(encoded[chosen]))
    return final, split_rows


def training_run_info(
    model_args: ModelArguments,
    data_args: DataArguments,
    training_args: MultitaskTrainingArguments,
    prepared: PreparedTasks,
    trainer: Trainer,
    train_metrics: Mapping[str, Any],
) -> dict[str, Any]:
    """The JSON-ready content of `training_args.json` (keys documented in the module docstring)."""
    data = {f.name: getattr(data_args, f.name) for f in dataclasses.fields(data_args) if f.name != "tasks"}
    # in-memory datasets described only; the absolute paths and SHA-256 of the data read let an evaluation recognise
    # the train data (and carve the rows held out) however it is spelled there
    data["tasks"] = task_records(task.spec for task in prepared.data.values())
    return {
        # base_model: the encoder's Hub id, also when it was loaded from a local folder (read from its metadata now,
        # while the folder is here) so the model card can name it.
        "model": {
            **dataclasses.asdict(model_args),
            "pooling": trainer.model.config.pooling,
            "classifier_dropout": trainer.model.config.classifier_dropout,
            "base_model": _base_model(model_args),
        },
        "data": data,
        "training": training_args.to_dict(),
        "tasks": {name: task.head for name, task in prepared.data.items()},
        "num_train_examples": {name: len(enc["train"]) for name, enc in prepared.encoded.items()},
        "train_metrics": dict(train_metrics),
        "log_history": trainer.state.log_history,
        "polyhead_version": __version__,
    }


def _base_model(model_args: ModelArguments) -> str | None:
    # Continued from a trained model: the Hub id it was loaded from, else the base model its own run recorded.
    if not model_args.init_from:
        return encoder_hub_id(hub_id(model_args.encoder_name_or_path))  # a short name stands for its Hub id
    if not Path(model_args.init_from).is_dir():
        return hub_id_or_none(model_args.init_from)
    recorded = read_training_args(model_args.init_from) or {}
    return (recorded.get("model") or {}).get("base_model")


def train_baselines(
    prepared: PreparedTasks,
    tokenizer: PreTrainedTokenizerBase,
    model_args: ModelArguments,
    data_args: DataArguments,
    training_args: MultitaskTrainingArguments,
) -> dict[str, Any]:
    """Trains one single-task model per task with the same arguments; returns results in the `results.json` schema
    and writes them to `<model_dir>/baselines/results.json`."""
    combined: dict[str, Any] = {"tasks": {}, "num_examples": {}, "models": {}}
    for name in prepared.data:
        folder = os.path.join(training_args.output_dir, BASELINES_DIR, name)
        # A resumed run resumes each baseline from its own newest checkpoint, or starts one that had none yet.
        resume = "true" if training_args.resume_from_checkpoint and _checkpoint_folders(Path(folder)) else None
        args = dataclasses.replace(
            training_args,
            output_dir=folder,
            model_dir=os.path.join(folder, MODEL_DIR),
            single_task_baselines=False,
            seeds=1,  # one baseline run; the seeds of a comparison are polyhead.training.parity's loop
            resume_from_checkpoint=resume,
        )
        if "eval" not in prepared.encoded[name] and args.eval_strategy != "no":
            logger.warning(
                f"Baseline {name!r}: no validation split, so no evaluation (nor early stopping) in training."
            )
            args = dataclasses.replace(
                args, eval_strategy="no", load_best_model_at_end=False, early_stopping_patience=None
            )
        # Threshold tuning applies to a baseline only where it can: a multi-label task with a validation split.
        tunable = prepared.data[name].problem_type == MULTI_LABEL and "eval" in prepared.encoded[name]
        task_data_args = dataclasses.replace(data_args, tune_thresholds=data_args.tune_thresholds and tunable)
        # A resumed run reads a baseline whose model folder is already written instead of training it again.
        result = None
        if resume_finished(training_args, args):
            result = read_results(args.model_dir) if training_args.process_index == 0 else {}
        if result is None:
            result = train_and_evaluate(prepared.subset([name]), tokenizer, model_args, task_data_args, args)
        if not result:
            continue
        if not training_args.keep_baseline_checkpoints:
            remove_checkpoints(folder)
        for key in ("tasks", "num_examples", "majority_baseline", "primary_metrics", "problem_types"):
            combined.setdefault(key, {}).update(result.get(key, {}))
        combined["models"][name] = args.model_dir
        combined["split"] = result["split"]
    if combined["tasks"]:
        combined["average"] = metrics.macro_average(combined["tasks"], combined.get("problem_types"))
        write_baseline_results(combined, training_args.model_dir)
    return combined


def resume_finished(training_args: MultitaskTrainingArguments, run_args: MultitaskTrainingArguments) -> bool:
    """Whether a resumed run (`resume_from_checkpoint` given) finds the model folder of `run_args` already written,
    with its results, by a run of the same settings (`polyhead.training.parity.finished_results`)."""
    finished = parity.finished_results(run_args.model_dir, run_args)
    return bool(training_args.resume_from_checkpoint) and finished is not None


def remove_checkpoints(output_dir: str | os.PathLike) -> None:
    """Deletes the Trainer's `checkpoint-*` folders in `output_dir` (a baseline's model folder is written by then)."""
    for checkpoint in Path(output_dir).glob(f"{PREFIX_CHECKPOINT_DIR}-*"):
        if checkpoint.is_dir():
            shutil.rmtree(checkpoint)


def check_trained_tasks(
    prepared: PreparedTasks, model_args: ModelArguments, training_args: MultitaskTrainingArguments
) -> None:
    """Every task of `--train_tasks` has data, and an evaluation strategy has validation rows to evaluate."""
    without_data = [name for name in model_args.train_task_names or [] if name not in prepared.data]
    if without_data:
        raise ValueError(f"train_tasks {without_data} have no data: list them in --tasks ({list(prepared.data)}).")
    if training_args.eval_strategy != "no" and not any("eval" in enc for enc in prepared.encoded.values()):
        raise ValueError(f"eval_strategy={training_args.eval_strategy.value!r} but no task has a validation split.")


def check_prepared(
    prepared: PreparedTasks,
    model_args: ModelArguments,
    data_args: DataArguments,
    training_args: MultitaskTrainingArguments,
) -> None:
    """The checks that need the tasks' data: [`check_trained_tasks`], and `--tune_thresholds` with a multi-label task
    that has validation rows. Run by [`prepare_run`] before any model is built, and again where a model trains."""
    check_trained_tasks(prepared, model_args, training_args)
    validation = [name for name, encoded in prepared.encoded.items() if "eval" in encoded]
    if data_args.tune_thresholds and not any(prepared.data[n].problem_type == MULTI_LABEL for n in validation):
        multi_label = [name for name, task in prepared.data.items() if task.problem_type == MULTI_LABEL]
        found = (
            f"the multi-label tasks {multi_label} have no validation rows (give them a validation split, or hold one "
            "out with validation_size > 0)"
            if multi_label
            else "no task is multi-label"
        )
        raise ValueError(f"--tune_thresholds needs a multi-label task with a validation split: {found}.")


def prepare_run(
    model_args: ModelArguments, data_args: DataArguments, training_args: MultitaskTrainingArguments
) -> tuple[ModelArguments, PreTrainedTokenizerBase, PreparedTasks]:
    """Everything [`run`] checks and reads before the first training step: the arguments, the tokenizer and every
    task's data, validated and tokenized. Returns `(model_args with the resolved max_length, tokenizer, prepared)`;
    bad arguments or data raise here (`ValueError`, `FileNotFoundError`), before any model trains."""
    check_output_locations(training_args)
    if model_args.init_from and training_args.single_task_baselines:
        raise ValueError("single_task_baselines train from a bare encoder: they cannot be combined with init_from.")
    if training_args.num_threads is not None:
        torch.set_num_threads(training_args.num_threads)
    warn_slow_bf16(training_args)
    # Argument errors first (before data loading and training); the resolved length is what training_args.json keeps.
    model_args = dataclasses.replace(model_args, max_length=resolve_max_length(model_args))
    tokenizer = load_tokenizer(model_args)
    check_tokenizer_fits(tokenizer, model_args)
    with training_args.main_process_first(desc="loading and tokenizing the tasks"):  # one writer of datasets' cache
        prepared = prepare_tasks(model_args, data_args, tokenizer, seed=training_args.sampling_seed)
    check_prepared(prepared, model_args, data_args, training_args)  # the multitask model's (baselines adapt theirs)
    evaluated = {
        name: task.head["problem_type"] for name, task in prepared.data.items() if "eval" in prepared.encoded[name]
    }
    best = training_args.metric_for_best_model
    if training_args.eval_strategy != "no":  # results.json keys its metrics by task: only evaluation's names clash
        check_metric_names(evaluated)
    check_best_metric(best, evaluated)
    if training_args.single_task_baselines:  # each baseline evaluates its own task only
        missing = [name for name, problem_type in evaluated.items() if never_reported(best, {name: problem_type})]
        if missing:
            raise ValueError(
                f"metric_for_best_model={best!r} is not reported by the single-task baseline of {missing[0]!r}, "
                "which evaluates its own task only: with single_task_baselines use 'average_primary' or 'loss'."
            )
    return model_args, tokenizer, prepared


def run(
    model_args: ModelArguments,
    data_args: DataArguments,
    training_args: MultitaskTrainingArguments,
    prepared_run: tuple[ModelArguments, PreTrainedTokenizerBase, PreparedTasks] | None = None,
) -> dict[str, Any]:
    r"""
    The training job: validate and tokenize every task ([`prepare_run`], or its result as `prepared_run`), train the
    multitask model, score it, write the model folder, and (with `single_task_baselines`) train and score one model
    per task. `num_threads` sets torch's CPU threads.

    Returns `{"multitask": results, "baselines": results or None}`. With `seeds > 1`, the seed-averaged comparison
    of `polyhead.training.parity.run_seeds` (its return value; `results["multitask"]["comparison"]`).

    Example:

    ```python
    >>> from polyhead.training.arguments import parse_args
    >>> results = run(*parse_args(["configs/tiny.yaml", "--output_dir", "/tmp/tiny"]))
    >>> results["multitask"]["average"]["primary"]
    ```
    """
    model_args, tokenizer, prepared = prepared_run or prepare_run(model_args, data_args, training_args)
    if training_args.seeds > 1:  # the seed-averaged comparison (polyhead.training.parity)
        return parity.run_seeds(
            prepared, tokenizer, model_args, data_args, training_args, train_and_evaluate, train_baselines
        )
    multitask = train_and_evaluate(prepared, tokenizer, model_args, data_args, training_args)
    baselines = None
    if training_args.single_task_baselines:
        baselines = train_baselines(prepared, tokenizer, model_args, data_args, training_args)
    return {"multitask": multitask, "baselines": baselines}


__all__ = [
    "BASELINES_DIR",
    "MultitaskTrainer",
    "PreparedTasks",
    "ResumeError",
    "TRAINING_ARGS_FILE",
    "build_model",
    "check_checkpoint_fits",
    "check_metric_names",
    "check_output_locations",
    "check_task_weights",
    "check_tokenizer_fits",
    "checkpoint_problem",
    "load_tokenizer",
    "make_trainer",
    "prepare_run",
    "prepare_tasks",
    "remove_checkpoints",
    "resolve_max_length",
    "resolve_resume_checkpoint",
    "run",
    "train_and_evaluate",
    "train_baselines",
    "training_run_info",
    "warn_earlier_checkpoints",
    "warn_slow_bf16",
]
