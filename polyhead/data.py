"""Loading, validating and tokenizing the data of every task, before any training starts.

`load_task_data` reads each task's splits with `datasets.load_dataset` (local CSV/JSON/JSONL/Parquet files by
extension, CSV cells as strings; a Hub dataset id; a `save_to_disk` folder; or an in-memory `Dataset`/`DatasetDict`),
checks them (missing columns, empty splits, non-string or empty texts, missing labels, labels outside a given label
map or a `ClassLabel`'s ids), infers the label map (sorted unique train labels) and the problem type (a label column
of lists is multi-label), and subsamples. `tokenize_task_data` turns the splits into
`input_ids`/`attention_mask`(/`token_type_ids`) + `labels` (a class id, or a multi-hot float list) + `task`.

Tasks that share a data source ("one text, several labels": several specs with the same `data_files`/`dataset` and
different `label_column`s; paths compared resolved) load the source once and become separate tasks over the same rows;
each batch still holds one task, so a shared text is encoded once per task it is labelled for. Tasks that train on
the same rows must hold out the same rows (`_check_shared_held_out`).

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
import math
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from polyhead import choices
from polyhead.remote_code import MULTI_LABEL, MULTIPLE_CHOICE, SINGLE_LABEL, normalized_labels
from polyhead.tasks import DEFAULT_CHOICES_COLUMN, SPLIT_ALIASES, TaskSpec, is_saved_dataset, read_text


logger = logging.getLogger(__name__)

ROLES = ("train", "eval", "test")
DEFAULT_HELD_OUT = 0.1  # fraction of the train rows carved as a missing validation / test split
DEFAULT_SPLIT_SEED = 42  # a constant, not the training seed: runs with other seeds score the same held-out rows
SPLIT_NAMES = {"eval": "validation", "test": "test"}  # how results.json and the card name the carved roles
DATA_BUILDERS = {"jsonl": "json", "json": "json", "csv": "csv", "parquet": "parquet"}  # extension: `datasets` builder
# A CSV cell is read as written: every column as strings (`load_data_files` gives the header's columns string
# features: "01" stays "01", digits stay text), and only an empty cell is missing ("NA", "None", "null" are texts or
# labels like others).
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
    stratified: Mapping[str, bool] | None = None,
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
        stratified: per task, whether its rows were carved stratified by label (a training run's record, so that
            scoring one task of a shared source carves the rows training held out); else decided here.

    Example:

    ```python
    >>> data = load_task_data([TaskSpec("emotion", data_files={"train": "train.jsonl", "test": "test.jsonl"})])
    >>> data["emotion"].labels
    ['anger', 'joy', 'optimism', 'sadness']
    ```
    """
    roles = list(roles)
    sources: dict[str, datasets.DatasetDict] = {}
    for spec in specs:
        if spec.source_key not in sources:
            sources[spec.source_key] = load_source(spec)
    train_rows = {spec.name: _train_rows(spec, sources[spec.source_key]) for spec in specs}
    users = Counter(train_rows.values())
    selected = {}
    for spec in specs:
        # Tasks training on the same rows carve the same rows (no per-task stratification), so no text of one task's
        # held-out rows is trained on by another (`_check_shared_held_out`).
        stratify = (stratified or {}).get(spec.name, users[train_rows[spec.name]] == 1)
        selected[spec.name] = _select_splits(
            spec, sources[spec.source_key], roles, require_train, split_seed, stratify
        )
    _check_shared_held_out(train_rows, {name: held_out for name, (_, held_out) in selected.items()})
    return {spec.name: _prepare_task(spec, *selected[spec.name], seed) for spec in specs}


def _train_rows(spec: TaskSpec, source: datasets.DatasetDict) -> tuple[str, ...]:
    """What a task's train rows are read from: its resolved train file paths, or its source and train split (empty
    without a train split)."""
    name = split_names(spec, source)["train"]
    if name is None or name not in source:
        return ()
    if spec.data_files is not None:
        return tuple(os.path.realpath(path) for path in spec.split_files()[name])
    return (f"{spec.source_key}[{name}]",)


def _check_shared_held_out(train_rows: dict[str, tuple[str, ...]], held_out: dict[str, dict]) -> None:
    """Refuses tasks that train on the same rows (a file, a dataset) but hold out different ones: a row one of them
    holds out for validation or test would be trained on by the other."""
    by_part: dict[str, list[str]] = {}
    for name, parts in train_rows.items():
        for part in parts:
            by_part.setdefault(part, []).append(name)
    for part, names in by_part.items():
        first = names[0]
        for other in names[1:]:
            same = train_rows[first] == train_rows[other] and held_out[first] == held_out[other]
            if same or not (held_out[first] or held_out[other]):
                continue
            where = part if os.path.isabs(part) else "one dataset"
            raise ValueError(
                f"Tasks {first!r} and {other!r} train on the same rows ({where}) but hold out different ones "
                f"({first}: {_describe_held_out(held_out[first])}; {other}: {_describe_held_out(held_out[other])}): "
                "rows one holds out for validation or test would be trained on by the other. Give both the same "
                "data files and splits, and the same test_size / validation_size."
            )


