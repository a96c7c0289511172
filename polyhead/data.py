"""Loading, validating and tokenizing the data of every task, before any training starts.

`load_task_data` reads each task's splits with `datasets.load_dataset` (local CSV/JSON/JSONL/Parquet files by
extension, a Hub dataset id, or an in-memory `Dataset`/`DatasetDict`), checks them (missing columns, empty splits,
non-string or empty texts, labels outside a given label map), infers the label map (sorted unique train labels) and
the problem type (a label column of lists is multi-label), and subsamples. `tokenize_task_data` turns the splits into
`input_ids`/`attention_mask`(/`token_type_ids`) + `labels` (a class id, or a multi-hot float list) + `task`.

Tasks that share a data source ("one text, several labels": several specs with the same `data_files`/`dataset` and
different `label_column`s) load the source once and become separate tasks over the same rows; each batch still holds
one task, so a shared text is encoded once per task it is labelled for.

Splits are addressed by role: `"train"`, `"eval"` (the spec's `eval_split`, used during training) and `"test"`.
A task whose data has no validation or test split gets one carved from its train rows (`TaskSpec.validation_size` /
`test_size`, 10% each by default; [`carve_splits`]): first the test rows, then the validation rows from the rest, by a
seeded draw that gives the same rows for the same data, fractions and seed in every run (training, growing,
evaluating), so a carved test split is never trained on.
"""

import csv
import io
import json
import logging
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from polyhead import choices
from polyhead.remote_code import MULTI_LABEL, MULTIPLE_CHOICE, SINGLE_LABEL
from polyhead.tasks import DEFAULT_CHOICES_COLUMN, TaskSpec, read_text


logger = logging.getLogger(__name__)

ROLES = ("train", "eval", "test")
DEFAULT_HELD_OUT = 0.1  # fraction of the train rows carved as a missing validation / test split
DEFAULT_SPLIT_SEED = 42  # a constant, not the training seed: runs with other seeds score the same held-out rows
SPLIT_NAMES = {"eval": "validation", "test": "test"}  # how results.json and the card name the carved roles
DATA_BUILDERS = {"jsonl": "json", "json": "json", "csv": "csv", "parquet": "parquet"}  # extension: `datasets` builder
# A CSV cell is read as written: only an empty cell is missing ("NA", "None", "null" are texts or labels like others).
CSV_OPTIONS = {"keep_default_na": False, "na_values": [""]}
_MAX_SHOWN = 10  # offending values / rows listed in an error message


@dataclass
class TaskData:
    """One task's validated raw splits (by role) with its resolved label map and problem type. `split_rows` is each
    split's size before `max_train_samples` / `max_eval_samples` subsampling; `held_out` describes the splits carved
    from the train rows (`{"validation" | "test": {"from", "fraction", "seed", "rows", "stratified"}}`)."""

    spec: TaskSpec
    labels: list[str]
    problem_type: str
    splits: dict[str, datasets.Dataset] = field(default_factory=dict)
    split_rows: dict[str, int] = field(default_factory=dict)
    held_out: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def head(self) -> dict[str, Any]:
        """The `MultitaskConfig.tasks` entry of this task."""
        return self.spec.head(self.labels, self.problem_type)

    def label_ids(self, role: str) -> list:
        """Class ids (single-label) or multi-hot lists (multi-label) of one split."""
        if self.problem_type == MULTIPLE_CHOICE:
            return choices.label_ids(self.splits[role], self.spec)
        values = self.splits[role][self.spec.label_column]
        return [encode_label(value, self.labels, self.problem_type) for value in _as_names(values, self, role)]


