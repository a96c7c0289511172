# Copyright 2026 The polyhead authors. Licensed under the Apache License, Version 2.0.
"""The multitask pipelines' checks of their inputs and call parameters (each failure a clear error naming the fix),
and the input rules they share: the encoder's position limit, multiple-choice pairs, tasks by kind. The checks of a
table of inputs (`check_row_index`, `check_text_rows`) are the pipeline's text rule applied to every row of a file:
polyhead's bulk prediction calls them, and so does a Space's batch upload through the model's own remote code (a
Space runs without polyhead).

A Hub file (run through `trust_remote_code=True`): it imports only its flat sibling `multitask_ranking.py`.
"""

import string
from typing import Any

from .multitask_ranking import MULTI_LABEL, MULTIPLE_CHOICE


# Position ids start after the padding index in these families: a copy of polyhead.encoders' rule (pinned by a test).
_PADDING_OFFSET_FAMILIES = frozenset(
    "roberta xlm-roberta xlm-roberta-xl camembert roberta-prelayernorm data2vec-text longformer mpnet".split()
)


def check_tasks(specs: dict, tasks: str | list[str]) -> list[str]:
    """The `tasks` call parameter as a list of this model's task names (`specs`: the config's tasks)."""
    known = list(specs)
    if not isinstance(tasks, (str, list, tuple)) or not all(isinstance(task, str) for task in tasks):
        raise ValueError(
            f"tasks must be a task name or a list of task names (this model's tasks: {known}), got {tasks!r:.80}."
        )
    tasks = [tasks] if isinstance(tasks, str) else list(tasks)
    if not tasks:
        raise ValueError(f"tasks is empty: name some of this model's tasks {known}, or leave it out for all.")
    unknown = [task for task in tasks if task not in known]
    if unknown:
        raise ValueError(f"Unknown task(s) {unknown}: this model has tasks {known}.")
    return tasks


def check_thresholds(specs: dict, threshold: float | dict[str, float]) -> dict[str, float]:
    """The `threshold` call parameter (one number for every multi-label task, or `{task: number}`) by task."""
    multi_label = [task for task, spec in specs.items() if spec["problem_type"] == MULTI_LABEL]
    if not isinstance(threshold, dict):
        threshold = dict.fromkeys(multi_label, threshold)
    wrong = [task for task in threshold if task not in multi_label]
    if wrong:
        raise ValueError(f"threshold given for {wrong}, which are not multi-label tasks ({multi_label}).")
    for task, value in threshold.items():  # a bool is an int: True would be taken as 1.0
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
            raise ValueError(f"threshold for task {task!r} must be a number in [0, 1], got {value!r}.")
    return {task: float(value) for task, value in threshold.items()}


def check_max_length(encoder, max_length: int, tokenizer=None) -> int:
    """The `max_length` call parameter: a positive integer within the encoder's positions and, given the
    `tokenizer`, with room for text beside its special tokens ([`check_room_for_text`])."""
    check_positive_int("max_length", max_length)
    limit = position_limit(encoder)
    if limit is not None and max_length > limit:
        raise ValueError(
            f"max_length={max_length} is more than this model's encoder accepts ({limit} tokens): "
            f"use max_length <= {limit}."
        )
    if tokenizer is not None:
        check_room_for_text(tokenizer, max_length)
    return max_length


def check_room_for_text(tokenizer, max_length: int, option: str = "max_length") -> None:
    """Refuses a `max_length` (the setting named `option`) that truncation cannot honour: below a sentence pair's
    special tokens plus one token of each text, the tokenizer leaves inputs uncut, and a long one then fails inside
    the encoder."""
    least = tokenizer.num_special_tokens_to_add(pair=True) + 2
    if max_length < least:
        raise ValueError(
            f"{option}={max_length} leaves no room for text beside the tokenizer's special tokens: use "
            f"{option} >= {least}."
        )