def _describe_held_out(held_out: dict[str, dict]) -> str:
    if not held_out:
        return "nothing held out of train"
    return ", ".join(f"{split} {entry['fraction']:.0%} held out" for split, entry in held_out.items())


def load_source(spec: TaskSpec) -> datasets.DatasetDict:
    """Reads a spec's data source into a `DatasetDict` (a bare `Dataset` becomes its train split)."""
    if isinstance(spec.dataset, datasets.DatasetDict):
        return spec.dataset
    if isinstance(spec.dataset, datasets.Dataset):
        return datasets.DatasetDict({spec.train_split: spec.dataset})
    if spec.dataset is not None and is_saved_dataset(spec.dataset):  # a Dataset(Dict).save_to_disk folder
        loaded = datasets.load_from_disk(str(spec.dataset))
        return loaded if isinstance(loaded, datasets.DatasetDict) else datasets.DatasetDict({spec.train_split: loaded})
    if spec.dataset is not None:  # a Hub id or a load_dataset path: real users are online
        return datasets.load_dataset(spec.dataset, spec.dataset_config)
    files = spec.split_files()
    paths = [path for split_paths in files.values() for path in split_paths]
    folders = [path for path in paths if Path(path).is_dir()]
    if folders:
        raise ValueError(
            f"Task {spec.name!r}: data_files {folders} are folders: list their files, or give a folder as "
            "name=FOLDER on the command line (its train/validation/test files) or as dataset=FOLDER."
        )
    missing = [path for path in paths if not Path(path).is_file()]
    if missing:
        raise FileNotFoundError(f"Task {spec.name!r}: data file(s) not found: {missing}.")
    unknown = [path for path in paths if Path(path).suffix.lstrip(".").lower() not in DATA_BUILDERS]
    if unknown:
        raise ValueError(
            f"Task {spec.name!r}: data file(s) {unknown} are not one of {sorted(DATA_BUILDERS)} (by extension)."
        )
    for path in paths:
        try:
            check_data_file(path)
        except ValueError as error:
            raise ValueError(f"Task {spec.name!r}: {error}") from None
    loaded = {}
    for split, split_paths in files.items():  # each split by its own format (train.csv beside test.jsonl)
        builders = {DATA_BUILDERS[Path(path).suffix.lstrip(".").lower()] for path in split_paths}
        if len(builders) != 1:
            raise ValueError(
                f"Task {spec.name!r}: the files of its {split!r} split mix formats ({split_paths}): convert them to "
                "one format."
            )
        try:
            loaded[split] = load_data_files(builders.pop(), {split: split_paths}, split=split)
        except datasets.exceptions.DatasetGenerationError as error:
            cause = error.__cause__ or error
            raise ValueError(f"Task {spec.name!r}: could not read {split_paths}: {cause}") from error
        except ValueError as error:
            raise ValueError(f"Task {spec.name!r}: {error}") from None
    return datasets.DatasetDict(loaded)


def load_data_files(builder: str, data_files: dict, **kwargs) -> datasets.DatasetDict | datasets.Dataset:
    """`datasets.load_dataset(builder, data_files=...)` of local files, CSV cells read as written: every column of
    the header a string (`features`), only an empty cell missing (`CSV_OPTIONS`)."""
    if builder == "csv":
        kwargs = {**_csv_string_columns(data_files), **CSV_OPTIONS, **kwargs}
    return datasets.load_dataset(builder, data_files=data_files, **kwargs)


def _csv_string_columns(data_files: Mapping | str | Sequence) -> dict[str, Any]:
    """`load_dataset("csv")` options that read every column as strings: the header's column names (an empty one
    named `Unnamed: <i>`, a repeated one `<name>.<n>`, as pandas names them) with string features. Without them
    pandas guesses a type per 10,000-row chunk: `01` became `1`, ints `0.0` once a float appeared, a digits-only text
    column ints, and a column numeric in its first chunk failed to read a word in a later one."""
    values = data_files.values() if isinstance(data_files, Mapping) else [data_files]
    paths = [str(path) for value in values for path in ([value] if isinstance(value, (str, os.PathLike)) else value)]
    headers = {path: _csv_header(path) for path in paths}
    if len({tuple(header) for header in headers.values()}) > 1:
        raise ValueError(f"CSV files read as one split must share one header line; got {headers}.")
    header = headers[paths[0]]
    names, seen = [], Counter()
    for index, name in enumerate(header):
        name = name or f"Unnamed: {index}"
        base = name
        while name in seen:
            name = f"{base}.{seen[base]}"
            seen[base] += 1
        seen[name] += 1
        names.append(name)
    renamed = [name for name, given in zip(names, header) if name != given and given]
    if renamed:
        logger.warning(f"{paths[0]}: its header repeats column names {header}; the repeats are read as {renamed}.")
    features = datasets.Features({name: datasets.Value("string") for name in names})
    return {"header": 0, "column_names": names, "features": features}