def load_task_data(
    specs: Sequence[TaskSpec],
    roles: Iterable[str] = ROLES,
    seed: int = 0,
    require_train: bool = True,
    split_seed: int = DEFAULT_SPLIT_SEED,
) -> dict[str, TaskData]:
    r"""
    Loads, validates and subsamples every task's splits; raises before training on any data problem.

    Args:
        specs: the tasks.
        roles: which splits to load among `"train"`, `"eval"` and `"test"`. A missing train split is an error; a
            missing eval/test split is skipped with a warning.
        seed: seed of the subsampling (specs sharing a source get the same rows).
        require_train: with `False`, a missing train split is skipped like the others (scoring a saved model, whose
            specs carry the labels and problem type, only uses train labels for the majority baseline).
        split_seed: seed of the validation / test rows carved from a train split ([`carve_splits`]).

    Example:

    ```python
    >>> data = load_task_data([TaskSpec("emotion", data_files={"train": "train.jsonl", "test": "test.jsonl"})])
    >>> data["emotion"].labels
    ['anger', 'joy', 'optimism', 'sadness']
    ```
    """
    roles = list(roles)
    sources: dict[str, datasets.DatasetDict] = {}
    users = Counter(spec.source_key for spec in specs)
    result = {}
    for spec in specs:
        if spec.source_key not in sources:
            sources[spec.source_key] = load_source(spec)
        # Tasks sharing a source carve the same rows (no per-task stratification), so no text of one task's held-out
        # rows is trained on by another.
        stratify = users[spec.source_key] == 1
        splits, held_out = _select_splits(spec, sources[spec.source_key], roles, require_train, split_seed, stratify)
        result[spec.name] = _prepare_task(spec, splits, seed, held_out)
    return result


def load_source(spec: TaskSpec) -> datasets.DatasetDict:
    """Reads a spec's data source into a `DatasetDict` (a bare `Dataset` becomes its train split)."""
    if isinstance(spec.dataset, datasets.DatasetDict):
        return spec.dataset
    if isinstance(spec.dataset, datasets.Dataset):
        return datasets.DatasetDict({spec.train_split: spec.dataset})
    if spec.dataset is not None:  # a Hub id or a load_dataset path: real users are online
        return datasets.load_dataset(spec.dataset, spec.dataset_config)
    files = spec.data_files if isinstance(spec.data_files, dict) else {spec.train_split: spec.data_files}
    paths = [p for value in files.values() for p in ([value] if isinstance(value, str) else value)]
    missing = [p for p in paths if not Path(p).is_file()]
    if missing:
        raise FileNotFoundError(f"Task {spec.name!r}: data file(s) not found: {missing}.")
    extensions = {Path(p).suffix.lstrip(".").lower() for p in paths}
    builders = {DATA_BUILDERS.get(ext) for ext in extensions}
    if None in builders or len(builders) != 1:
        raise ValueError(
            f"Task {spec.name!r}: data files must all be one of {sorted(DATA_BUILDERS)}, got extensions {extensions}."
        )
    for path in paths:
        try:
            check_data_file(path)
        except ValueError as error:
            raise ValueError(f"Task {spec.name!r}: {error}") from None
    try:
        return load_data_files(builders.pop(), files)
    except datasets.exceptions.DatasetGenerationError as error:
        cause = error.__cause__ or error
        raise ValueError(f"Task {spec.name!r}: could not read {paths}: {cause}") from error


def load_data_files(builder: str, data_files: dict, **kwargs) -> datasets.DatasetDict | datasets.Dataset:
    """`datasets.load_dataset(builder, data_files=...)` of local files, CSV cells read as written (`CSV_OPTIONS`)."""
    return datasets.load_dataset(builder, data_files=data_files, **(CSV_OPTIONS if builder == "csv" else {}), **kwargs)


_EXPECTED = {
    "jsonl": 'one JSON object per line, e.g. {"text": "...", "label": "..."}',
    "json": "a JSON array of objects, or one JSON object per line",
    "csv": "a CSV header line, then one row per line",
}