def position_limit(encoder) -> int | None:
    """The most tokens one text may have for this encoder config (None: no absolute positions, e.g. DeBERTa-v3);
    the rule of `polyhead.encoders.position_limit`."""
    positions = getattr(encoder, "max_position_embeddings", None)
    if positions is None or getattr(encoder, "position_biased_input", True) is False:
        return None
    if encoder.model_type in _PADDING_OFFSET_FAMILIES:
        return positions - (encoder.pad_token_id or 0) - 1
    return positions


def check_positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")


def check_tokenizer(tokenizer, vocab_size: int | None, model: str = "") -> None:
    """Refuses a tokenizer that cannot be the model's: one with nothing but special tokens (transformers builds such
    a tokenizer for a folder without tokenizer files, and every word would read as unknown), or one with more tokens
    than the encoder's `vocab_size` embeddings (its highest ids would fail inside the model). `model`: its name or
    folder, for the message."""
    where = repr(model) if model else "the model folder"
    size = len(tokenizer)
    if size <= len(set(tokenizer.all_special_tokens)):
        raise ValueError(
            f"The tokenizer has no vocabulary ({size} tokens, all special): {where} holds no tokenizer files "
            "(tokenizer_config.json, tokenizer.json or vocab files). Copy in the tokenizer the model was trained "
            "with, or pass tokenizer=..."
        )
    if vocab_size is not None and size > vocab_size:
        raise ValueError(
            f"The tokenizer has {size} tokens, more than the encoder's {vocab_size} embeddings: it is not the "
            f"tokenizer the model was trained with; copy that one into {where}, or pass tokenizer=..."
        )


def check_bool(name: str, value: Any, default: bool) -> bool:
    """A switch call parameter (`truncation`, `multi_label`, `sort_by_length`): True or False, None for its default
    (a JSON null); a string such as "no" would otherwise count as True."""
    if value is None:
        return default
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False (or None for the default, {default}), got {value!r:.60}.")
    return value


# The tokenizer's truncation strategies (transformers' `TruncationStrategy` values), which the `truncation` parameter
# takes; True is "longest_first" and False "do_not_truncate".
TRUNCATION_STRATEGIES = ("longest_first", "only_first", "only_second", "do_not_truncate")


def check_truncation(value: Any) -> bool | str:
    """The `truncation` call parameter: True (the default, also for None: "longest_first", which cuts the longer text
    of a pair), False, or a tokenizer strategy of `TRUNCATION_STRATEGIES`, passed on to the tokenizer as in
    transformers ("do_not_truncate" is False)."""
    if value is None:
        return True
    if isinstance(value, bool) or (isinstance(value, str) and value in TRUNCATION_STRATEGIES):
        return False if value == "do_not_truncate" else value
    raise ValueError(
        f"truncation must be True or False (or None for the default, True) or one of the tokenizer's strategies "
        f"{list(TRUNCATION_STRATEGIES)}, got {value!r:.60}."
    )


def check_candidate_labels(labels: Any) -> list[str]:
    """The zero-shot `candidate_labels`: a list (or tuple) of distinct non-empty strings, or (as transformers'
    zero-shot pipeline accepts) one string of them separated by commas."""
    if isinstance(labels, str):
        labels = [label.strip() for label in labels.split(",") if label.strip()]
    valid = isinstance(labels, (list, tuple)) and all(isinstance(label, str) and label.strip() for label in labels)
    if not valid or not labels:
        raise ValueError(
            "candidate_labels must be a non-empty list of label strings (or one string of labels separated by "
            f"commas), got {labels!r:.80}."
        )
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise ValueError(f"candidate_labels has duplicates {duplicates}: give each label once.")
    return list(labels)


def check_hypothesis_template(template: Any) -> str:
    """The zero-shot `hypothesis_template`: a string with exactly one `{}`, where each candidate label goes."""
    fix = "write one '{}' where the candidate label goes (e.g. 'This example is {}.'), a literal brace as '{{' or '}}'"
    if not isinstance(template, str):
        raise ValueError(
            f"hypothesis_template must be a string, got {type(template).__name__} {template!r:.60}: {fix}."
        )
    try:  # (literal text, field name, format spec, conversion) per piece; field name None: no placeholder
        fields = [field for _, *field in string.Formatter().parse(template) if field[0] is not None]
    except ValueError as error:  # e.g. "unexpected '{' in field name"
        raise ValueError(f"hypothesis_template {template!r} is not a valid template ({error}): {fix}.") from None
    if not fields:
        raise ValueError(f"hypothesis_template {template!r} has no '{{}}' where the candidate label should go: {fix}.")
    if fields != [["", "", None]]:  # not `{} {}`, `{x}`, `{0}` or `{:>9}`
        raise ValueError(
            f"hypothesis_template {template!r} must have exactly one placeholder, an empty '{{}}': {fix}."
        )
    return template


