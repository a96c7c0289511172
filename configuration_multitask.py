# Copyright 2026 The polyhead authors. Licensed under the Apache License, Version 2.0.
"""Configuration of a multitask text classifier: one shared encoder, one classification head per task.

This file is executed by Hub users through `trust_remote_code=True`: it imports only transformers and its flat
siblings, and must stay readable in one sitting.
"""

import copy
from typing import Any, ClassVar

from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec


SINGLE_LABEL = "single_label_classification"
MULTI_LABEL = "multi_label_classification"
PROBLEM_TYPES = (SINGLE_LABEL, MULTI_LABEL)
POOLING_MODES = ("cls", "mean")
PIPELINE_TASK = "multitask-classification"
# What `pipeline(PIPELINE_TASK, model=repo, trust_remote_code=True)` reads from config.json to find the pipeline code.
CUSTOM_PIPELINES = {
    PIPELINE_TASK: {
        "impl": "multitask_classification.MultitaskClassificationPipeline",
        "pt": ["AutoModel"],
        "type": "text",
    }
}
_TASK_KEYS = ("labels", "problem_type", "threshold")


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
            0.5) is the score above which the pipeline returns a label.
        pooling (`str`, *optional*, defaults to `"mean"`):
            How the sequence is pooled before the heads: `"cls"` (first token) or `"mean"` (mean over real tokens).
        classifier_dropout (`float`, *optional*, defaults to 0.1):
            Dropout applied to the pooled representation before every head.

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
    sub_configs_defaults: ClassVar[dict] = {"encoder": SubConfigSpec(config_class=AutoConfig, model_type="bert")}

    encoder: PreTrainedConfig | dict | None = None
    tasks: dict | None = None
    pooling: str = "mean"
    classifier_dropout: float = 0.1

    def __post_init__(self, **kwargs):
        kwargs.setdefault("custom_pipelines", copy.deepcopy(CUSTOM_PIPELINES))
        super().__post_init__(**kwargs)
        self.tasks = normalize_tasks(self.tasks)
        if self.pooling not in POOLING_MODES:
            raise ValueError(f"Unknown pooling {self.pooling!r}: choose one of {', '.join(POOLING_MODES)}.")
        if not 0.0 <= float(self.classifier_dropout) < 1.0:
            raise ValueError(f"classifier_dropout must be in [0, 1), got {self.classifier_dropout}.")

    def to_dict(self) -> dict[str, Any]:
        # config.json is written with sorted keys: tasks go out as a list so their (head) order survives the trip.
        output = super().to_dict()
        output["tasks"] = [{"name": name, **spec} for name, spec in self.tasks.items()]
        return output

    @property
    def task_names(self) -> list[str]:
        """Task names in head order."""
        return list(self.tasks)

    @property
    def num_labels_per_task(self) -> dict[str, int]:
        """Head size of every task."""
        return {name: len(spec["labels"]) for name, spec in self.tasks.items()}

    @property
    def hidden_size(self) -> int:
        """Width of the shared encoder's output (`dim` for DistilBERT)."""
        return getattr(self.encoder, "hidden_size", None) or self.encoder.dim

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
    return {str(name): normalize_task(str(name), spec) for name, spec in tasks.items()}


def normalize_task(name: str, spec: Any) -> dict[str, Any]:
    """Checks one task spec: labels present, unique and strings; a known problem type; a threshold in (0, 1)."""
    if not name or "." in name or name.strip() != name:
        # Task names key an `nn.ModuleDict` and the pipeline's output: no dots, no surrounding spaces.
        raise ValueError(f"Invalid task name {name!r}: use a non-empty name without dots or surrounding spaces.")
    if not isinstance(spec, dict):
        raise ValueError(
            f"Task {name!r}: expected a dict with 'labels' and 'problem_type', got {type(spec).__name__}."
        )
    unknown = sorted(set(spec) - set(_TASK_KEYS))
    if unknown:
        raise ValueError(f"Task {name!r}: unknown keys {unknown}; valid keys are {', '.join(_TASK_KEYS)}.")
    labels = spec.get("labels")
    if isinstance(labels, str) or not isinstance(labels, (list, tuple)) or not labels:
        raise ValueError(f"Task {name!r}: 'labels' must be a non-empty list of label names, got {labels!r}.")
    labels = [str(label) for label in labels]
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise ValueError(f"Task {name!r}: duplicate labels {duplicates}.")
    problem_type = spec.get("problem_type", SINGLE_LABEL)
    if problem_type not in PROBLEM_TYPES:
        raise ValueError(
            f"Task {name!r}: unknown problem_type {problem_type!r}; choose one of {', '.join(PROBLEM_TYPES)}."
        )
    if problem_type == SINGLE_LABEL and len(labels) < 2:
        raise ValueError(f"Task {name!r}: a single-label task needs at least 2 labels, got {labels}.")
    normalized = {"labels": labels, "problem_type": problem_type}
    if problem_type == MULTI_LABEL:
        threshold = float(spec.get("threshold", 0.5))
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"Task {name!r}: threshold must be in (0, 1), got {threshold}.")
        normalized["threshold"] = threshold
    elif "threshold" in spec:
        raise ValueError(f"Task {name!r}: 'threshold' only applies to {MULTI_LABEL} tasks.")
    return normalized


__all__ = ["MultitaskConfig", "normalize_task", "normalize_tasks"]