def check_data_file(path: str | os.PathLike) -> None:
    r"""
    Checks a CSV/JSON/JSONL data file before `datasets` reads it; a `ValueError` names the file, the line and what was
    expected for an empty file, bytes that are not UTF-8, a JSON Lines line that is not one JSON object, or a CSV row
    whose number of fields differs from the header's. Parquet files are left to `datasets`.

    Example:

    ```python
    >>> check_data_file("data/train.jsonl")
    ValueError: data/train.jsonl, line 3: not a JSON object (Expecting ',' delimiter, column 21); expected one JSON
    object per line, e.g. {"text": "...", "label": "..."}.
    ```
    """
    extension = Path(path).suffix.lstrip(".").lower()
    if extension not in _EXPECTED:
        return
    text = read_text(path, _EXPECTED[extension]).removeprefix("\ufeff")
    if extension == "csv":
        _check_csv(path, text)
    elif extension == "jsonl" or not _is_json_document(text):
        _check_json_lines(path, text, _EXPECTED[extension])


def _is_json_document(text: str) -> bool:
    try:
        return isinstance(json.loads(text), (list, dict))
    except json.JSONDecodeError:
        return False


def _check_json_lines(path: str | os.PathLike, text: str, expected: str) -> None:
    # Split on "\n" only: str.splitlines() would also break at U+2028 and friends, which are valid inside JSON strings.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(
                f"{path}, line {number}: not a JSON object ({error.msg}, column {error.colno}): "
                f"{line.strip()[:80]!r}; expected {expected}."
            ) from None
        if not isinstance(value, dict):
            raise ValueError(
                f"{path}, line {number}: a JSON {type(value).__name__}, not an object: {line.strip()[:80]!r}; "
                f"expected {expected}."
            )


def _check_csv(path: str | os.PathLike, text: str) -> None:
    reader = csv.reader(io.StringIO(text, newline=""))
    rows = 0
    try:
        header = next(reader)
        for row in reader:
            if row and len(row) != len(header):
                raise ValueError(
                    f"{path}, line {reader.line_num}: {len(row)} field(s), expected {len(header)} like the header "
                    f"{header} (quote fields that contain commas or line breaks)."
                )
            rows += bool(row)
    except csv.Error as error:
        raise ValueError(f"{path}, line {reader.line_num}: malformed CSV ({error}).") from None
    if not rows:
        raise ValueError(f"{path}: a header line {header} and no rows; expected {_EXPECTED['csv']}.")


def _prepare_task(
    spec: TaskSpec, splits: dict[str, datasets.Dataset], seed: int, held_out: dict[str, dict[str, Any]]
) -> TaskData:
    for role, dataset in splits.items():
        _check_split(spec, role, dataset)
    problem_type = spec.problem_type or _infer_problem_type(splits["train"][spec.label_column])
    if spec.problem_type is None and DEFAULT_CHOICES_COLUMN in splits["train"].column_names:
        logger.warning(
            f"Task {spec.name!r}: its data has a {DEFAULT_CHOICES_COLUMN!r} column, which a {problem_type} task "
            f"ignores; set problem_type={MULTIPLE_CHOICE} to train a multiple-choice task on it."
        )
    task = TaskData(spec=spec, labels=[], problem_type=problem_type, splits=splits, held_out=held_out)
    multiple_choice = problem_type == MULTIPLE_CHOICE
    task.labels = ["score"] if multiple_choice else list(spec.labels) if spec.labels else infer_labels(task)
    for role in [] if multiple_choice else splits:
        _check_known_labels(task, role)
    if isinstance(spec.class_weights, list) and len(spec.class_weights) != len(task.labels):
        raise ValueError(f"Task {spec.name!r}: {len(spec.class_weights)} class_weights for labels {task.labels}.")
    task.head  # noqa: B018 -- validates the label map (>= 2 labels, unique) before training
    task.split_rows = {role: len(dataset) for role, dataset in splits.items()}
    task.splits = {role: _subsample(spec, role, dataset, seed) for role, dataset in splits.items()}
    return task


