"""Task specifications: what one classification head is trained on, and where its data comes from.

A [`TaskSpec`] names a task, its data source (local files, a Hub dataset id, or an in-memory `Dataset`/`DatasetDict`),
its text and label columns, and its training options (loss weight, class weights, subsampling). Several specs may point
at the same data source with different label columns ("one text, several labels"): each becomes its own task over the
same rows, so every training batch still holds one task, and the source is loaded once (see `polyhead.data`).
"""

import copy
import json
import logging
import numbers
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import datasets
import yaml

from polyhead.remote_code import MULTI_LABEL, MULTIPLE_CHOICE, PROBLEM_TYPES, check_task_name, normalize_task


logger = logging.getLogger(__name__)

DATA_EXTENSIONS = ("jsonl", "json", "csv", "parquet")
"""File extensions a task folder or `data_files` may use (read with the `json`, `csv` or `parquet` builders), in any
case (`train.JSONL`)."""

SPLIT_KEYWORDS = {
    "train": ("train", "training"),
    "validation": ("validation", "valid", "dev", "val"),
    "test": ("test", "testing", "eval", "evaluation"),
}
"""The split names `datasets` recognises in file names (`datasets.data_files.SPLIT_KEYWORDS`): a task folder's files
named so are its splits."""

SPLIT_ALIASES = {"train": ("training",), "validation": ("valid", "dev", "val"), "test": ("testing",)}
"""What a default split name (`train`, `validation`, `test`) also finds when the data has no split of that name, as
`datasets` reads them. `eval` / `evaluation` are left out: `datasets` reads them as test, polyhead's `eval_split` means
validation; such a split is only used when named (`eval_split=eval` or `test_split=eval`)."""

DEFAULT_CHOICES_COLUMN = "choices"  # a multiple-choice task's choice lists, unless choices_column names another


