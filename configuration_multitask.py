# Copyright 2026 The polyhead authors. Licensed under the Apache License, Version 2.0.
"""Configuration of a multitask text classifier: one shared encoder, one classification head per task.

This file is executed by Hub users through `trust_remote_code=True`: it imports only transformers and its flat
sibling `configuration_multitask_checks.py` (what a valid config holds).
"""

import copy
from typing import Any

from .configuration_multitask_checks import (
    MULTIPLE_CHOICE,
    check_options,
    check_shared_heads,
    encoder_config,
    native_activation,
    normalize_tasks,
)


try:  # transformers >= 5
    from transformers import PreTrainedConfig
except ImportError:  # transformers 4.x
    from transformers import PretrainedConfig as PreTrainedConfig


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
        self.encoder = None if placeholder else encoder_config(encoder)
        self.tasks = {} if placeholder else normalize_tasks(tasks)
        check_options(pooling, classifier_dropout, task_embeddings, task_embedding_dropout)
        if pooling == "native" and self.encoder is not None:
            native_activation(self.encoder)  # refuses an encoder family without a known head
        self.pooling, self.classifier_dropout = pooling, float(classifier_dropout)
        self.shared_heads = check_shared_heads(self.tasks, shared_heads) if shared_heads else None
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
        return native_activation(self.encoder)

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


__all__ = ["MultitaskConfig"]
