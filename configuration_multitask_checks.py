# Copyright 2026 The polyhead authors. Licensed under the Apache License, Version 2.0.
"""What a valid multitask config holds: problem types, task names and specs, shared heads and pooling, each checked.

A Hub file (run through `trust_remote_code=True`): it imports only torch and transformers, and
`configuration_multitask.py` imports it.
"""

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
_TASK_KEYS = ("labels", "problem_type", "threshold", "thresholds", "text_pair")
# A task name keys an `nn.ModuleDict`, the pipeline's output, JSON files and report file names: ASCII letters, digits,
# `_` and `-`, and none of the `nn.ModuleDict` attributes (`type`, `keys`, `train`...) it would shadow.
TASK_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_RESERVED_TASK_NAMES = frozenset(name for name in dir(nn.ModuleDict()) if TASK_NAME_PATTERN.fullmatch(name))


def encoder_config(encoder: Any) -> PreTrainedConfig:
    """The shared encoder's config: a `PreTrainedConfig` as is, or one built from a dict holding its `model_type`."""
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
        threshold = spec.get("threshold")
        threshold = 0.5 if threshold is None else threshold
        if not _is_probability(threshold):
            raise ValueError(f"Task {name!r}: threshold must be a number in (0, 1), got {threshold!r}.")
        normalized["threshold"] = float(threshold)
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


def check_options(pooling: Any, classifier_dropout: Any, task_embeddings: Any, task_embedding_dropout: Any) -> None:
    """Checks the model-wide options: a known pooling mode, dropouts in [0, 1), `task_embeddings` a boolean."""
    if pooling not in POOLING_MODES:
        raise ValueError(f"Unknown pooling {pooling!r}: choose one of {', '.join(POOLING_MODES)}.")
    if not 0.0 <= float(classifier_dropout) < 1.0:
        raise ValueError(f"classifier_dropout must be in [0, 1), got {classifier_dropout}.")
    if task_embeddings not in (True, False) or not 0.0 <= float(task_embedding_dropout) < 1.0:
        raise ValueError("task_embeddings must be true or false and task_embedding_dropout in [0, 1).")


def native_activation(encoder: Any) -> str:
    """The activation of the encoder family's sequence-classification transform (`pooling="native"`); a clear
    `ValueError` for a family without a known one."""
    model_type = encoder.model_type
    if model_type not in NATIVE_POOLING_ACTIVATIONS:
        raise ValueError(
            f"pooling='native' does not know the sequence-classification head of {model_type!r} encoders; "
            f"known families: {', '.join(NATIVE_POOLING_ACTIVATIONS)}. Use pooling='cls' or 'mean'."
        )
    return NATIVE_POOLING_ACTIVATIONS[model_type] or getattr(encoder, "pooler_hidden_act", "gelu")


def _label_thresholds(name: str, values: Any, labels: list[str]) -> list[float]:
    if isinstance(values, (str, bytes)) or not isinstance(values, (list, tuple)) or len(values) != len(labels):
        raise ValueError(f"Task {name!r}: 'thresholds' must be a list of {len(labels)} numbers (one per label).")
    if not all(_is_probability(v) for v in values):
        raise ValueError(f"Task {name!r}: every per-label threshold must be a number in (0, 1), got {list(values)}.")
    return [float(v) for v in values]


def _is_probability(value: Any) -> bool:
    """A decision threshold: a number (not a bool, nor a string of one) strictly between 0 and 1."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0.0 < value < 1.0


__all__ = [
    "CHOICE_LABELS",
    "MULTIPLE_CHOICE",
    "MULTI_LABEL",
    "NATIVE_POOLING_ACTIVATIONS",
    "POOLING_MODES",
    "PROBLEM_TYPES",
    "SINGLE_LABEL",
    "TASK_NAME_PATTERN",
    "check_options",
    "check_shared_heads",
    "check_task_name",
    "encoder_config",
    "normalize_task",
    "native_activation",
    "normalize_tasks",
    "normalized_labels",
]