@dataclass
class TaskSpec:
    r"""
    One task: a name, a data source, its columns and its training options.

    Args:
        name (`str`): the task (and head) name: 1-64 ASCII letters, digits, `_` or `-` (the config's rule,
            `check_task_name`), checked here so a bad name fails before any data is read.
        data_files (`str`, `list` or `dict[str, str | list]`, *optional*):
            Local CSV/JSON/JSONL/Parquet file(s); a dict maps split names to files, a single file is the train split.
        dataset (`str`, `datasets.Dataset` or `datasets.DatasetDict`, *optional*):
            A Hub dataset id (or any `datasets.load_dataset` path), or data already in memory. A `Dataset` is the
            train split. Exactly one of `data_files` and `dataset` is given.
        dataset_config (`str`, *optional*): the Hub dataset's configuration name.
        text_column (`str`, defaults to `"text"`), label_column (`str`, defaults to `"label"`):
            Column names. A label column whose values are lists makes the task multi-label.
        text_pair_column (`str`, *optional*): a second text column (hypothesis, answer, context...): the tokenizer
            gets `(text, text_pair)` as a sentence pair, truncating the longer one first so both survive.
        labels (`list[str]`, *optional*): the label map (head order); inferred (sorted unique train labels) if absent.
            Strings, as the data's labels are read: a number or a boolean (YAML's unquoted `yes`/`no`) is refused.
        problem_type (`str`, *optional*): `"single_label_classification"` or `"multi_label_classification"`;
            inferred from the label column if absent.
        loss_weight (`float`, defaults to 1.0): multiplies this task's loss (and the clipping threshold of its
            steps, so the weight survives gradient clipping: `MultitaskTrainer`).
        class_weights (`"balanced"`, `list[float]` or `None`): weighted cross-entropy (single-label) or BCE
            `pos_weight` (multi-label); `"balanced"` computes `n / (num_labels * count)` from the train split.
        train_split, eval_split, test_split (`str`): split names; `eval_split`/`test_split` may be `None`.
        max_train_samples, max_eval_samples (`int`, *optional*): seeded random subsample of the train / eval and
            test splits.
        validation_size, test_size (`float`, *optional*): when the data has no validation (test) split, this fraction
            of the train rows is held out as one (seeded; stratified by label for a single-label task that does not
            share its data source); `0` holds out nothing. `None`: the run-wide default (`DataArguments`, 0.1).
            A split the data has is never replaced, and rows are only ever carved from the train split.
        threshold (`float`, *optional*): multi-label decision threshold stored in the config (default 0.5).
        choices_column (`str`, *optional*): a column of choice lists makes the task `"multiple_choice"` (the
            default column `choices` when `problem_type="multiple_choice"`); the label is the right choice's index or
            text (see `polyhead.choices`).
        question_column (`str`, *optional*): multiple choice: a question appended to the context (default: the
            `question` column when the data has one).
        head_learning_rate (`float`, *optional*): learning rate of this task's head (default: the run's
            `head_learning_rate`, else its `learning_rate`).

    Example:

    ```python
    >>> spec = TaskSpec("emotion", data_files={"train": "data/train.jsonl", "validation": "data/validation.jsonl"})
    >>> spec.to_dict()["label_column"]
    'label'
    ```
    """

    name: str
    data_files: str | list | dict | None = None
    dataset: Any = None
    dataset_config: str | None = None
    text_column: str = "text"
    label_column: str = "label"
    text_pair_column: str | None = None
    labels: list[str] | None = None
    problem_type: str | None = None
    loss_weight: float = 1.0
    class_weights: str | list[float] | None = None
    train_split: str = "train"
    eval_split: str | None = "validation"
    test_split: str | None = "test"
    max_train_samples: int | None = None
    max_eval_samples: int | None = None
    validation_size: float | None = None
    test_size: float | None = None
    threshold: float | None = None
    choices_column: str | None = None
    question_column: str | None = None
    head_learning_rate: float | None = None

    def __post_init__(self):
        check_task_name(self.name)
        if self.choices_column is not None and self.problem_type is None:
            self.problem_type = MULTIPLE_CHOICE
        if self.problem_type == MULTIPLE_CHOICE:
            self.choices_column = self.choices_column or DEFAULT_CHOICES_COLUMN
            if self.class_weights is not None or self.text_pair_column is not None:
                raise ValueError(f"Task {self.name!r}: a multiple-choice task takes no class_weights or text_pair.")
        if (self.data_files is None) == (self.dataset is None):
            raise ValueError(f"Task {self.name!r}: give exactly one of `data_files` and `dataset`.")
        if self.problem_type is not None and self.problem_type not in PROBLEM_TYPES:
            raise ValueError(
                f"Task {self.name!r}: unknown problem_type {self.problem_type!r}; choose one of {PROBLEM_TYPES}."
            )
        if self.labels is not None:
            self._check_labels()
        if (
            isinstance(self.loss_weight, bool)
            or not isinstance(self.loss_weight, (int, float))
            or not self.loss_weight > 0
        ):
            raise ValueError(f"Task {self.name!r}: loss_weight must be a number > 0, got {self.loss_weight!r}.")
        self._check_class_weights()
        if self.head_learning_rate is not None and not float(self.head_learning_rate) > 0:
            raise ValueError(f"Task {self.name!r}: head_learning_rate must be > 0, got {self.head_learning_rate}.")
        for key in ("max_train_samples", "max_eval_samples"):
            value = getattr(self, key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1):
                raise ValueError(f"Task {self.name!r}: {key} must be None or an integer >= 1, got {value!r}.")
        for key in ("validation_size", "test_size"):
            check_held_out_fraction(getattr(self, key), f"Task {self.name!r}: {key}")

    def _check_labels(self) -> None:
        """Label names are strings, as the data's labels are read (a number or boolean would match none of them)."""
        labels = self.labels
        if isinstance(labels, str) or not isinstance(labels, (list, tuple)):  # a list() of a string: its characters
            got = f"the string {labels!r}" if isinstance(labels, str) else repr(labels)
            raise ValueError(f"Task {self.name!r}: labels must be a list of label names, got {got}.")
        if any(isinstance(label, bool) for label in labels):
            raise ValueError(
                f"Task {self.name!r}: labels {labels!r} hold booleans: YAML reads unquoted yes/no/true/false/on/off "
                "as true/false. Quote each label as the data writes it, e.g. labels: ['yes', 'no']."
            )
        others = [label for label in labels if not isinstance(label, str)]
        if others:
            raise ValueError(
                f"Task {self.name!r}: labels must be strings (the data's labels are read as text), got {others!r} "
                f"in {labels!r}. Quote them as the data writes them, e.g. labels: ['0', '1'] in a tasks file."
            )

    def _check_class_weights(self) -> None:
        weights = self.class_weights
        if weights is None or weights == "balanced":
            return
        if isinstance(weights, str) or not all(isinstance(w, (int, float)) and w > 0 for w in weights):
            raise ValueError(
                f"Task {self.name!r}: class_weights must be 'balanced', a list of positive numbers or None, "
                f"got {weights!r}."
            )
        if self.labels is not None and len(weights) != len(self.labels):
            raise ValueError(
                f"Task {self.name!r}: {len(weights)} class_weights for {len(self.labels)} labels {self.labels}."
            )

    def split_files(self) -> dict[str, list[str]]:
        """`data_files` as `{split: [paths as given]}` (a file or list of files alone is the train split)."""
        if self.data_files is None:
            return {}
        files = self.data_files if isinstance(self.data_files, Mapping) else {self.train_split: self.data_files}
        return {
            str(split): [str(value)] if isinstance(value, (str, os.PathLike)) else [str(path) for path in value]
            for split, value in files.items()
        }

    @property
    def source_key(self) -> str:
        """Identifies the data source: specs with equal keys share rows (loaded once). Paths count resolved, so
        `meld.jsonl`, `./meld.jsonl` and its absolute path, or `data_files: x` and `{train: x}`, are one source."""
        if isinstance(self.dataset, (datasets.Dataset, datasets.DatasetDict)):
            return f"memory:{id(self.dataset)}"
        if self.dataset is not None:
            local = isinstance(self.dataset, (str, os.PathLike)) and Path(self.dataset).exists()
            return f"hub:{os.path.realpath(self.dataset) if local else self.dataset}:{self.dataset_config}"
        files = {split: [os.path.realpath(path) for path in paths] for split, paths in self.split_files().items()}
        return f"files:{json.dumps(files, sort_keys=True)}"

    def head(self, labels: list[str], problem_type: str) -> dict[str, Any]:
        """The `MultitaskConfig.tasks` entry of this task once its labels and problem type are known."""
        spec = {"labels": labels, "problem_type": problem_type, "text_pair": self.text_pair_column is not None}
        if problem_type == MULTI_LABEL and self.threshold is not None:
            spec["threshold"] = self.threshold
        return normalize_task(self.name, spec)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields; an in-memory dataset is described, not serialised."""
        output = {f.name: copy.deepcopy(getattr(self, f.name)) for f in fields(self) if f.name != "dataset"}
        in_memory = isinstance(self.dataset, (datasets.Dataset, datasets.DatasetDict))
        output["dataset"] = f"<in-memory {type(self.dataset).__name__}>" if in_memory else self.dataset
        return output

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TaskSpec":
        """Builds a spec from a dict; unknown keys are an error that lists the valid ones."""
        valid = [f.name for f in fields(cls)]
        unknown = sorted(set(data) - set(valid))
        if unknown:
            raise ValueError(f"Unknown task key(s) {unknown} in {dict(data)}; valid keys: {valid}.")
        if "name" not in data:
            raise ValueError(f"A task needs a 'name' (and 'data_files' or 'dataset'): {dict(data)}.")
        try:
            return cls(**data)
        except TypeError as error:  # a value of the wrong type (null, a list...) in a tasks file
            raise ValueError(f"Task {data['name']!r}: {error} ({dict(data)}).") from None


def check_pair_input(name: str, text_pair_column: str | None, head: Mapping[str, Any]) -> None:
    """Refuses data whose input kind (one text, or pairs through `text_pair_column`) is not what the model's head
    `head` (its config entry) reads: a pair head scored or trained on single texts, or the reverse."""
    pairs = bool(head.get("text_pair"))
    if bool(text_pair_column) != pairs:
        fix = "name its second column with text_pair=COLUMN" if pairs else "drop text_pair="
        raise ValueError(
            f"Task {name!r}: the model's head reads {'sentence pairs' if pairs else 'one text'} but the data gives "
            f"{'pairs' if text_pair_column else 'one text'}: {fix}, or use another task name."
        )


def check_held_out_fraction(value: float | None, name: str) -> None:
    """Raises a `ValueError` unless `value` is `None` or a fraction of the train rows in [0, 1)."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ValueError(
            f"{name} must be a fraction of the train rows in [0, 1) (e.g. 0.1; 0 holds out nothing), got {value!r}."
        )