def check_untruncated(input_ids: list[list[int]], limit: int | None) -> None:
    # Past the position table the encoder fails deep inside (a shape mismatch in torch, an Add node in ONNX).
    longest = max(map(len, input_ids), default=0)
    if limit is not None and longest > limit:
        raise ValueError(
            f"An input has {longest} tokens with truncation=False, more than this model's encoder accepts ({limit} "
            "tokens): shorten it, or leave truncation on (the default) to cut it."
        )


def check_text(text: Any, position: int | None, what: str = "text") -> str:
    where = "" if position is None else f" at position {position}"
    if not isinstance(text, str):
        raise TypeError(f"Expected {what}{where} to be a string, got {type(text).__name__}: {text!r:.60}.")
    if not text.strip():
        raise ValueError(
            f"{what.capitalize()}{where} is empty: the multitask-classification pipeline needs non-empty strings."
        )
    problem = unicode_problem(text)
    if problem:  # a lone surrogate: the tokenizer's own error names no text or position
        raise ValueError(
            f"{what.capitalize()}{where} is not valid Unicode ({problem}): decode its bytes as UTF-8, e.g. with "
            "errors='replace'."
        )
    return text


def unicode_problem(text: str) -> str | None:
    """Why the tokenizer cannot take `text` (e.g. "surrogates not allowed at character 4": a lone surrogate, left by
    a bad decode or a JSON escape such as "\\ud800"), None when it is valid Unicode."""
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        return f"{error.reason} at character {error.start}"
    return None


# ----------------------------------------------------------- tables of inputs: bulk prediction, a Space's batch upload

EXTRA_FIELD = "(a trailing comma, or a comma in an unquoted text?): remove the extra field, or quote the text"


def check_row_index(table: Any, source: str) -> None:
    """Refuses a table read with pandas (`read_csv`) whose rows lost their default index: pandas makes the first
    column(s) the index when the first data row has more fields than the header names, so every text of that row
    would shift into the next column (and be predicted) without an error. `source`: the file, for the message."""
    index = table.index
    if type(index).__name__ != "RangeIndex" or index.nlevels > 1:  # pandas' default index is a RangeIndex
        header = [str(column) for column in table.columns]
        raise ValueError(
            f"{source}: the first data row has {len(header) + index.nlevels} fields but the header names "
            f"{len(header)} {header} {EXTRA_FIELD}."
        )


def check_text_rows(values: list, column: str, first_row: int = 0, source: str = "") -> None:
    """Refuses a column of texts (a file's rows, `first_row` the 0-based data row of `values[0]`) holding a value the
    pipeline refuses as a text ([`check_text`]): missing, not a string, empty or blank, or not valid Unicode; the
    error names the rows (the first 10) and the fix. `source`: the file, for the message."""
    where = f"{source}: column {column!r}" if source else f"Column {column!r}"
    bad = [first_row + i for i, value in enumerate(values) if not isinstance(value, str) or not value.strip()]
    if bad:
        raise ValueError(
            f"{where} has missing, non-text or empty values at rows {bad[:10]} (0-based data rows"
            f"{', the first 10' if len(bad) > 10 else ''}): drop or fill those rows."
        )
    problems = [(first_row + i, unicode_problem(value)) for i, value in enumerate(values)]
    broken = [(row, problem) for row, problem in problems if problem]
    if broken:
        raise ValueError(
            f"{where} has texts that are not valid Unicode at rows {[row for row, _ in broken[:10]]} (0-based data "
            f"rows{', the first 10' if len(broken) > 10 else ''}; row {broken[0][0]}: {broken[0][1]}): decode the "
            "file's bytes as UTF-8 (e.g. with errors='replace'), or drop those rows."
        )