def _csv_header(path: str) -> list[str]:
    with open(path, encoding="utf-8-sig", newline="") as file:
        return next((row for row in csv.reader(file) if row), [])


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
    spec: TaskSpec, splits: dict[str, datasets.Dataset], held_out: dict[str, dict[str, Any]], seed: int
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
    if not multiple_choice:
        _warn_suspicious_labels(task)
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
    names = split_names(spec, source)
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
        unused = [name for name in source if name not in names.values()]
        available, held_out = carve_splits(spec, available, split_seed, stratify, unused, training=require_train)
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


def split_names(spec: TaskSpec, source: Iterable[str]) -> dict[str, str | None]:
    r"""
    The split each role (`"train"`, `"eval"`, `"test"`) reads: the spec's `train_split` / `eval_split` /
    `test_split`; a default name (`train`, `validation`, `test`) that the data lacks finds its alias as `datasets`
    reads split names (`SPLIT_ALIASES`: `training`; `valid`, `dev` or `val`; `testing`), so a `dev.jsonl` is the
    validation split rather than left unused while validation rows are carved from train. Two aliases of one split
    (`dev` and `valid`) are an error naming them.

    Example:

    ```python
    >>> split_names(TaskSpec("t", data_files={"train": "train.jsonl", "dev": "dev.jsonl"}), ["train", "dev"])
    {'train': 'train', 'eval': 'dev', 'test': 'test'}
    ```
    """
    available = list(source)
    names = {"train": spec.train_split, "eval": spec.eval_split, "test": spec.test_split}
    for role, option in (("train", "train_split"), ("eval", "eval_split"), ("test", "test_split")):
        name = names[role]
        if name != getattr(TaskSpec, option) or name in available:
            continue
        found = [alias for alias in SPLIT_ALIASES[name] if alias in available]
        if len(found) > 1:
            raise ValueError(
                f"Task {spec.name!r}: its data has no {name!r} split but several that mean one, {found}: name the "
                f"one to use with {option}=NAME."
            )
        if found:
            logger.info(f"Task {spec.name!r}: its {found[0]!r} split is its {name} split.")
            names[role] = found[0]
    return names


