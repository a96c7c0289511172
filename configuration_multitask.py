# Copyright 2026 The polyhead authors. Licensed under the Apache License, Version 2.0.
"""Configuration of a multitask text classifier: one shared encoder, one classification head per task.

This file is executed by Hub users through `trust_remote_code=True`: it imports only transformers and its flat
siblings, and must stay readable in one sitting.
"""

import copy
import re
from typing import Any

from torch import nn
from transformers import AutoConfig


try:  # transformers >= 5
    from transformers import PreTrainedConfig
except ImportError:  # transformers 4.x
    from transformers import PretrainedConfig as PreTrainedConfig


SINGLE_LABEL = "single_label_classification"
MULTI_LABEL = "multi_label_classification"
MULTIPLE_CHOICE = "multiple_choice"
PROBLEM_TYPES = (SINGLE_LABEL, MULTI_LABEL, MULTIPLE_CHOICE)
CHOICE_LABELS = ["score"]  # a multiple-choice head has one output: the score of one (context, choice) pair
POOLING_MODES = ("cls", "mean", "native")
# pooling="native": each family's own sequence-classification transform of the first token (a dense layer and this
# activation, shared by all tasks) before the per-task heads; `None`: the encoder config's `pooler_hidden_act`.
# BERT pooler (tanh); RoBERTa/XLM-R/ELECTRA classification head (tanh / gelu); DistilBERT pre_classifier (ReLU);
# DeBERTa ContextPooler. With it, any one task exports exactly as a standard XxxForSequenceClassification model.
NATIVE_POOLING_ACTIVATIONS = {
    "bert": "tanh",
    "roberta": "tanh",
    "xlm-roberta": "tanh",
    "electra": "gelu",
    "distilbert": "relu",
    "deberta": None,
    "deberta-v2": None,
}
PIPELINE_TASK = "multitask-classification"
# What `pipeline(PIPELINE_TASK, model=repo, trust_remote_code=True)` reads from config.json to find the pipeline code.
CUSTOM_PIPELINES = {
    PIPELINE_TASK: {
        "impl": "multitask_classification.MultitaskClassificationPipeline",
        "pt": ["AutoModel"],
        "type": "text",
    }
}
_EMBEDDING_KEYS = ["task_embeddings", "task_embedding_dropout"]
_TASK_KEYS = ("labels", "problem_type", "threshold", "thresholds", "text_pair")
# A task name keys an `nn.ModuleDict`, the pipeline's output, JSON files and report file names: ASCII letters, digits,
# `_` and `-`, and none of the `nn.ModuleDict` attributes (`type`, `keys`, `train`...) it would shadow.
TASK_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_RESERVED_TASK_NAMES = frozenset(name for name in dir(nn.ModuleDict()) if TASK_NAME_PATTERN.fullmatch(name))


