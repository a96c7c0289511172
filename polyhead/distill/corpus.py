"""The unlabeled texts the teachers label: read and checked before any teacher runs.

Texts come from CSV/JSON/JSONL/Parquet files, a folder written by `Dataset.save_to_disk`, a `datasets` Hub id or an
in-memory `datasets.Dataset`, with a text column and an optional text-pair column (for pair teachers). Rows whose text
is missing or blank are dropped with a warning; a source with no usable text is an error.
"""

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import datasets

from polyhead.data import DATA_BUILDERS, check_data_file, load_data_files


logger = logging.getLogger(__name__)


@dataclass
class Corpus:
    """Texts, and for each one its pair text or `None` (`pairs` is `None` without a pair column)."""

    texts: list[str]
    pairs: list[str | None] | None = None

    def __len__(self) -> int:
        return len(self.texts)

    def extend(self, texts: Sequence[str], pairs: Sequence[str | None] | None) -> range:
        """Appends rows; returns their indices."""
        start = len(self.texts)
        self.texts.extend(texts)
        if pairs is not None or self.pairs is not None:
            self.pairs = (self.pairs or [None] * start) + list(pairs or [None] * len(texts))
        return range(start, len(self.texts))

    def select(self, rows: Sequence[int]) -> "Corpus":
        return Corpus([self.texts[i] for i in rows], [self.pairs[i] for i in rows] if self.pairs else None)


def read_dataset(
    source: str | Sequence[str] | datasets.Dataset, split: str = "train", columns: Sequence[str] | None = None
) -> datasets.Dataset:
    """Reads the texts' source into a `Dataset` (see the module docstring); a `ValueError` names an unreadable file.
    With several files and `columns`, each file is read alone and cut to those columns (as strings) before they are
    joined, so files whose other columns differ (a traffic log beside a labelled train split) make one table."""
    if isinstance(source, datasets.Dataset):
        return source
    if isinstance(source, datasets.DatasetDict):
        return source[split]
    paths = [source] if isinstance(source, (str, os.PathLike)) else list(source)
    if not paths:
        raise ValueError("No texts given: pass --texts with CSV/JSONL/Parquet file(s), a dataset folder or Hub id.")
    if len(paths) == 1 and Path(paths[0]).is_dir():
        return _from_disk(str(paths[0]), split)
    if len(paths) == 1 and not Path(paths[0]).suffix and not Path(paths[0]).exists():
        return _from_hub(str(paths[0]), split)
    return _from_files([str(path) for path in paths], columns)


def _from_files(paths: list[str], columns: Sequence[str] | None = None) -> datasets.Dataset:
    missing = [path for path in paths if not Path(path).is_file()]
    if missing:
        raise ValueError(f"Text file(s) not found: {missing}.")
    extensions = {Path(path).suffix.lstrip(".").lower() for path in paths}
    builders = {DATA_BUILDERS.get(extension) for extension in extensions}
    if None in builders or len(builders) != 1:
        raise ValueError(
            f"Text files must all be one of {sorted(DATA_BUILDERS)}, got extensions {sorted(extensions)}."
        )
    for path in paths:
        check_data_file(path)  # names the file and line of bad bytes, broken JSON lines or ragged CSV rows
    builder = builders.pop()
    if len(paths) == 1 or not columns:
        return _load_files(builder, paths)
    as_strings = datasets.Features({column: datasets.Value("string") for column in columns})
    parts = []
    for path in paths:
        part = _load_files(builder, [path])
        check_columns(part, columns, f"Text file {path}")
        part = part.select_columns(list(columns))
        parts.append(part if part.features == as_strings else part.cast(as_strings))
    return datasets.concatenate_datasets(parts)


def check_columns(dataset: datasets.Dataset, columns: Sequence[str], described: str) -> None:
    """Raises a `ValueError` naming the columns `dataset` lacks and the ones it has."""
    missing = [column for column in columns if column not in dataset.column_names]
    if missing:
        raise ValueError(
            f"{described}: column(s) {missing} not found; available columns: {dataset.column_names}. "
            "Choose them with --text_column / --text_pair_column."
        )