def _select_splits(
    spec: TaskSpec,
    source: datasets.DatasetDict,
    roles: list[str],
    require_train: bool = True,
    split_seed: int = DEFAULT_SPLIT_SEED,
    stratify: bool = True,
) -> tuple[dict[str, datasets.Dataset], dict[str, dict[str, Any]]]:
    """The requested splits by role (a missing validation / test split carved from train, see [`carve_splits`]),
    and the description of what was carved."""
    names = {"train": spec.train_split, "eval": spec.eval_split, "test": spec.test_split}
    for role, option in (("eval", "eval_split"), ("test", "test_split")):
        named = names[role]
        if role in roles and named not in (None, getattr(TaskSpec, option)) and named not in source:
            raise ValueError(
                f"Task {spec.name!r}: {option}={named} names no split of its data; available splits: "
                f"{list(source)}. Name one of them, or leave {option} unset to hold out {SPLIT_NAMES[role]} rows "
                "from the train split."
            )
    available = {role: source[name] for role, name in names.items() if name is not None and name in source}
    held_out = {}
    problem_type = spec.problem_type
    if "train" in available:
        _check_split(spec, "train", available["train"])
        problem_type = problem_type or _infer_problem_type(available["train"][spec.label_column])
    checked = [role for role in available if role in roles or role == "train"] if problem_type else []
    for role in checked:
        _check_split(spec, role, available[role])
        _check_rows(spec, role, available[role], problem_type)  # rows named as read, before any are held out
    if "train" in available:
        available, held_out = carve_splits(spec, available, split_seed, stratify)
    splits = {}
    for role in roles:
        name = names[role]
        if name is None:
            continue
        if role not in available:
            if role == "train" and require_train:
                raise ValueError(f"Task {spec.name!r}: no split {name!r}; available splits: {list(source)}.")
            logger.warning(f"Task {spec.name!r}: no {role} split {name!r} (available: {list(source)}); skipped.")
            continue
        splits[role] = available[role]
    if require_train and "train" in roles and "train" not in splits:
        raise ValueError(f"Task {spec.name!r}: a train split is required (train_split=None given).")
    return splits, {SPLIT_NAMES[role]: description for role, description in held_out.items()}


def carve_splits(
    spec: TaskSpec, splits: dict[str, datasets.Dataset], seed: int = DEFAULT_SPLIT_SEED, stratify: bool = True
) -> tuple[dict[str, datasets.Dataset], dict[str, dict[str, Any]]]:
    r"""
    Holds out a missing test split (`spec.test_size`), then a missing validation split (`spec.validation_size`), from
    the train rows; a split in `splits` is never replaced and nothing is carved for a role whose split name is `None`.
    The draw is seeded, and stratified by label (each label keeps its share) when `stratify` and the label column
    holds single labels; the same rows, fractions and seed always give the same split.

    Returns `(splits by role, {role: {"from", "fraction", "seed", "rows", "stratified"}})`.

    Example:

    ```python
    >>> splits, held_out = carve_splits(TaskSpec("a", data_files="a.csv", test_size=0.2), {"train": dataset})
    >>> held_out["test"]["rows"], len(splits["train"]) + len(splits["test"]) == len(dataset)
    (20, True)
    ```
    """
    splits, held_out = dict(splits), {}
    names = {"eval": spec.eval_split, "test": spec.test_split}
    for stream, role in enumerate(("test", "eval")):  # test first: its rows do not depend on the validation size
        fraction = getattr(spec, "test_size" if role == "test" else "validation_size")
        fraction = DEFAULT_HELD_OUT if fraction is None else fraction
        if role in splits or names[role] is None or not fraction:
            continue
        train = splits["train"]
        labels = train[spec.label_column] if stratify and spec.problem_type != MULTIPLE_CHOICE else None
        if labels is not None and any(isinstance(value, (list, tuple)) for value in labels):
            labels = None  # multi-label rows: a plain seeded fraction
        if round(fraction * len(train)) < 1:  # too few rows: the split is reported missing, as without carving
            continue
        keep, held = held_out_rows(len(train), fraction, np.random.default_rng([seed, stream]), labels)
        if not keep:
            option = "test_size" if role == "test" else "validation_size"
            raise ValueError(
                f"Task {spec.name!r}: its train split has only {len(train)} row(s), too few to hold out a "
                f"{SPLIT_NAMES[role]} split: add rows, give the split, or set {option}=0."
            )
        splits["train"], splits[role] = train.select(keep), train.select(held)
        held_out[role] = {
            "from": spec.train_split,
            "fraction": float(fraction),
            "seed": seed,
            "rows": len(held),
            "stratified": labels is not None,
        }
        logger.warning(
            f"Task {spec.name!r}: no {SPLIT_NAMES[role]} split in its data: held out {len(held)} of its "
            f"{len(train)} train rows ({fraction:.0%}, seed {seed}{', stratified by label' if labels else ''}); "
            f"set {'test_size' if role == 'test' else 'validation_size'}=0 to keep them in training."
        )
    return splits, held_out