class MultitaskConfig(PreTrainedConfig):
    r"""
    Configuration of [`MultitaskModel`]: a nested encoder configuration and an ordered mapping of tasks.

    Args:
        encoder (`PreTrainedConfig` or `dict`):
            Configuration of the shared encoder (any `AutoModel` text encoder: BERT, DistilBERT, RoBERTa, XLM-R,
            DeBERTa-v2/v3, ELECTRA...). A dict must carry its `model_type`.
        tasks (`dict[str, dict]`):
            Ordered `name -> {"labels": [...], "problem_type": ..., "threshold": ...}`. `problem_type` is
            `"single_label_classification"` (the default: multiclass or binary, softmax over labels) or
            `"multi_label_classification"` (independent sigmoid per label). `threshold` (multi-label only, default
            0.5) is the score above which the pipeline returns a label; `thresholds` (multi-label only, optional)
            holds one such threshold per label (e.g. tuned on validation data), taking precedence over `threshold`.
            `text_pair` (default `False`) records that the task was trained on sentence pairs.
        pooling (`str`, *optional*, defaults to `"mean"`):
            How the sequence is pooled before the heads: `"cls"` (first token), `"mean"` (mean over real tokens) or
            `"native"` (the encoder family's own sequence-classification transform of the first token, shared by
            all tasks: see `NATIVE_POOLING_ACTIVATIONS`; a task of such a model exports as a standard checkpoint).
        classifier_dropout (`float`, *optional*, defaults to 0.1):
            Dropout applied to the pooled representation before every head.
        shared_heads (`dict[str, list[str]]`, *optional*):
            `{head task: [tasks]}`: the listed tasks (same problem type and label list) use the head of the first one.
        task_embeddings (`bool`, *optional*, defaults to `False`):
            One learned vector per task added to the first token's input embedding (see docs/multitask-kinds.md).
        task_embedding_dropout (`float`, *optional*, defaults to 0.1):
            Training only: the share of rows that run without their task's vector, so shared passes still work.

    Example:

    ```python
    >>> from transformers import BertConfig
    >>> from configuration_multitask import MultitaskConfig
    >>> config = MultitaskConfig(
    ...     encoder=BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37),
    ...     tasks={
    ...         "sentiment": {"labels": ["negative", "positive"]},
    ...         "emotions": {"labels": ["anger", "joy", "fear"], "problem_type": "multi_label_classification"},
    ...     },
    ... )
    >>> config.task_names, config.num_labels_per_task
    (['sentiment', 'emotions'], {'sentiment': 2, 'emotions': 3})
    ```
    """

    model_type = "multitask"
    # transformers 4.x: never build a default instance to diff against (there is no default task list).
    is_composition = True
    has_no_defaults_at_init = True

    # A classic `__init__` (not dataclass fields): the one pattern every release from 4.51 to 5.x honours.
    def __init__(
        self,
        encoder: PreTrainedConfig | dict | None = None,
        tasks: dict | list | None = None,
        pooling: str = "mean",
        classifier_dropout: float = 0.1,
        shared_heads: dict | None = None,
        task_embeddings: bool = False,
        task_embedding_dropout: float = 0.1,
        **kwargs,
    ):
        kwargs.setdefault("custom_pipelines", copy.deepcopy(CUSTOM_PIPELINES))
        # Some transformers releases build `MultitaskConfig()` with no arguments while loading or saving: that
        # placeholder has no encoder and no tasks; anything else is checked.
        placeholder = encoder is None and tasks is None
        self.encoder = None if placeholder else _encoder_config(encoder)
        self.tasks = {} if placeholder else normalize_tasks(tasks)
        if pooling not in POOLING_MODES:
            raise ValueError(f"Unknown pooling {pooling!r}: choose one of {', '.join(POOLING_MODES)}.")
        if not 0.0 <= float(classifier_dropout) < 1.0:
            raise ValueError(f"classifier_dropout must be in [0, 1), got {classifier_dropout}.")
        self.pooling = pooling
        if pooling == "native" and self.encoder is not None:
            self.native_pooling_activation()  # refuses an encoder family without a known head
        self.classifier_dropout = float(classifier_dropout)
        self.shared_heads = check_shared_heads(self.tasks, shared_heads) if shared_heads else None
        if task_embeddings not in (True, False) or not 0.0 <= float(task_embedding_dropout) < 1.0:
            raise ValueError("task_embeddings must be true or false and task_embedding_dropout in [0, 1).")
        self.task_embeddings, self.task_embedding_dropout = bool(task_embeddings), float(task_embedding_dropout)
        super().__init__(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        # config.json is written with sorted keys: tasks go out as a list so their (head) order survives the trip.
        output = super().to_dict()
        output["encoder"] = self.encoder.to_dict() if self.encoder is not None else None
        output["tasks"] = [{"name": name, **spec} for name, spec in self.tasks.items()]
        # Optional features are written only when used: the config.json of a model without them stays as it was.
        unused = ([] if self.shared_heads else ["shared_heads"]) + ([] if self.task_embeddings else _EMBEDDING_KEYS)
        for key in unused:
            output.pop(key, None)
        # transformers 4.x prefixes the pipeline code loaded from a repo with "<repo id>--": a saved model ships its
        # own copy of the pipeline file, so the saved reference points at that copy.
        for spec in (output.get("custom_pipelines") or {}).values():
            if isinstance(spec, dict) and isinstance(spec.get("impl"), str):
                spec["impl"] = spec["impl"].split("--")[-1]
        return output

    def to_diff_dict(self) -> dict[str, Any]:
        # The encoder config is written in full: a diff against one release's defaults would be read back with
        # another release's defaults.
        output = super().to_diff_dict()
        full = self.to_dict()
        output.update(encoder=full["encoder"], tasks=full["tasks"], custom_pipelines=full["custom_pipelines"])
        for key in ("shared_heads", *_EMBEDDING_KEYS):
            if key in full:
                output[key] = full[key]
            else:
                output.pop(key, None)
        return output

    @property
    def task_names(self) -> list[str]:
        """Task names in head order."""
        return list(self.tasks)

    def head_of(self, task: str) -> str:
        """The task whose head `task` runs (itself unless it shares one, see `shared_heads`)."""
        for head, members in (self.shared_heads or {}).items():
            if task in members:
                return head
        return task

    def tasks_of_kind(self, multiple_choice: bool, tasks: list[str] | None = None) -> list[str]:
        """The multiple-choice tasks (or the others) among `tasks` (default: all), in order."""
        tasks = self.task_names if tasks is None else tasks
        return [name for name in tasks if (self.tasks[name]["problem_type"] == MULTIPLE_CHOICE) == multiple_choice]

    @property
    def num_labels_per_task(self) -> dict[str, int]:
        """Head size of every task."""
        return {name: len(spec["labels"]) for name, spec in self.tasks.items()}

    @property
    def hidden_size(self) -> int:
        """Width of the shared encoder's output (`dim` for DistilBERT)."""
        return getattr(self.encoder, "hidden_size", None) or self.encoder.dim

    def native_pooling_activation(self) -> str:
        """The activation of the encoder family's sequence-classification transform (`pooling="native"`)."""
        model_type = self.encoder.model_type
        if model_type not in NATIVE_POOLING_ACTIVATIONS:
            raise ValueError(
                f"pooling='native' does not know the sequence-classification head of {model_type!r} encoders; "
                f"known families: {', '.join(NATIVE_POOLING_ACTIVATIONS)}. Use pooling='cls' or 'mean'."
            )
        activation = NATIVE_POOLING_ACTIVATIONS[model_type]
        return activation or getattr(self.encoder, "pooler_hidden_act", "gelu")

    def task_id2label(self, task: str) -> dict[int, str]:
        """`{id: label}` of one task."""
        return dict(enumerate(self.task(task)["labels"]))

    def task_label2id(self, task: str) -> dict[str, int]:
        """`{label: id}` of one task."""
        return {label: i for i, label in enumerate(self.task(task)["labels"])}

    def task(self, name: str) -> dict[str, Any]:
        """The spec of one task; a clear `KeyError` naming the known tasks otherwise."""
        if name not in self.tasks:
            raise KeyError(f"Unknown task {name!r}: this model has tasks {', '.join(self.tasks)}.")
        return self.tasks[name]


def _encoder_config(encoder: Any) -> PreTrainedConfig:
    if isinstance(encoder, PreTrainedConfig):
        return encoder
    if isinstance(encoder, dict) and encoder.get("model_type"):
        encoder = dict(encoder)
        return AutoConfig.for_model(encoder.pop("model_type"), **encoder)
    raise ValueError(
        "MultitaskConfig needs an encoder config: a PreTrainedConfig, or a dict with its 'model_type' "
        f"(e.g. BertConfig().to_dict()), got {type(encoder).__name__}."
    )


def normalize_tasks(tasks: Any) -> dict[str, dict[str, Any]]:
    """Checks a `tasks` mapping (or its JSON form, a list of specs with a `name`) and returns it with every default
    written out (a JSON-ready copy)."""
    if isinstance(tasks, (list, tuple)) and all(isinstance(spec, dict) and "name" in spec for spec in tasks):
        names = [spec["name"] for spec in tasks]
        if len(set(names)) != len(names):
            raise ValueError(f"Duplicate task names in {names}.")
        tasks = {spec["name"]: {k: v for k, v in spec.items() if k != "name"} for spec in tasks}
    if not isinstance(tasks, dict) or not tasks:
        raise ValueError(
            "MultitaskConfig needs at least one task: tasks={'name': {'labels': [...], 'problem_type': ...}}."
        )
    return {name: normalize_task(name, spec) for name, spec in tasks.items()}


def check_task_name(name: Any) -> str:
    """Raises a `ValueError` unless `name` is a valid task name (see `TASK_NAME_PATTERN`); returns it."""
    if not isinstance(name, str):
        raise ValueError(f"Invalid task name {name!r}: task names are strings, got {type(name).__name__}.")
    if not TASK_NAME_PATTERN.fullmatch(name) or name in _RESERVED_TASK_NAMES:
        reserved = " and not a reserved name such as 'type', 'keys' or 'train'" if name in _RESERVED_TASK_NAMES else ""
        raise ValueError(
            f"Invalid task name {name!r}: use 1-64 ASCII letters, digits, '_' or '-', starting with a letter or "
            f"digit{reserved} (task names key the model's heads, its outputs and report file names)."
        )
    return name


def normalize_task(name: str, spec: Any) -> dict[str, Any]:
    """Checks one task spec: labels present, unique and strings; a known problem type; a threshold in (0, 1)."""
    check_task_name(name)
    if not isinstance(spec, dict):
        raise ValueError(
            f"Task {name!r}: expected a dict with 'labels' and 'problem_type', got {type(spec).__name__}."
        )
    unknown = sorted(set(spec) - set(_TASK_KEYS))
    if unknown:
        raise ValueError(f"Task {name!r}: unknown keys {unknown}; valid keys are {', '.join(_TASK_KEYS)}.")
    problem_type = spec.get("problem_type", SINGLE_LABEL)
    if problem_type not in PROBLEM_TYPES:
        raise ValueError(
            f"Task {name!r}: unknown problem_type {problem_type!r}; choose one of {', '.join(PROBLEM_TYPES)}."
        )
    if problem_type == MULTIPLE_CHOICE:  # the choices come with each input: the head scores one pair
        if spec.get("labels", CHOICE_LABELS) != CHOICE_LABELS or set(spec) - {"labels", "problem_type", "text_pair"}:
            raise ValueError(
                f"Task {name!r}: a {MULTIPLE_CHOICE} task takes no labels or thresholds (its choices come with each "
                f"input); got {spec}."
            )
        return {"labels": list(CHOICE_LABELS), "problem_type": MULTIPLE_CHOICE}
    labels = spec.get("labels")
    if isinstance(labels, str) or not isinstance(labels, (list, tuple)) or not labels:
        raise ValueError(f"Task {name!r}: 'labels' must be a non-empty list of label names, got {labels!r}.")
    labels = [str(label) for label in labels]
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise ValueError(f"Task {name!r}: duplicate labels {duplicates}.")
    if problem_type == SINGLE_LABEL and len(labels) < 2:
        raise ValueError(f"Task {name!r}: a single-label task needs at least 2 labels, got {labels}.")
    normalized = {"labels": labels, "problem_type": problem_type}
    if problem_type == MULTI_LABEL:
        threshold = float(spec.get("threshold", 0.5))
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"Task {name!r}: threshold must be in (0, 1), got {threshold}.")
        normalized["threshold"] = threshold
        if spec.get("thresholds") is not None:
            normalized["thresholds"] = _label_thresholds(name, spec["thresholds"], labels)
    else:
        for key in ("threshold", "thresholds"):
            if key in spec:
                raise ValueError(f"Task {name!r}: {key!r} only applies to {MULTI_LABEL} tasks.")
    if spec.get("text_pair"):  # written only when true: configs of single-text tasks stay as they were
        if spec["text_pair"] is not True:
            raise ValueError(f"Task {name!r}: 'text_pair' must be true or false, got {spec['text_pair']!r}.")
        normalized["text_pair"] = True
    return normalized