def _load_files(builder: str, paths: list[str]) -> datasets.Dataset:
    try:
        return load_data_files(builder, {"train": paths}, split="train")
    except (datasets.exceptions.DatasetGenerationError, ValueError, OSError) as error:
        cause = error.__cause__ or error
        raise ValueError(f"Could not read the text file(s) {paths}: {cause}") from None


def _from_disk(folder: str, split: str) -> datasets.Dataset:
    try:
        loaded = datasets.load_from_disk(folder)
    except (FileNotFoundError, ValueError) as error:
        raise ValueError(
            f"{folder} is a folder but not one written by Dataset.save_to_disk ({error}); pass its data files."
        ) from None
    if isinstance(loaded, datasets.DatasetDict):
        if split not in loaded:
            raise ValueError(f"{folder} has no split {split!r}; its splits: {list(loaded)}.")
        return loaded[split]
    return loaded


def _from_hub(name: str, split: str) -> datasets.Dataset:
    try:
        return datasets.load_dataset(name, split=split)
    except (FileNotFoundError, ValueError, OSError) as error:
        problem = f"not a local file, nor a readable dataset: {error}"
        raise ValueError(f"Could not read texts from {name!r} ({problem})") from None


def load_corpus(
    source: str | Sequence[str] | datasets.Dataset,
    text_column: str = "text",
    text_pair_column: str | None = None,
    split: str = "train",
    max_texts: int | None = None,
    seed: int = 0,
) -> Corpus:
    r"""
    Reads and checks the unlabeled texts (and pair texts), subsampled to `max_texts` rows (seeded) when given.

    Raises:
        `ValueError`: an unreadable source, a missing column (the available ones listed), or no usable text.

    Example:

    ```python
    >>> corpus = load_corpus("traffic.jsonl", text_column="message")
    >>> len(corpus), corpus.texts[0]
    ```
    """
    columns = [text_column] + ([text_pair_column] if text_pair_column else [])
    dataset = read_dataset(source, split, columns)
    described = source if isinstance(source, (str, list)) else f"in-memory {type(source).__name__}"
    check_columns(dataset, columns, f"Texts {described}")
    if max_texts is not None and len(dataset) > max_texts:
        dataset = dataset.shuffle(seed=seed).select(range(max_texts))
    values = list(dataset[text_column])
    keep = [i for i, text in enumerate(values) if isinstance(text, str) and text.strip()]
    others = _not_strings(values)
    if not keep and others:
        raise ValueError(f"Texts {described}: the text column {text_column!r} holds no text: {others}.")
    if not keep:
        raise ValueError(
            f"Texts {described}: the text column {text_column!r} is empty ({len(values)} row(s), none with a "
            "non-blank string)."
        )
    if len(keep) < len(values):
        kinds = f" ({others})" if others else ""
        logger.warning(
            f"Texts {described}: {len(values) - len(keep)} row(s) without text in {text_column!r} dropped{kinds}."
        )
    texts = [values[i] for i in keep]
    if not text_pair_column:
        return Corpus(texts)
    raw = list(dataset[text_pair_column])
    pairs = [raw[i] if isinstance(raw[i], str) and raw[i].strip() else None for i in keep]
    if all(pair is None for pair in pairs):
        others = _not_strings([raw[i] for i in keep])
        raise ValueError(
            f"Texts {described}: the text-pair column {text_pair_column!r} is empty{f' ({others})' if others else ''}."
        )
    return Corpus(texts, pairs)


def _not_strings(values: Sequence) -> str | None:
    """What to say of `values` that are present but not strings (numbers, lists...), or `None` when there are none:
    such a column is not text, and saying so beats calling it empty."""
    wrong = [value for value in values if value is not None and not isinstance(value, str)]
    if not wrong:
        return None
    return (
        f"{len(wrong)} of {len(values)} row(s) are not strings (e.g. {wrong[0]!r:.40}, {type(wrong[0]).__name__}); "
        "choose the column of texts with --text_column / --text_pair_column, or store the values as strings "
        "(quoted in JSON)"
    )


__all__ = ["Corpus", "load_corpus", "read_dataset"]
