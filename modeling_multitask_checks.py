# Copyright 2026 The polyhead authors. Licensed under the Apache License, Version 2.0.
"""The checks that protect a `MultitaskModel` user: the tasks and labels of a forward pass, and a checkpoint whose
weights disagree with its config, each refused with a `ValueError` naming the problem and the fix.

A Hub file (run through `trust_remote_code=True`): it imports only torch and its flat sibling
`configuration_multitask_checks.py`; `modeling_multitask.py` imports it.
"""

import torch

from .configuration_multitask_checks import MULTI_LABEL


def check_input_shapes(inputs: dict, choice_mask: torch.Tensor | None) -> bool:
    """Whether `inputs` (`input_ids` or `inputs_embeds`, and their masks) are multiple-choice inputs, their shapes
    checked: `(batch, length)`, or `(batch, choices, length)` with a `choice_mask` of `(batch, choices)` that leaves
    each row a real choice (a wrong shape failed deep inside the encoder, an empty row scored nothing)."""
    ids, embeds = inputs.get("input_ids"), inputs.get("inputs_embeds")
    given, name = (ids, "input_ids") if ids is not None else (embeds, "inputs_embeds")
    if given is None:
        return False
    shape = tuple(given.shape if ids is not None else given.shape[:-1])
    if len(shape) not in (2, 3):
        hidden = "" if ids is not None else ", hidden"
        raise ValueError(
            f"{name} must be (batch, length{hidden}), or (batch, choices, length{hidden}) for multiple-choice tasks; "
            f"got shape {tuple(given.shape)}."
        )
    for key in ("attention_mask", "token_type_ids"):  # a mask of another rank (a custom 4D attention mask) passes
        value = inputs.get(key)
        if value is not None and (len(shape) == 3 or value.dim() == len(shape)) and tuple(value.shape) != shape:
            raise ValueError(f"{key} must have the shape of {name}, {shape}; got {tuple(value.shape)}.")
    if choice_mask is None:
        return len(shape) == 3
    if len(shape) == 2:
        raise ValueError("choice_mask is for multiple-choice inputs (batch, choices, length), not (batch, length).")
    if tuple(choice_mask.shape) != shape[:2]:
        raise ValueError(f"choice_mask must be (batch, choices) = {shape[:2]}, got {tuple(choice_mask.shape)}.")
    empty = (~choice_mask.bool().any(dim=-1)).nonzero().flatten().tolist()
    if empty:
        raise ValueError(f"choice_mask rows {empty} have no real choice: every row needs at least one.")
    return True


def check_attention_output(attn_implementation: str) -> None:
    """Refuses `output_attentions=True` unless the encoder runs eager attention: the others compute no attention
    weights (transformers 5 returns none, 4.x quietly runs eager attention for that call)."""
    if attn_implementation != "eager":
        raise ValueError(
            f"output_attentions=True needs eager attention, and this model's encoder runs {attn_implementation!r} "
            'attention, which computes no attention weights: load the model with attn_implementation="eager".'
        )


def resolve_tasks(config, task: str | list[str] | None, choices: bool = False) -> list[str]:
    """The tasks a forward pass runs: `task` (a name or a list) checked against the config and the input's kind."""
    kind = "multiple-choice inputs (batch, choices, length)" if choices else "inputs (batch, length)"
    if task is None:
        tasks = config.tasks_of_kind(choices)
        if not tasks:
            raise ValueError(f"This model has no task for {kind}: its tasks are {config.task_names}.")
        return tasks
    tasks = [task] if isinstance(task, str) else list(task)
    if not tasks:
        raise ValueError(f"task is empty: name some of this model's tasks {config.task_names} (None: all).")
    unknown = [name for name in tasks if name not in config.tasks]
    if unknown:
        raise ValueError(f"Unknown task(s) {unknown}: this model has tasks {config.task_names}.")
    wrong = config.tasks_of_kind(not choices, tasks)
    if wrong:
        raise ValueError(
            f"Task(s) {wrong} do not take {kind}: multiple-choice tasks take (batch, choices, length) pairs, the "
            f"others (batch, length)."
        )
    return tasks