def _optional_split(value: str) -> str | None:
    return None if value.lower() in ("", "none", "null") else value


# Options of the short `name=path:key=value,...` form, with the type each value is read as.
SHORT_FORM_OPTIONS = {
    "text_column": str,
    "label_column": str,
    "text_pair_column": str,
    "problem_type": str,
    "loss_weight": float,
    "class_weights": str,  # "balanced"; explicit lists need a JSON object or a tasks file
    "train_split": str,
    "eval_split": _optional_split,
    "test_split": _optional_split,
    "max_train_samples": int,
    "max_eval_samples": int,
    "validation_size": float,
    "test_size": float,
    "threshold": float,
    "choices_column": str,
    "question_column": str,
    "head_learning_rate": float,
}
OPTION_ALIASES = {"text": "text_column", "label": "label_column", "text_pair": "text_pair_column"}


def is_saved_dataset(path: str | os.PathLike) -> bool:
    """A folder written by `save_to_disk` of a `Dataset` or `DatasetDict` (read with `datasets.load_from_disk`)."""
    path = Path(path)
    return path.is_dir() and (
        (path / "dataset_dict.json").is_file()
        or ((path / "state.json").is_file() and (path / "dataset_info.json").is_file())
    )


def task_folder_files(folder: str | os.PathLike, splits: Iterable[str] = ()) -> dict[str, str]:
    r"""
    `{split: file}` for a task folder: its `<split>.<ext>` files (extension `jsonl`, `json`, `csv` or `parquet`, in any
    case) whose split is one `datasets` recognises (`SPLIT_KEYWORDS`: train, validation, valid, dev, test...) or one of
    `splits` (the names a task gives with `train_split` / `eval_split` / `test_split`). Other files (a
    `label_map.json`, notes, statistics) are not data: they are skipped with a warning naming them.

    Example:

    ```python
    >>> task_folder_files("data/meld")  # train.jsonl, dev.jsonl, test.jsonl, label_map.json
    {'dev': 'data/meld/dev.jsonl', 'test': 'data/meld/test.jsonl', 'train': 'data/meld/train.jsonl'}
    ```
    """
    folder = Path(folder)
    names = {keyword for keywords in SPLIT_KEYWORDS.values() for keyword in keywords} | set(splits)
    found, skipped = {}, []
    for path in sorted(folder.iterdir()):
        split, _, extension = path.name.partition(".")
        if not path.is_file() or path.suffix.lstrip(".").lower() not in DATA_EXTENSIONS:
            continue
        if split not in names or extension.lower() not in DATA_EXTENSIONS:  # label_map.json, train.v2.jsonl
            skipped.append(path.name)
        elif split in found:
            raise ValueError(
                f"Task folder {folder} has two files for its {split!r} split, {Path(found[split]).name} and "
                f"{path.name}: keep one."
            )
        else:
            found[split] = str(path)
    if not found:
        raise FileNotFoundError(
            f"No split files in task folder {folder}: expected files such as train.jsonl, validation.jsonl, "
            f"test.jsonl (extensions {'/'.join(DATA_EXTENSIONS)}){f'; found {skipped}' if skipped else ''}."
        )
    if skipped:
        logger.warning(
            f"Task folder {folder}: {skipped} not read (not named as a split: "
            f"{', '.join(k for keywords in SPLIT_KEYWORDS.values() for k in keywords)}); name a split of another name "
            "with train_split= / eval_split= / test_split=."
        )
    return found