def normalized_labels(labels: list[str]) -> tuple[str, ...]:
    """Labels as compared for sharing a head: stripped and lower-cased, order kept."""
    return tuple(label.strip().lower() for label in labels)


def check_shared_heads(tasks: dict[str, dict], shared: Any) -> dict[str, list[str]]:
    """Checks `{head task: [tasks sharing its head]}`: known tasks, each in one group, same problem type and labels."""
    if not isinstance(shared, dict) or not all(isinstance(m, (list, tuple)) for m in shared.values()):
        raise ValueError(f"shared_heads must be {{head task: [task, ...]}}, got {shared!r}.")
    shared = {head: list(members) for head, members in shared.items()}
    listed = [task for members in shared.values() for task in members]
    unknown = sorted({*shared, *listed} - set(tasks))
    if unknown or len(set(listed)) != len(listed):
        raise ValueError(f"shared_heads {shared}: unknown tasks {unknown} or a task in two groups.")
    for head, members in shared.items():
        if members[:1] != [head] or len(members) < 2:
            raise ValueError(f"shared_heads[{head!r}] must list {head!r} first and at least one other task.")
        for task in members[1:]:
            a, b = tasks[head], tasks[task]
            if a["problem_type"] != b["problem_type"] or normalized_labels(a["labels"]) != normalized_labels(
                b["labels"]
            ):
                raise ValueError(
                    f"Tasks {head!r} and {task!r} cannot share a head: problem types {a['problem_type']}/"
                    f"{b['problem_type']}, labels {a['labels']}/{b['labels']} (same labels in the same order needed)."
                )
    return shared


def _label_thresholds(name: str, values: Any, labels: list[str]) -> list[float]:
    if isinstance(values, (str, bytes)) or not isinstance(values, (list, tuple)) or len(values) != len(labels):
        raise ValueError(f"Task {name!r}: 'thresholds' must be a list of {len(labels)} numbers (one per label).")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and 0.0 < v < 1.0 for v in values):
        raise ValueError(f"Task {name!r}: every per-label threshold must be in (0, 1), got {list(values)}.")
    return [float(v) for v in values]


__all__ = [
    "MultitaskConfig",
    "check_shared_heads",
    "normalized_labels",
    "check_task_name",
    "normalize_task",
    "normalize_tasks",
]