def held_out_rows(
    size: int, fraction: float, rng: np.random.Generator, labels: Sequence | None = None
) -> tuple[list[int], list[int]]:
    """`(kept, held out)` row indices (sorted): `round(fraction * size)` rows drawn by `rng`; with `labels`, each
    label contributes its share (largest remainders break the rounding, labels in sorted order) and keeps at least
    one row."""
    count = min(size, round(fraction * size))
    if labels is None:
        held = rng.permutation(size)[:count].tolist()
    else:
        groups: dict[str, list[int]] = {}
        for index, value in enumerate(labels):
            groups.setdefault(str(value), []).append(index)
        keys = sorted(groups)
        exact = [count * len(groups[key]) / size for key in keys]
        quota = [int(share) for share in exact]
        by_remainder = sorted(range(len(keys)), key=lambda i: (-(exact[i] - quota[i]), i))
        for i in by_remainder[: count - sum(quota)]:
            quota[i] += 1
        quota = [min(n, len(groups[key]) - 1) for key, n in zip(keys, quota)]  # no label leaves the train rows
        held = [index for key, n in zip(keys, quota) for index in rng.permutation(groups[key])[:n].tolist()]
    chosen = set(held)
    return [i for i in range(size) if i not in chosen], sorted(held)


def _check_split(spec: TaskSpec, role: str, dataset: datasets.Dataset) -> None:
    columns = choices.required_columns(spec) if spec.problem_type == MULTIPLE_CHOICE else _columns(spec)
    missing = [c for c in dict.fromkeys(columns + [spec.label_column]) if c not in dataset.column_names]
    if missing:
        raise ValueError(
            f"Task {spec.name!r}: column(s) {missing} not found in its {role} split; "
            f"available columns: {dataset.column_names}."
        )
    if len(dataset) == 0:
        raise ValueError(f"Task {spec.name!r}: its {role} split is empty.")


def _columns(spec: TaskSpec) -> list[str]:
    """The text column, and the pair column of a sentence-pair task."""
    return [spec.text_column] + ([spec.text_pair_column] if spec.text_pair_column else [])


_ROWS = "counted from 0 as its data was read"  # how an error names rows: before any rows are held out of train


def _check_rows(spec: TaskSpec, role: str, dataset: datasets.Dataset, problem_type: str) -> None:
    """Every row of a split holds text(s) and a label of the task's kind (or valid choices)."""
    if problem_type == MULTIPLE_CHOICE:
        choices.check_rows(spec.name, role, dataset, spec)
    else:
        _check_label_kinds(spec, role, dataset, problem_type)
    _check_texts(spec, role, dataset)


def _check_texts(spec: TaskSpec, role: str, dataset: datasets.Dataset) -> None:
    for column in _columns(spec):
        bad = [i for i, text in enumerate(dataset[column]) if not isinstance(text, str) or not text.strip()]
        if bad:
            example = dataset[bad[0]][column]
            raise ValueError(
                f"Task {spec.name!r}: {len(bad)} row(s) of its {role} split have a non-string or empty text in "
                f"column {column!r} (rows {bad[:_MAX_SHOWN]}, {_ROWS}; e.g. {example!r}): fill or drop them."
            )


def _infer_problem_type(values: list) -> str:
    return MULTI_LABEL if any(isinstance(value, (list, tuple)) for value in values) else SINGLE_LABEL


def _label_feature_names(dataset: datasets.Dataset, column: str) -> list[str] | None:
    feature = dataset.features[column]
    feature = getattr(feature, "feature", feature)  # a list of ClassLabel
    return list(feature.names) if isinstance(feature, datasets.ClassLabel) else None