def parse_task(item: Any) -> TaskSpec:
    r"""
    Reads one task from a `TaskSpec`, a dict, a JSON object string, or the compact CLI form `name=path` (a folder of
    `<split>.<ext>` files or a single train file), optionally followed by `:key=value,...` options: `text` (or
    `text_column`), `label` (or `label_column`) and the scalar `TaskSpec` fields of `SHORT_FORM_OPTIONS`. Two tasks
    from one file: `emotion=data/meld:text=utterance,label=emotion` and `sentiment=data/meld:text=utterance,
    label=sentiment`.

    Example:

    ```python
    >>> parse_task("emotion=../shared/data/tweet_emotion").data_files["train"]
    '../shared/data/tweet_emotion/train.jsonl'
    >>> parse_task("sentiment=data/meld:text=utterance,label=sentiment").label_column
    'sentiment'
    ```
    """
    if isinstance(item, TaskSpec):
        return item
    if isinstance(item, Mapping):
        return TaskSpec.from_dict(item)
    if not isinstance(item, str):
        raise ValueError(f"A task is a TaskSpec, a dict or a string, got {type(item).__name__}: {item!r:.80}.")
    if item.lstrip().startswith("{"):
        return TaskSpec.from_dict(json.loads(item))
    name, sep, path = item.partition("=")
    if not sep or not path:
        raise ValueError(f"Cannot read task {item!r}: use a JSON object, a tasks file, or name=path[:key=value,...].")
    path, options = _split_options(path)
    if is_saved_dataset(path):  # Dataset(Dict).save_to_disk: read with datasets.load_from_disk
        return TaskSpec(name=name, dataset=path, **options)
    if Path(path).is_dir():
        named = [options.get(key) for key in ("train_split", "eval_split", "test_split")]
        return TaskSpec(name=name, data_files=task_folder_files(path, [n for n in named if n]), **options)
    return TaskSpec(name=name, data_files={"train": path}, **options)


