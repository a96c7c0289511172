"""The teachers' outputs on disk: each teacher labels a set of texts once, and an interrupted or repeated run reads
its logits back instead of running it again.

One safetensors file per teacher and text set, `<cache_dir>/<teacher>-<key>.safetensors`, holds every task's logits
and the rows they belong to. The key hashes the teacher's identity (its files' contents for a folder, Hub id +
revision + commit otherwise), the settings that change its outputs (token budget, tasks, pair columns) and the texts
themselves; the file's metadata repeats the key and the texts' hash, and both are checked on reading, with the shapes
and values. A file computed for another teacher or other texts is never used: it is recomputed and replaced.
"""

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from polyhead.distill.teachers import (
    Teacher,
    derived_task_name,
    fingerprint,
    load_teacher,
    run_batches,
    teacher_forward,
)


logger = logging.getLogger(__name__)

CACHE_FORMAT = "polyhead-teacher-logits-1"


def task_rows(teacher: Teacher, pairs: Sequence[str | None] | None, size: int) -> dict[str, np.ndarray]:
    """Per teacher task, the corpus rows it labels: every row, or for a pair task the rows that have a pair."""
    with_pair = np.array([i for i in range(size) if pairs is not None and pairs[i] is not None], dtype=np.int64)
    return {
        name: with_pair if task["text_pair"] else np.arange(size, dtype=np.int64)
        for name, task in teacher.tasks.items()
    }


def cache_path(cache_dir: str | os.PathLike, teacher: Teacher, key: str) -> Path:
    """`<cache_dir>/<teacher name>-<first 16 hex digits of the key>.safetensors`."""
    return Path(cache_dir) / f"{derived_task_name(teacher.source)}-{key[:16]}.safetensors"


def teacher_logits(
    teacher: Teacher,
    texts: Sequence[str],
    pairs: Sequence[str | None] | None,
    max_length: int,
    batch_size: int = 32,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    r"""
    `{student task: (rows, logits)}`: the teacher's logits on the corpus rows each of its tasks reads (see
    [`task_rows`]), read from `cache_dir` when a verified file for this teacher and these texts is there, else
    computed (and written there).

    Example:

    ```python
    >>> outputs = teacher_logits(teacher, ["good movie", "bad phone"], None, 128, cache_dir="outputs/teacher_cache")
    >>> rows, logits = outputs["sentiment"]
    ```
    """
    rows = task_rows(teacher, pairs, len(texts))
    texts_hash = fingerprint(list(texts), list(pairs) if pairs is not None else None)
    settings = {"max_length": max_length, "tasks": teacher.tasks, "format": CACHE_FORMAT}
    key = fingerprint(teacher.identity(), settings, texts_hash)
    path = cache_path(cache_dir, teacher, key) if cache_dir is not None else None
    if path is not None and path.is_file():
        cached = read_cache(path, key, texts_hash, teacher, rows)
        if cached is not None:
            logger.info(f"Teacher {teacher.source}: logits read from {path}.")
            return cached
    outputs = compute_logits(teacher, texts, pairs, rows, max_length, batch_size, progress)
    if path is not None:
        write_cache(path, key, texts_hash, outputs)
    return outputs


def compute_logits(
    teacher: Teacher,
    texts: Sequence[str],
    pairs: Sequence[str | None] | None,
    rows: dict[str, np.ndarray],
    max_length: int,
    batch_size: int,
    progress: bool,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Runs the teacher: one pass over the single texts for its single-text tasks, one over the pairs for its pair
    tasks; a text (or pair) the corpus holds several times, e.g. a held-out text that is also a gold test row, is
    run once and its logits given to each of its rows."""
    model, tokenizer = load_teacher(teacher)
    outputs = {}
    for pair in (False, True):
        names = [name for name, task in teacher.tasks.items() if task["text_pair"] == pair]
        if not names:
            continue
        picked = rows[names[0]]
        distinct: dict[tuple[str, str | None], int] = {}  # each input, in first-seen order -> its position
        where = [distinct.setdefault((texts[i], pairs[i] if pair else None), len(distinct)) for i in picked]
        group_texts = [text for text, _ in distinct]
        group_pairs = [second for _, second in distinct] if pair else None
        desc = f"Teacher {derived_task_name(teacher.source)}" if progress else None
        forward = teacher_forward(teacher, model, pair)
        logits = run_batches(forward, tokenizer, group_texts, group_pairs, batch_size, max_length, desc)
        for name in names:
            outputs[name] = (picked, logits[name][where] if name in logits else _empty(teacher, name))
    return outputs


def _empty(teacher: Teacher, name: str) -> np.ndarray:
    return np.zeros((0, len(teacher.tasks[name]["labels"])), dtype=np.float32)


def write_cache(path: Path, key: str, texts_hash: str, outputs: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    """Writes the logits and rows of every task, the key and the texts' hash (atomically: a temporary file moved)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for name, (rows, logits) in outputs.items():
        tensors[f"{name}.rows"] = np.ascontiguousarray(rows, dtype=np.int64)
        tensors[f"{name}.logits"] = np.ascontiguousarray(logits, dtype=np.float32)
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata={"format": CACHE_FORMAT, "key": key, "texts_sha256": texts_hash})
    os.replace(tmp, path)


def read_cache(
    path: Path, key: str, texts_hash: str, teacher: Teacher, rows: dict[str, np.ndarray]
) -> dict[str, tuple[np.ndarray, np.ndarray]] | None:
    """The cached outputs when the file is for this teacher and these texts and holds sane logits; else `None`
    (with a warning saying why: the file is then recomputed)."""
    problem = None
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="numpy") as handle:
            metadata = handle.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        metadata, tensors, problem = {}, {}, f"unreadable ({error})"
    if problem is None:
        problem = _cache_problem(metadata, tensors, key, texts_hash, teacher, rows)
    if problem is not None:
        logger.warning(f"Teacher outputs in {path} not used ({problem}): running teacher {teacher.source} again.")
        return None
    return {name: (rows[name], tensors[f"{name}.logits"]) for name in teacher.tasks}


def _cache_problem(metadata, tensors, key, texts_hash, teacher, rows) -> str | None:
    if metadata.get("format") != CACHE_FORMAT or metadata.get("key") != key:
        return "computed for another teacher or other settings"
    if metadata.get("texts_sha256") != texts_hash:
        return "computed for other texts"
    for name, task in teacher.tasks.items():
        logits, stored = tensors.get(f"{name}.logits"), tensors.get(f"{name}.rows")
        if logits is None or stored is None:
            return f"no logits for task {name!r}"
        if logits.shape != (len(rows[name]), len(task["labels"])) or not np.array_equal(stored, rows[name]):
            return f"task {name!r} holds logits of shape {logits.shape} for other rows"
        if not np.isfinite(logits).all():
            return f"task {name!r} holds non-finite logits"
    return None


__all__ = ["CACHE_FORMAT", "cache_path", "compute_logits", "read_cache", "task_rows", "teacher_logits", "write_cache"]