def _as_names(values: list, task: TaskData, role: str) -> list:
    """Label values as strings (ClassLabel ids mapped to their names), keeping lists for multi-label rows."""
    names = _label_feature_names(task.splits[role], task.spec.label_column)

    def convert(value):
        if value is None:
            return None
        if isinstance(value, (list, tuple)):
            return [convert(item) for item in value]
        return names[value] if names is not None and isinstance(value, int) else str(value)

    return [convert(value) for value in values]


def infer_labels(task: TaskData) -> list[str]:
    """The label map: ClassLabel names when the column has them, else the sorted unique labels of the train rows
    (those held out of them included)."""
    names = _label_feature_names(task.splits["train"], task.spec.label_column)
    if names is not None:
        return names
    carved = [role for role, name in SPLIT_NAMES.items() if name in task.held_out and role in task.splits]
    values = [
        value
        for role in ["train", *carved]
        for value in _as_names(task.splits[role][task.spec.label_column], task, role)
    ]
    flat = {v for value in values for v in (value if isinstance(value, list) else [value]) if v is not None}
    # Numeric labels sort as numbers ("2" before "10"); others alphabetically: deterministic either way.
    return sorted(flat, key=lambda v: (0, float(v), v) if _is_number(v) else (1, 0.0, v))


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def _check_label_kinds(spec: TaskSpec, role: str, dataset: datasets.Dataset, problem_type: str) -> None:
    multi = problem_type == MULTI_LABEL
    values = dataset[spec.label_column]
    bad_rows = [i for i, value in enumerate(values) if value is None or multi != isinstance(value, (list, tuple))]
    if bad_rows:
        kind = "a list of labels" if multi else "one label (not a list)"
        raise ValueError(
            f"Task {spec.name!r} ({problem_type}): {len(bad_rows)} row(s) of its {role} split do not hold "
            f"{kind} in column {spec.label_column!r} (rows {bad_rows[:_MAX_SHOWN]}, {_ROWS})."
        )


def _check_known_labels(task: TaskData, role: str) -> None:
    known = set(task.labels)
    values = _as_names(task.splits[role][task.spec.label_column], task, role)
    multi = task.problem_type == MULTI_LABEL
    flat = Counter(v for value in values for v in (value if multi else [value]))
    unknown = sorted(set(flat) - known)
    if unknown:
        raise ValueError(
            f"Task {task.name!r}: label(s) {unknown[:_MAX_SHOWN]} in its {role} split are not in its label map "
            f"{task.labels} ({sum(flat[u] for u in unknown)} occurrence(s))."
        )


def encode_label(value: Any, labels: list[str], problem_type: str) -> int | list[float]:
    """A class id, or a multi-hot float list over `labels`."""
    if problem_type == MULTI_LABEL:
        chosen = set(value)
        return [1.0 if label in chosen else 0.0 for label in labels]
    return labels.index(value)


def _subsample(spec: TaskSpec, role: str, dataset: datasets.Dataset, seed: int) -> datasets.Dataset:
    limit = spec.max_train_samples if role == "train" else spec.max_eval_samples
    if limit is None or len(dataset) <= limit:
        return dataset
    return dataset.shuffle(seed=seed).select(range(limit)).flatten_indices()


def class_weights(task: TaskData) -> list[float] | None:
    r"""
    The task's class weights: its explicit list, `"balanced"` (`n / (num_labels * count)` per class for single-label;
    `negatives / positives` per label, the BCE `pos_weight`, for multi-label), or `None`.

    Example:

    ```python
    >>> class_weights(data["emotion"])  # with class_weights="balanced"
    [1.13, 0.61, 2.78, 0.93]
    ```
    """
    if task.spec.class_weights is None or isinstance(task.spec.class_weights, list):
        return task.spec.class_weights
    ids = task.label_ids("train")
    n, k = len(ids), len(task.labels)
    if task.problem_type == MULTI_LABEL:
        positives = [sum(row[j] for row in ids) for j in range(k)]
        return [(n - p) / p if p else 1.0 for p in positives]
    counts = Counter(ids)
    return [n / (k * counts[j]) if counts[j] else 1.0 for j in range(k)]