def _split_options(path: str) -> tuple[str, dict[str, Any]]:
    """`folder:text=utterance,label=emotion` -> (`folder`, {"text_column": ..., "label_column": ...}).

    The part after the last `:` holds options only when it parses as `key=value` pairs of known keys, so a path that
    itself holds a colon (`C:/data`) is read as a path."""
    head, sep, tail = path.rpartition(":")
    if not sep or not head or "=" not in tail:
        return path, {}
    options = {}
    for pair in tail.split(","):
        key, eq, value = (part.strip() for part in pair.partition("="))
        key = OPTION_ALIASES.get(key, key)
        if not eq or key not in SHORT_FORM_OPTIONS:
            raise ValueError(
                f"Cannot read task option {pair!r} in {path!r}: use key=value pairs separated by commas, with keys "
                f"among {sorted(OPTION_ALIASES)} or {sorted(SHORT_FORM_OPTIONS)}."
            )
        try:
            options[key] = SHORT_FORM_OPTIONS[key](value)
        except ValueError as error:
            raise ValueError(f"Cannot read task option {pair!r} in {path!r}: {error}.") from error
    return head, options


def load_task_specs(tasks: str | os.PathLike | Iterable[Any]) -> list[TaskSpec]:
    r"""
    Reads task specs from a JSON/YAML file (a list, or a mapping with a `tasks` list) or from a list of items that
    [`parse_task`] accepts (an item that is a `.json`/`.yaml` file path is expanded in place). Names must be unique.

    Example:

    ```python
    >>> specs = load_task_specs([{"name": "a", "data_files": "a.csv"}, "b=data/b"])
    ```
    """
    items = [tasks] if isinstance(tasks, (str, os.PathLike)) else list(tasks)
    specs = []
    for item in items:
        if _is_task_file(item):
            specs += [parse_task(entry) for entry in _read_task_file(item)]
        else:
            specs.append(parse_task(item))
    names = [spec.name for spec in specs]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"Duplicate task names {duplicates}.")
    if not specs:
        raise ValueError("No tasks given: pass at least one task.")
    return specs


def _is_task_file(item: Any) -> bool:
    """A `.json`/`.yaml` path, not a task whose data is a JSON file (`name=data.json`: a name has no `/`)."""
    if not isinstance(item, (str, os.PathLike)) or Path(item).suffix not in (".json", ".yaml", ".yml"):
        return False
    name, equals, _ = str(item).partition("=")
    return not equals or "/" in name or os.sep in name


def _read_task_file(path: str | os.PathLike) -> list[Any]:
    data = read_json_or_yaml(path, "a list of tasks")
    if isinstance(data, Mapping):
        data = data.get("tasks")
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a list of tasks (or a mapping with a 'tasks' list).")
    return data


def read_text(path: str | os.PathLike, expected: str) -> str:
    r"""
    A file's text; a `ValueError` names the file and what was `expected` when it is empty (or blank), and the line
    of the first byte that is not UTF-8.

    Example:

    ```python
    >>> read_text("data/train.jsonl", "one JSON object per line")
    ```
    """
    raw = Path(path).read_bytes()
    if not raw.strip():
        raise ValueError(f"{path} is empty: expected {expected}.")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise ValueError(
            f"{path}, line {line}: byte {raw[error.start]:#04x} is not UTF-8 text (expected {expected}, UTF-8 "
            f"encoded; re-save the file as UTF-8, e.g. `iconv -f latin1 -t utf-8`)."
        ) from None


def read_json_or_yaml(path: str | os.PathLike, expected: str) -> Any:
    """Parses a JSON or YAML file (by extension); errors name the file, the line and what was `expected`."""
    text = read_text(path, expected)
    try:
        if Path(path).suffix in (".yaml", ".yml"):
            return yaml.safe_load(text)
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}, line {error.lineno}: invalid JSON ({error.msg}); expected {expected}.") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or error
        raise ValueError(f"{path}{where}: invalid YAML ({problem}); expected {expected}.") from None


__all__ = [
    "DATA_EXTENSIONS",
    "check_held_out_fraction",
    "check_pair_input",
    "SHORT_FORM_OPTIONS",
    "SPLIT_ALIASES",
    "SPLIT_KEYWORDS",
    "TaskSpec",
    "is_saved_dataset",
    "load_task_specs",
    "parse_task",
    "read_json_or_yaml",
    "read_text",
    "task_folder_files",
]