def carve_splits(
    spec: TaskSpec,
    splits: dict[str, datasets.Dataset],
    seed: int = DEFAULT_SPLIT_SEED,
    stratify: bool = True,
    unused: Sequence[str] = (),
    training: bool = True,
) -> tuple[dict[str, datasets.Dataset], dict[str, dict[str, Any]]]:
    r"""
    Holds out a missing test split (`spec.test_size`), then a missing validation split (`spec.validation_size`), from
    the train rows; a split in `splits` is never replaced and nothing is carved for a role whose split name is `None`.
    The draw is seeded, and stratified by label (each label keeps its share) when `stratify` and the label column
    holds single labels; the same rows, fractions and seed always give the same split. `unused`: the data's splits
    that no role reads, named in the warning that rows were carved (to name one instead); `training`: whether the
    train rows train (the warning then says how to keep them in training), or the data is only scored.

    Returns `(splits by role, {role: {"from", "fraction", "seed", "rows", "stratified"}})`.

    Example:

    ```python
    >>> splits, held_out = carve_splits(TaskSpec("a", data_files="a.csv", test_size=0.2), {"train": dataset})
    >>> held_out["test"]["rows"], {role: len(split) for role, split in splits.items()}  # 100 rows; validation 10%
    (20, {'train': 72, 'test': 20, 'eval': 8})
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
        option = "test_split" if role == "test" else "eval_split"
        hint = f" (its split(s) {list(unused)} are unused: to use one, set {option}=NAME)" if unused else ""
        size = "test_size" if role == "test" else "validation_size"
        logger.warning(
            f"Task {spec.name!r}: no {SPLIT_NAMES[role]} split in its data{hint}: held out {len(held)} of its "
            f"{len(train)} train rows ({fraction:.0%}, seed {seed}{', stratified by label' if labels else ''})"
            + (f"; set {size}=0 to keep them in training." if training else ".")
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
        return math.isfinite(float(value))  # "nan" / "inf" labels sort as words: a NaN key breaks the sort
    except ValueError:
        return False


def _warn_suspicious_labels(task: TaskData) -> None:
    """Warns about labels that are legal but look like a data mistake: labels that differ only in case or spaces
    (the config's `normalized_labels`, as growing a model warns), and single labels that look like comma-joined lists
    of labels (a multi-label CSV: its cells hold one string)."""
    groups: dict[str, list[str]] = {}
    for label, key in zip(task.labels, normalized_labels(task.labels)):
        groups.setdefault(key, []).append(label)
    near = [group for group in groups.values() if len(group) > 1]
    if near:
        logger.warning(
            f"Task {task.name!r}: labels {near[:_MAX_SHOWN]} differ only in case or spaces; each is a class of its "
            "own. Rename them in the data if they mean the same."
        )
    if task.problem_type != SINGLE_LABEL:
        return
    parts = {label: [part.strip() for part in label.split(",") if part.strip()] for label in task.labels}
    parts = {label: items for label, items in parts.items() if len(items) > 1}
    shared = Counter(part for items in parts.values() for part in set(items))
    joined = [label for label, items in parts.items() if any(p in task.labels or shared[p] > 1 for p in items)]
    if joined:
        logger.warning(
            f"Task {task.name!r}: labels {joined[:_MAX_SHOWN]} look like comma-joined lists of labels; a single-label "
            "task learns each combination as one class. For a multi-label task give each row a list of labels in "
            'JSON Lines or Parquet (a CSV cell holds one string), e.g. {"text": "...", "label": ["joy", "love"]}.'
        )


def _is_missing(value: Any) -> bool:
    """A missing label: null, NaN (a float column's gap) or an empty / blank string (an empty CSV cell)."""
    return (
        value is None
        or (isinstance(value, float) and math.isnan(value))
        or (isinstance(value, str) and not value.strip())
    )


def _check_label_kinds(spec: TaskSpec, role: str, dataset: datasets.Dataset, problem_type: str) -> None:
    multi = problem_type == MULTI_LABEL
    column = spec.label_column
    values = dataset[column]
    missing = [
        i
        for i, value in enumerate(values)
        if _is_missing(value) or (multi and isinstance(value, (list, tuple)) and any(map(_is_missing, value)))
    ]
    if missing:
        raise ValueError(
            f"Task {spec.name!r}: {len(missing)} row(s) of its {role} split have a missing label (null, NaN, empty "
            f"or blank{' in a label list' if multi else ''}) in column {column!r} (rows {missing[:_MAX_SHOWN]}, "
            f"{_ROWS}; e.g. {values[missing[0]]!r}): fill or drop them."
        )
    bad_rows = [i for i, value in enumerate(values) if multi != isinstance(value, (list, tuple))]
    if bad_rows:
        kind = "a list of labels" if multi else "one label (not a list)"
        hint = ""
        if multi and all(isinstance(values[i], str) for i in bad_rows):
            hint = ": a label list needs JSON Lines or Parquet (a CSV cell holds one string), e.g. " + json.dumps(
                {"text": "...", column: ["joy", "love"]}
            )
        raise ValueError(
            f"Task {spec.name!r} ({problem_type}): {len(bad_rows)} row(s) of its {role} split do not hold "
            f"{kind} in column {column!r} (rows {bad_rows[:_MAX_SHOWN]}, {_ROWS}; e.g. {values[bad_rows[0]]!r}){hint}."
        )
    names = _label_feature_names(dataset, column)
    if names is not None:  # ClassLabel ids: names[-1] would silently be the last class
        option = {"train": "train_split", "eval": "eval_split"}.get(role, "test_split")
        outside = [
            i
            for i, value in enumerate(values)
            if any(not 0 <= item < len(names) for item in (value if multi else [value]))
        ]
        if outside:
            raise ValueError(
                f"Task {spec.name!r}: {len(outside)} row(s) of its {role} split have label ids outside its "
                f"ClassLabel names {names} (0 to {len(names) - 1}) in column {column!r} (rows "
                f"{outside[:_MAX_SHOWN]}, {_ROWS}; e.g. {values[outside[0]]!r}). -1 marks unlabelled rows (as in "
                f"GLUE test splits): drop them, or name a labelled split with {option}=NAME."
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
    >>> class_weights(data["emotion"])  # tweet_emotion (anger, joy, optimism, sadness), class_weights="balanced"
    [0.58, 1.15, 2.77, 0.95]
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
    ['labels', 'input_ids', 'token_type_ids', 'attention_mask', 'task']
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
    "split_names",
    "tokenize_task_data",
]