def is_choice_input(item: Any) -> bool:
    return isinstance(item, dict) and "choices" in item


def choice_pairs(item: dict) -> list[tuple[str, str]]:
    """The (context, choice) sentence pairs of a multiple-choice input: the context is the text, then the question
    after a space when there is one (training pairs its rows the same way: polyhead.data)."""
    context = f"{item['text']} {item['question']}" if item.get("question") else item["text"]
    return [(context, choice) for choice in item["choices"]]


def kind_tasks(specs: dict, tasks: list[str] | None, choices: bool, strict: bool = False) -> list[str]:
    """The multiple-choice tasks (or the others) among `tasks` (default all); an error when none (or, `strict`, when
    another kind is among them)."""
    tasks = list(specs) if tasks is None else tasks
    found = [task for task in tasks if (specs[task]["problem_type"] == MULTIPLE_CHOICE) == choices]
    if not found or (strict and len(found) < len(tasks)):
        wrong = sorted(set(tasks) - set(found)) or tasks
        kind = "multiple-choice inputs ({'text', 'choices': [...]})" if choices else "texts or sentence pairs"
        fix = "" if choices else " (a multiple-choice task takes {'text': ..., 'choices': [...]} inputs)"
        raise ValueError(f"Task(s) {wrong} cannot answer {kind}{fix}; this model's tasks: {list(specs)}.")
    return found


def check_choices(item: dict, where: str) -> dict:
    if not set(item) <= {"text", "question", "choices"} or not isinstance(item.get("text"), str):
        raise ValueError(f"A multiple-choice input{where} has keys 'text', 'choices' and optionally 'question'.")
    choices = item["choices"]
    valid = isinstance(choices, list) and all(isinstance(c, str) and c.strip() for c in choices)
    if not valid or len(choices) < 2 or len(set(choices)) < len(choices):
        raise ValueError(
            f"The choices of the multiple-choice input{where} must be a list of at least 2 distinct non-empty "
            f"strings, got {choices!r:.80}."
        )
    return item


def check_input(item: Any, position: int | None, choices: bool = True) -> str | dict:
    """A non-empty string, or (as transformers' text-classification pipeline accepts) a `{"text": ...}` or
    `{"text": ..., "text_pair": ...}` dict of them, or a multiple-choice `{"text", "question"?, "choices"}`."""
    if not isinstance(item, dict):
        return check_text(item, position)
    where = "" if position is None else f" at position {position}"
    if "choices" in item and not choices:
        raise ValueError("Multiple-choice inputs go in a list (or alone), not in a generator.")
    if "choices" in item:
        check_text(item.get("text"), position, "'text'")
        if item.get("question") is not None:
            check_text(item["question"], position, "'question'")
        return check_choices(item, where)
    if "text" not in item or not set(item) <= {"text", "text_pair"}:
        raise ValueError(
            f"A dict input{where} must have the key 'text' and optionally 'text_pair' (a sentence pair), got keys "
            f"{sorted(map(str, item))}."
        )
    check_text(item["text"], position, "'text'")
    if "text_pair" in item:
        check_text(item["text_pair"], position, "'text_pair'")
    return item


def text_length(item: str | dict) -> int:
    return len(item) if isinstance(item, str) else len(item["text"]) + len(item.get("text_pair") or "")


__all__ = [
    "EXTRA_FIELD",
    "TRUNCATION_STRATEGIES",
    "check_bool",
    "check_candidate_labels",
    "check_hypothesis_template",
    "check_input",
    "check_max_length",
    "check_positive_int",
    "check_room_for_text",
    "check_row_index",
    "check_tasks",
    "check_text",
    "check_text_rows",
    "check_thresholds",
    "check_tokenizer",
    "check_truncation",
    "check_untruncated",
    "choice_pairs",
    "is_choice_input",
    "kind_tasks",
    "position_limit",
    "text_length",
    "unicode_problem",
]
