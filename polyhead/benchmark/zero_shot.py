"""Scoring zero-shot classification through an NLI task on a labelled set the NLI head never saw.

Each text is classified with `candidate_labels` = the dataset's label names (readable names where the raw labels are
codes, e.g. trec's `LOC` -> "location"); accuracy is compared with the majority-class baseline (the most frequent
train label, predicted for every text). Entry point: `scripts/eval_zero_shot.py`.

A dataset is a folder `NAME/{train,test}.jsonl` of single-text, single-label rows `{"text", "label"}` (the layout of
`../shared/data`): the test split is scored, the train split gives the majority baseline. Multi-label sets (rows with
`labels`) and sentence-pair sets (rows with `text_pair`) are refused, as are malformed rows ([`load_zero_shot_set`]),
before any model loads.
"""

import json
import os
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from polyhead.encoders import check_positive_int
from polyhead.remote_code import ZeroShotMultitaskPipeline, multitask_inputs
from polyhead.run_folder import check_output_folder


# Readable candidate names for datasets whose labels are codes.
LABEL_NAMES = {
    "trec": {
        "ABBR": "abbreviation",
        "DESC": "description",
        "ENTY": "entity",
        "HUM": "person",
        "LOC": "location",
        "NUM": "number",
    },
}
TRAIN_FILE, TEST_FILE = "train.jsonl", "test.jsonl"  # the baseline's labels, the scored texts


def _numbered_rows(path: str | os.PathLike) -> list[tuple[int, Any]]:
    """`(line number, parsed JSON)` of every non-blank line; a line that does not parse is a `ValueError`."""
    rows = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if line.strip():
                try:
                    rows.append((number, json.loads(line)))
                except json.JSONDecodeError as error:
                    raise ValueError(
                        f"{path}, line {number}: not JSON ({error.msg}): one JSON object a line."
                    ) from None
    return rows


def parse_dataset_names(text: str) -> list[str]:
    """The dataset names of a comma-separated list (`"sst2, trec"`: spaces around names are dropped)."""
    names = [name.strip() for name in text.split(",")]
    if not all(names):
        raise ValueError(
            f"datasets {text!r} has an empty name: give dataset names separated by commas, e.g. sst2,trec."
        )
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"datasets {text!r} names {duplicates} more than once: give each dataset once.")
    return names


