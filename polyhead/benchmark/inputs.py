"""The benchmark's inputs: real tweets (or synthetic texts), task label sets, a tiny random encoder for `--tiny`."""

import json
import os
import random
from pathlib import Path
from typing import Any

import torch
from transformers import BertModel

from polyhead.presets import WORDS, tiny_encoder_config, tiny_tokenizer
from polyhead.remote_code import MULTI_LABEL, SINGLE_LABEL


DEFAULT_DATA_DIR = Path(__file__).resolve().parents[3] / "shared" / "data"
# Three tweet tasks (the accuracy benchmark), then three more label sets for T = 6 (one of them multi-label).
TASK_DATASETS = ("tweet_emotion", "tweet_hate", "tweet_offensive", "go_emotions", "sst2", "trec")
TEXT_DATASETS = ("tweet_emotion", "tweet_hate", "tweet_offensive")


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def load_texts(
    num_texts: int, data_dir: str | os.PathLike = DEFAULT_DATA_DIR, seed: int = 0, split: str = "test"
) -> list[str]:
    """`num_texts` real tweets, a seeded sample of the three tweet sets' `split` (mixed, so lengths vary)."""
    texts = [row["text"] for name in TEXT_DATASETS for row in read_jsonl(Path(data_dir) / name / f"{split}.jsonl")]
    return random.Random(seed).sample(texts, min(num_texts, len(texts)))


def synthetic_texts(num_texts: int, seed: int = 0) -> list[str]:
    """Random sentences over the tiny tokenizer's words, 3 to 30 words long (for `--tiny`)."""
    rng = random.Random(seed)
    return [" ".join(rng.choices(WORDS, k=rng.randint(3, 30))) for _ in range(num_texts)]


def write_synthetic_tasks(folder: str | os.PathLike, labels: dict[str, list[str]], sizes: dict[str, int]) -> Path:
    """Task folders `<folder>/<task>/<split>.jsonl` of single-label rows over the tiny tokenizer's words, the label
    word first in each text (learnable by the tiny encoder); `sizes` gives each split's rows (for `--tiny` runs)."""
    folder = Path(folder)
    for index, (name, names) in enumerate(labels.items()):
        rng = random.Random(index)
        for split, size in sizes.items():
            rows = []
            for _ in range(size):
                label = rng.choice(names)
                rows.append({"text": " ".join([label, *rng.sample(WORDS, 5)]), "label": label})
            path = folder / name / f"{split}.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return folder


def task_label_sets(num_tasks: int, data_dir: str | os.PathLike | None = DEFAULT_DATA_DIR) -> dict[str, dict]:
    """The `tasks` mapping of the first `num_tasks` of `TASK_DATASETS` (labels read from their validation files);
    synthetic label sets (2 to 7 labels, the fourth multi-label) when `data_dir` is `None`."""
    if num_tasks > len(TASK_DATASETS):
        raise ValueError(f"At most {len(TASK_DATASETS)} tasks are available, got {num_tasks}.")
    tasks = {}
    for index, name in enumerate(TASK_DATASETS[:num_tasks]):
        if data_dir is None:
            labels, multi = [f"label_{i}" for i in range(2 + index)], index == 3
        else:
            rows = read_jsonl(Path(data_dir) / name / "validation.jsonl")
            multi = "labels" in rows[0]
            labels = sorted({label for row in rows for label in (row["labels"] if multi else [row["label"]])})
        tasks[name] = {"labels": labels, "problem_type": MULTI_LABEL if multi else SINGLE_LABEL}
    return tasks


def save_tiny_encoder(folder: str | os.PathLike) -> str:
    """Saves a tiny random BERT and its tokenizer to `folder` so every variant loads it with `from_pretrained`."""
    torch.manual_seed(0)
    BertModel(tiny_encoder_config()).save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    return str(folder)