def tokenize_task_data(
    task: TaskData, tokenizer: PreTrainedTokenizerBase, max_length: int | None = 128
) -> dict[str, datasets.Dataset]:
    r"""
    Tokenizes every split of a task (batched `datasets.map`, no padding: the collator pads per batch).

    Returns `{role: Dataset}` with columns `input_ids`, `attention_mask` (and `token_type_ids` when the tokenizer makes
    them), `labels` and `task`.

    Example:

    ```python
    >>> encoded = tokenize_task_data(data["emotion"], tokenizer, max_length=64)
    >>> encoded["train"].column_names
    ['input_ids', 'token_type_ids', 'attention_mask', 'labels', 'task']
    ```
    """
    return {role: _tokenize_split(task, role, tokenizer, max_length) for role in task.splits}


def _tokenize_split(
    task: TaskData, role: str, tokenizer: PreTrainedTokenizerBase, max_length: int | None
) -> datasets.Dataset:
    dataset = task.splits[role]
    if task.problem_type == MULTIPLE_CHOICE:
        return choices.tokenize_split(task.name, dataset, task.spec, tokenizer, max_length)
    labels = task.label_ids(role)
    if task.problem_type == MULTI_LABEL:
        label_feature = datasets.List(datasets.Value("float32"))
    else:
        label_feature = datasets.Value("int64")
    columns = _columns(task.spec)
    dataset = dataset.select_columns(columns).add_column("labels", labels, feature=label_feature)

    def encode(batch: dict[str, list]) -> dict[str, list]:
        # A pair is truncated "longest_first" (transformers' default): the longer text loses tokens first.
        texts = [batch[column] for column in columns]
        encoded = tokenizer(*texts, truncation=max_length is not None, max_length=max_length)
        return {**encoded, "task": [task.name] * len(texts[0])}

    return dataset.map(encode, batched=True, remove_columns=columns, desc=f"Tokenizing {task.name}")


class MultitaskCollator:
    r"""
    Pads a list of tokenized rows of ONE task into a batch: `input_ids`, `attention_mask`(, `token_type_ids`),
    `labels` (long class ids or float multi-hot) and `task` (the task name, a string, passed to `model.forward`).

    Example:

    ```python
    >>> collator = MultitaskCollator(tokenizer)
    >>> batch = collator([encoded["train"][0], encoded["train"][1]])
    >>> batch["task"], batch["input_ids"].shape
    ('emotion', torch.Size([2, 17]))
    ```
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, pad_to_multiple_of: int | None = None):
        self.tokenizer = tokenizer
        self.pad_to_multiple_of = pad_to_multiple_of

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        tasks = {feature["task"] for feature in features}
        if len(tasks) != 1:
            raise ValueError(f"A batch must hold one task, got rows of {sorted(tasks)}.")
        if features[0]["input_ids"] and isinstance(features[0]["input_ids"][0], list):
            return choices.collate(self.tokenizer, features, self.pad_to_multiple_of)  # multiple-choice rows
        inputs = [{k: v for k, v in f.items() if k not in ("task", "labels")} for f in features]
        batch = dict(self.tokenizer.pad(inputs, return_tensors="pt", pad_to_multiple_of=self.pad_to_multiple_of))
        if "labels" in features[0]:
            labels = [feature["labels"] for feature in features]
            dtype = torch.float32 if isinstance(labels[0], list) else torch.long
            batch["labels"] = torch.tensor(labels, dtype=dtype)
        batch["task"] = tasks.pop()
        return batch


__all__ = [
    "CSV_OPTIONS",
    "DATA_BUILDERS",
    "DEFAULT_HELD_OUT",
    "DEFAULT_SPLIT_SEED",
    "MultitaskCollator",
    "ROLES",
    "TaskData",
    "carve_splits",
    "class_weights",
    "encode_label",
    "held_out_rows",
    "infer_labels",
    "load_data_files",
    "load_source",
    "load_task_data",
    "tokenize_task_data",
]
