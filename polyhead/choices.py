"""Multiple-choice tasks on the library side: checking rows, tokenizing (context, choice) pairs, batching, scoring.

A multiple-choice row holds a context (`text_column`), optionally a question (`question_column`, default the
`question` column when the data has one), a list of choices (`choices_column`, default `choices`) and the right one
(`label_column`: its index, or its text). Each choice becomes one sentence pair (context [+ question], choice), built
by the pipeline's `choice_pairs` so that training and serving pair them the same way. A batch holds one task (as for
every task); its rows may have different choice counts: the collator pads the choices and passes a `choice_mask`, and
the model encodes only the real pairs.
"""

from collections.abc import Sequence
from typing import Any

import datasets
import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from polyhead.remote_code import MULTIPLE_CHOICE, choice_pairs


_MAX_SHOWN = 10
PADDED_CHOICE = torch.finfo(torch.float32).min  # the logit of a padding choice: below any real one, never chosen


def is_multiple_choice(problem_type: str | None) -> bool:
    return problem_type == MULTIPLE_CHOICE


def question_column(spec, dataset: datasets.Dataset) -> str | None:
    """The spec's question column, else `question` when the data has one, else None."""
    if spec.question_column is not None:
        return spec.question_column
    return "question" if "question" in dataset.column_names else None


def required_columns(spec) -> list[str]:
    """The columns every split of a multiple-choice task must have."""
    return [spec.text_column, spec.choices_column, spec.label_column] + (
        [spec.question_column] if spec.question_column else []
    )


def answer_index(choices: list, label: Any) -> int | None:
    """The index of the right choice: `label` itself when it is an index in range, else the choice equal to it."""
    if isinstance(label, (int, np.integer)) and not isinstance(label, bool):
        return int(label) if 0 <= label < len(choices) else None
    if isinstance(label, str) and label in choices:
        return choices.index(label)
    if isinstance(label, str) and label.strip().isdigit() and int(label) < len(choices):
        return int(label)  # an index read from a CSV column
    return None


def check_rows(name: str, role: str, dataset: datasets.Dataset, spec) -> None:
    """Every row has at least 2 distinct non-empty string choices and a right answer among them."""
    choices, labels = dataset[spec.choices_column], dataset[spec.label_column]
    for row, (options, label) in enumerate(zip(choices, labels)):
        valid = isinstance(options, list) and all(isinstance(c, str) and c.strip() for c in options)
        if not valid or len(options) < 2 or len(set(options)) < len(options):
            raise ValueError(
                f"Task {name!r}: row {row} of its {role} split has choices {options!r:.120}; a multiple-choice row "
                f"needs a list of at least 2 distinct non-empty strings in column {spec.choices_column!r}."
            )
        if answer_index(options, label) is None:
            raise ValueError(
                f"Task {name!r}: row {row} of its {role} split has the answer {label!r}, which is not among its "
                f"choices {options!r:.120}: give the index (0-{len(options) - 1}) or the text of the right choice in "
                f"column {spec.label_column!r}."
            )


def label_ids(dataset: datasets.Dataset, spec) -> list[int]:
    """The index of the right choice of every row (rows already checked by [`check_rows`])."""
    return [answer_index(c, label) for c, label in zip(dataset[spec.choices_column], dataset[spec.label_column])]


def tokenize_split(
    name: str, dataset: datasets.Dataset, spec, tokenizer: PreTrainedTokenizerBase, max_length: int | None
) -> datasets.Dataset:
    """One row per question: `input_ids` (and masks) as one list per choice, `labels` the right choice, `task`."""
    question = question_column(spec, dataset)
    labels = label_ids(dataset, spec)

    def encode(batch: dict[str, list]) -> dict[str, list]:
        rows = [
            {
                "text": text,
                "question": batch[question][i] if question else None,
                "choices": batch[spec.choices_column][i],
            }
            for i, text in enumerate(batch[spec.text_column])
        ]
        pairs = [pair for row in rows for pair in choice_pairs(row)]
        encoded = tokenizer(*zip(*pairs), truncation=max_length is not None, max_length=max_length)
        ends = np.cumsum([len(row["choices"]) for row in rows]).tolist()
        grouped = {
            key: [values[end - len(row["choices"]) : end] for row, end in zip(rows, ends)]
            for key, values in encoded.items()
        }
        return {**grouped, "task": [name] * len(rows)}

    dataset = dataset.add_column("labels", labels, feature=datasets.Value("int64"))
    dropped = [column for column in dataset.column_names if column != "labels"]
    return dataset.map(encode, batched=True, remove_columns=dropped, desc=f"Tokenizing {name}")


def collate(tokenizer: PreTrainedTokenizerBase, features: list[dict], pad_to_multiple_of: int | None = None) -> dict:
    """Rows of one multiple-choice task -> `(batch, max choices, length)` inputs, `choice_mask`, `labels`, `task`."""
    keys = [key for key in features[0] if key not in ("task", "labels")]
    counts = [len(feature["input_ids"]) for feature in features]
    pairs = [{key: feature[key][j] for key in keys} for feature in features for j in range(len(feature["input_ids"]))]
    padded = tokenizer.pad(pairs, return_tensors="pt", pad_to_multiple_of=pad_to_multiple_of)
    mask = torch.arange(max(counts))[None, :] < torch.tensor(counts)[:, None]
    batch = {}
    for key, values in padded.items():
        full = values.new_zeros((len(features), max(counts), values.shape[-1]))
        full[mask] = values
        batch[key] = full
    batch["choice_mask"] = mask
    if "labels" in features[0]:
        batch["labels"] = torch.tensor([feature["labels"] for feature in features], dtype=torch.long)
    batch["task"] = features[0]["task"]
    return batch


@torch.no_grad()
def predict_logits(model, dataset: datasets.Dataset, tokenizer, task: str, batch_size: int = 32) -> tuple:
    """`(logits (rows, max choices), labels)` of one multiple-choice task; padding choices at the lowest value."""
    rows = dataset.with_format(None)[:]
    features = [dict(zip(rows, values)) for values in zip(*rows.values())]
    logits = []
    for start in range(0, len(features), batch_size):
        batch = collate(tokenizer, features[start : start + batch_size])
        inputs = {key: value.to(model.device) for key, value in batch.items() if key not in ("task", "labels")}
        logits.append(model(**inputs, task=task).logits[task].float().cpu())
    width = max(value.shape[-1] for value in logits)
    logits = torch.cat(
        [torch.nn.functional.pad(value, (0, width - value.shape[-1]), value=PADDED_CHOICE) for value in logits]
    )
    return logits.numpy(), np.asarray(rows["labels"], dtype=np.int64)


def real_choice_logits(logits: np.ndarray, choice_mask: np.ndarray) -> np.ndarray:
    """`logits (rows, choices)` with `PADDED_CHOICE` wherever `choice_mask` is not 1. The Trainer's evaluation loop
    pads both with -100 to the widest batch (and process): a value real logits may be below, so never a pad itself."""
    return np.where(choice_mask == 1, logits, np.float32(PADDED_CHOICE)).astype(np.float32)


def split_tasks(specs: Sequence[str], model) -> tuple[list[str], list[str]]:
    """`(multiple-choice tasks, the others)` among `specs` (task names of `model`)."""
    choice = [task for task in specs if is_multiple_choice(model.config.task(task)["problem_type"])]
    return choice, [task for task in specs if task not in choice]