def _first_row(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as handle:
            return next((json.loads(line) for line in handle if line.strip()), None)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None


def single_label_datasets(data_dir: str | os.PathLike) -> list[str]:
    """The dataset folders of `data_dir` that zero-shot evaluation scores: a train and a test file whose first row is
    single-text, single-label (`{"text", "label"}`, no `text_pair`), sorted."""
    found = []
    for folder in sorted(Path(data_dir).iterdir()) if Path(data_dir).is_dir() else ():
        row = _first_row(folder / TRAIN_FILE)
        if (folder / TEST_FILE).is_file() and isinstance(row, dict) and "label" in row and "text_pair" not in row:
            found.append(folder.name)
    return found


def _scored_here(data_dir: str | os.PathLike) -> str:
    names = single_label_datasets(data_dir)
    return f"those in {data_dir} are {', '.join(names)}" if names else f"{data_dir} holds none"


def check_data_dir(data_dir: str | os.PathLike) -> None:
    """Raises a `ValueError` unless `data_dir` is a folder (of `NAME/{train,test}.jsonl` dataset folders)."""
    if not Path(data_dir).is_dir():
        what = "is a file" if Path(data_dir).exists() else "does not exist"
        raise ValueError(
            f"data dir {str(data_dir)!r} {what}: give the folder holding one NAME/{{{TRAIN_FILE},{TEST_FILE}}} folder "
            "per dataset (the project's real data is ../shared/data, beside the project)."
        )


def _checked_rows(path: Path, name: str, data_dir: str | os.PathLike, texts: bool) -> list[dict[str, Any]]:
    """The rows of one split, each a single-text, single-label row with a non-empty string label (and, with `texts`,
    a text the pipeline accepts): anything else is a `ValueError` naming the file and line."""
    rows = []
    for number, row in _numbered_rows(path):
        where = f"{path}, line {number}"
        if not isinstance(row, dict):
            raise ValueError(f'{where}: a row must be a JSON object {{"text": ..., "label": ...}}, got {row!r:.60}.')
        if "label" not in row and "labels" in row:
            raise ValueError(
                f"{name} is a multi-label dataset ({where} has 'labels', not one 'label'): zero-shot evaluation "
                f"scores single-label datasets; {_scored_here(data_dir)}. Drop {name} from the datasets."
            )
        if "text_pair" in row:
            raise ValueError(
                f"{name} is a sentence-pair dataset ({where} has a 'text_pair'): zero-shot evaluation scores "
                f"single-text, single-label datasets; {_scored_here(data_dir)}. Drop {name} from the datasets."
            )
        label = row.get("label")
        if not isinstance(label, str) or not label.strip():
            raise ValueError(f"{where}: 'label' must be a non-empty string, got {label!r:.60}.")
        if texts:
            try:
                multitask_inputs.check_text(row.get("text"), None)
            except (TypeError, ValueError) as error:
                raise ValueError(f"{where}: {error}") from None
        rows.append(row)
    if not rows:
        raise ValueError(f"{path} has no rows: a dataset needs labelled rows in both {TRAIN_FILE} and {TEST_FILE}.")
    return rows


@dataclass
class ZeroShotSet:
    """One dataset to score: `rows` (the sampled test rows), `names` (raw label -> candidate name, every label of
    both splits, sorted by raw label), `train_labels` (the majority baseline's labels) and the `files` read."""

    name: str
    rows: list[dict[str, Any]]
    names: dict[str, str]
    train_labels: list[str]
    files: tuple[Path, Path]


def load_zero_shot_set(
    data_dir: str | os.PathLike, name: str, max_samples: int | None = None, seed: int = 0
) -> ZeroShotSet:
    r"""
    Reads and checks the dataset `<data_dir>/<name>` (every row of both splits: one bad row fails here, before a
    model loads, not halfway through a run); the test rows scored are a seeded sample of `max_samples` (>= 1).

    Example:

    ```python
    >>> load_zero_shot_set("../shared/data", "trec", max_samples=200).names["LOC"]
    'location'
    ```
    """
    if max_samples is not None:
        check_positive_int("max_samples", max_samples)
    check_data_dir(data_dir)
    folder = Path(data_dir) / name
    files = (folder / TRAIN_FILE, folder / TEST_FILE)
    if not folder.is_dir():
        raise ValueError(
            f"dataset {name!r}: no folder {folder}; zero-shot evaluation scores single-label datasets: "
            f"{_scored_here(data_dir)}."
        )
    missing = [path.name for path in files if not path.is_file()]
    if missing:
        raise ValueError(
            f"dataset {name!r}: {folder} has no {' or '.join(missing)}; zero-shot evaluation scores the test split "
            f"against the train split's majority label, so it needs both."
        )
    train = _checked_rows(files[0], name, data_dir, texts=False)
    test = _checked_rows(files[1], name, data_dir, texts=True)
    readable = LABEL_NAMES.get(name, {})
    names = {label: readable.get(label, label) for label in sorted({row["label"] for row in train + test})}
    try:
        multitask_inputs.check_candidate_labels(list(names.values()))
    except ValueError as error:
        raise ValueError(f"dataset {name!r}: its label names {names} cannot be the candidates: {error}") from None
    if max_samples is not None and max_samples < len(test):
        test = random.Random(seed).sample(test, max_samples)
    return ZeroShotSet(name, test, names, [row["label"] for row in train], files)


def nli_task_of(config, nli_task: str | None = None) -> str:
    """The task zero-shot classification runs through, chosen from the model's config alone (before its weights
    load) by the pipeline's own rule (`ZeroShotMultitaskPipeline._nli_task`): raises its `ValueError` when the model
    has no NLI task, several and no `nli_task`, or `nli_task` is not one."""
    holder = SimpleNamespace(model=SimpleNamespace(config=config))
    return ZeroShotMultitaskPipeline._nli_task(holder, nli_task)[0]


def check_report_file(path: str | os.PathLike, option: str = "output") -> None:
    """Raises a `ValueError` unless a report can be written at `path`: not a folder, no file where a folder above it
    should be, and the nearest existing folder above it writable (missing folders are made when it is written).
    Checked before any work, so that the results are not lost at the end."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{option} {str(path)!r} is a folder: give a file path, e.g. {path / 'report.json'}.")
    check_output_folder(path.parent, option)
    existing = next(folder for folder in (path.parent, *path.parent.absolute().parents) if folder.exists())
    if not os.access(existing, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        blocked = path if path.exists() else existing
        raise ValueError(f"{option} {str(path)!r}: {blocked} is not writable; give a path you can write to.")


def zero_shot_accuracy(
    classifier,
    rows: Sequence[Mapping[str, Any]],
    names: Mapping[str, str],
    train_labels: Sequence[str],
    hypothesis_template: str = "This example is {}.",
    nli_task: str | None = None,
    batch_size: int | None = 32,
) -> dict[str, Any]:
    r"""
    Accuracy of zero-shot predictions (`names`: raw label -> candidate name) against the majority baseline.
    `batch_size`: (text, hypothesis) pairs per forward, across texts (`None`: one forward per text).

    Example:

    ```python
    >>> zero_shot_accuracy(classifier, rows, {"negative": "negative", "positive": "positive"}, train_labels)
    {'n': 300, 'accuracy': 0.62, 'majority_accuracy': 0.5, ...}
    ```
    """
    if not rows or not train_labels:
        raise ValueError(
            f"zero_shot_accuracy needs rows to score and train labels for the baseline, got {len(rows)} rows and "
            f"{len(train_labels)} train labels."
        )
    candidates = list(names.values())
    back = {name: label for label, name in names.items()}
    texts = [row["text"] for row in rows]
    answers = classifier(
        texts,
        candidate_labels=candidates,
        hypothesis_template=hypothesis_template,
        nli_task=nli_task,
        batch_size=batch_size,
    )
    predicted = [back[answer["labels"][0]] for answer in answers]
    truth = [row["label"] for row in rows]
    majority = Counter(train_labels).most_common(1)[0][0]
    return {
        "n": len(rows),
        "candidates": candidates,
        "hypothesis_template": hypothesis_template,
        "accuracy": sum(p == t for p, t in zip(predicted, truth)) / len(rows),
        "majority_label": majority,
        "majority_accuracy": sum(t == majority for t in truth) / len(rows),
        "predicted_distribution": dict(Counter(predicted).most_common()),
    }


__all__ = [
    "LABEL_NAMES",
    "ZeroShotSet",
    "check_data_dir",
    "check_report_file",
    "load_zero_shot_set",
    "nli_task_of",
    "parse_dataset_names",
    "single_label_datasets",
    "zero_shot_accuracy",
]