def resolve_labels(config, labels, tasks: list[str], choice_mask: torch.Tensor | None = None) -> dict:
    """`{task: labels}` from a tensor (one task running) or a dict, each checked against its task."""
    if labels is None:
        return {}
    if not isinstance(labels, dict):
        if len(tasks) != 1:
            raise ValueError(
                f"labels is a single tensor but {len(tasks)} tasks run: pass task='name' or labels={{task: ...}}."
            )
        labels = {tasks[0]: labels}
    missing = [name for name in labels if name not in tasks]
    if missing:
        raise ValueError(f"labels given for task(s) {missing} that do not run; running tasks: {tasks}.")
    for name, target in labels.items():
        check_labels(config, name, target, choice_mask)
    return labels


def check_labels(config, task: str, labels: torch.Tensor, choice_mask: torch.Tensor | None = None) -> None:
    """Raises a `ValueError` unless `labels` fit `task`: class ids, multi-hot rows or a real choice's index."""
    spec = config.tasks[task]
    num_labels = len(spec["labels"])
    if choice_mask is not None:  # multiple choice: the index of a real choice
        real = choice_mask.sum(dim=-1).to(labels.device)
        bad = ((labels < 0) | (labels >= real)) & (labels != -100)
        if labels.dim() != 1 or labels.is_floating_point() or bad.any():
            raise ValueError(
                f"Task {task!r} is multiple-choice: labels must be the index of the right choice, shape "
                f"(batch_size,), below each row's choice count {real.tolist()[:10]}; got {labels.tolist()[:10]}."
            )
        return
    if spec["problem_type"] == MULTI_LABEL:
        if labels.dim() != 2 or labels.shape[-1] != num_labels:
            raise ValueError(
                f"Task {task!r} is multi-label: labels must be multi-hot of shape (batch_size, {num_labels}), "
                f"got shape {tuple(labels.shape)}."
            )
        bad = (labels != 0) & (labels != 1) & (labels != -100)
    else:
        if labels.dim() != 1 or labels.is_floating_point():
            raise ValueError(
                f"Task {task!r} is single-label: labels must be integer class ids of shape (batch_size,), "
                f"got {labels.dtype} of shape {tuple(labels.shape)}."
            )
        bad = ((labels < 0) | (labels >= num_labels)) & (labels != -100)
    if bad.any():
        raise ValueError(
            f"Task {task!r}: label values {sorted(set(labels[bad].tolist()))[:10]} are outside its "
            f"{num_labels} labels {spec['labels']}."
        )


def check_loading_info(info: dict, tasks: list[str]) -> None:
    """Refuses what `from_pretrained` would silently repair: a task missing from the weights (a random head), weights
    of a task missing from the config (dropped), or weights of the wrong shape. `info` is transformers' loading info,
    or the same keys that `polyhead.saving` finds in a model folder's weights before it is published."""
    missing = sorted(info.get("missing_keys") or ())
    orphans = sorted(key for key in info.get("unexpected_keys") or () if key.startswith("heads."))
    mismatched = sorted(map(_mismatch, info.get("mismatched_keys") or ()))
    problems = []
    if missing:
        problems.append(f"no weights for {_summarize(missing)} (in the config but not in the checkpoint)")
    if orphans:
        problems.append(f"weights for {_summarize(orphans)} whose tasks are not in config.tasks")
    if mismatched:
        problems.append(f"weights of the wrong shape for {_summarize(mismatched)}")
    if problems:
        raise ValueError(
            f"config.json and the weights disagree: {'; '.join(problems)}. Config tasks: {tasks}. Use the config.json "
            "saved with these weights: tasks and labels are added by training (polyhead's scripts/train.py "
            "--init_from MODEL, with --extend_labels true for new labels of a task)."
        )


def _mismatch(item) -> str:  # a key (transformers 4.x) or (key, checkpoint shape, model shape) (5.x)
    if isinstance(item, (tuple, list)) and len(item) == 3:
        return f"{item[0]}: {list(item[1])} in the checkpoint, {list(item[2])} in the config"
    return str(item[0] if isinstance(item, (tuple, list)) else item)


def _summarize(keys: list[str], limit: int = 6) -> str:
    return str(keys[:limit])[:-1] + (f", ... {len(keys) - limit} more]" if len(keys) > limit else "]")


__all__ = [
    "check_attention_output",
    "check_input_shapes",
    "check_labels",
    "check_loading_info",
    "resolve_labels",
    "resolve_tasks",
]
