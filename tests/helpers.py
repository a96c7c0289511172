"""Helpers shared by the test files (plain functions and constants; fixtures are in conftest.py)."""

import importlib.util
import json
import os
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import datasets
import torch
from hub_server import HubServer  # a Hub-compatible HTTP server on 127.0.0.1 (tests/hub_server.py)
from huggingface_hub import HfApi

from polyhead import MultitaskModel
from polyhead.publishing.model_card import MultitaskCardData
from polyhead.publishing.upload import publish_model
from polyhead.saving import save_model_folder
from polyhead.tasks import TaskSpec
from polyhead.testing_utils import TINY_TASKS, WORDS, tiny_multitask_config, tiny_tokenizer
from polyhead.training.arguments import MultitaskTrainingArguments


TEXTS = ["i love this movie", "bad phone", "the team win the game today and people are happy"]

# Blocks every import path to this project, so only the copied remote code can answer.
BLOCKER = textwrap.dedent(
    """
    import sys
    BLOCKED = {"polyhead", "polyhead_remote", "pipelines"}
    class Blocker:
        def find_spec(self, name, path=None, target=None):
            top = name.split(".")[0]
            if top in BLOCKED or top.startswith(("configuration_multitask", "modeling_multitask", "multitask_")):
                raise ImportError(f"blocked import of {name}")
    sys.meta_path.insert(0, Blocker())
    sys.path = [p for p in sys.path if p not in ("", ".")]
    """
)


def run_fresh(script, *args, cwd, **env_overrides):
    """Runs `script` in a new interpreter (no PYTHONPATH, offline unless overridden) and returns its stdout."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(cwd / "modules"), HF_HOME=str(cwd / "hf_home"))
    env.update(env_overrides)
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


SINGLE_METRICS = {"accuracy": 0.8125, "precision_macro": 0.80125, "recall_macro": 0.79, "f1_macro": 0.795}
MULTI_METRICS = {
    "f1_micro": 0.61,
    "f1_macro": 0.5525,
    "precision_micro": 0.64,
    "recall_micro": 0.5833,
    "precision_macro": 0.57,
    "recall_macro": 0.54,
    "exact_match": 0.3,
    "label_accuracy": 0.845,
}
RESULTS = {
    "tasks": {
        "sentiment": SINGLE_METRICS,
        "topic": {"accuracy": 0.7, "precision_macro": 0.69, "recall_macro": 0.68, "f1_macro": 0.6833},
        "emotions": MULTI_METRICS,
    },
    "average": {"f1_macro": 0.677, "accuracy": 0.75, "primary": 0.6628},
    "primary_metrics": {"sentiment": "f1_macro", "topic": "f1_macro", "emotions": "f1_micro"},
    "problem_types": {
        name: spec.get("problem_type", "single_label_classification") for name, spec in TINY_TASKS.items()
    },
    "majority_baseline": {
        "sentiment": {"accuracy": 0.5, "precision_macro": 0.25, "recall_macro": 0.5, "f1_macro": 0.3333},
        "topic": {"accuracy": 0.25, "precision_macro": 0.0625, "recall_macro": 0.25, "f1_macro": 0.1},
        "emotions": {**dict.fromkeys(MULTI_METRICS, 0.0), "label_accuracy": 0.75},
    },
    "split": "test",
    "num_examples": {"sentiment": 160, "topic": 120, "emotions": 100},
    "model": "outputs/model",
}
BASELINES = {
    "tasks": {
        "sentiment": {**SINGLE_METRICS, "f1_macro": 0.78},
        "topic": {"accuracy": 0.72, "precision_macro": 0.7, "recall_macro": 0.7, "f1_macro": 0.7},
        "emotions": {**MULTI_METRICS, "f1_micro": 0.6},
    },
    "split": "test",
}


def _task_spec(name, **source):
    return {"name": name, "dataset": None, "dataset_config": None, "data_files": None, "test_split": "test", **source}


TRAINING_ARGS = {
    "model": {"encoder_name_or_path": "google-bert/bert-base-uncased", "pooling": "mean", "max_length": 128},
    "data": {
        "tasks": [
            _task_spec("sentiment", dataset="org/tweet-sentiment", dataset_config="english"),
            _task_spec("topic", data_files={"train": "data/topic/train.csv", "test": "data/topic/test.csv"}),
            _task_spec("emotions", dataset="<in-memory DatasetDict>"),
        ],
        "sampling": "temperature",
        "temperature": 2.0,
    },
    "training": {
        "learning_rate": 2e-05,
        "per_device_train_batch_size": 16,
        "num_train_epochs": 3.0,
        "max_steps": -1,
        "lr_scheduler_type": "linear",
        "warmup_ratio": 0.1,
        "weight_decay": 0.01,
        "seed": 42,
        "hub_token": "<HUB_TOKEN>",
    },
    "num_train_examples": {"sentiment": 1200, "topic": 800, "emotions": 640},
}


def labelled_split(n, labels, seed, multi=False):
    # The label word is in the text: a learnable task for a tiny random encoder.
    rng = random.Random(seed)
    texts, targets = [], []
    for _ in range(n):
        label = rng.choice(labels)
        texts.append(" ".join([label, *rng.sample(WORDS, 4)]))
        targets.append([label] if multi else label)
    return datasets.Dataset.from_dict({"text": texts, "label": targets})


def tiny_task_specs(n_train=48):
    sentiment = datasets.DatasetDict(
        train=labelled_split(n_train, ["good", "bad"], 0),
        validation=labelled_split(16, ["good", "bad"], 1),
        test=labelled_split(16, ["good", "bad"], 2),
    )
    topic = datasets.DatasetDict(
        train=labelled_split(n_train // 2, ["sport", "tech", "money"], 3),
        validation=labelled_split(12, ["sport", "tech", "money"], 4),
    )
    emotions = datasets.DatasetDict(train=labelled_split(n_train // 2, ["joy", "fear"], 5, multi=True))
    return [
        TaskSpec("sentiment", dataset=sentiment),
        TaskSpec("topic", dataset=topic, class_weights="balanced"),
        TaskSpec("emotions", dataset=emotions, validation_size=0, test_size=0),  # a task with no split to score
    ]


def training_args(tmp_path, **kwargs):
    defaults = {
        "output_dir": str(tmp_path / "run"),
        "num_train_epochs": 1,
        "per_device_train_batch_size": 8,
        "learning_rate": 2e-3,
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": "none",
        "disable_tqdm": True,
        "seed": 0,
    }
    return MultitaskTrainingArguments(**{**defaults, **kwargs})


ROOT = Path(__file__).resolve().parent.parent
CARD = MultitaskCardData(widget_texts=TEXTS[:1])

LOAD_FROM_HUB = BLOCKER + textwrap.dedent(
    """
    import json, torch
    from transformers import AutoModel, AutoTokenizer, pipeline
    repo_id, branch, texts = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    model = AutoModel.from_pretrained(repo_id, trust_remote_code=True, revision=branch).eval()
    tokenizer = AutoTokenizer.from_pretrained(repo_id, trust_remote_code=True, revision=branch)
    with torch.no_grad():
        logits = model(**tokenizer(texts, padding=True, return_tensors="pt")).logits
    classifier = pipeline("multitask-classification", model=repo_id, trust_remote_code=True, revision=branch)
    print(json.dumps({
        "model_class": type(model).__module__ + "." + type(model).__name__,
        "logits": {task: value.tolist() for task, value in logits.items()},
        "pipeline": classifier(texts, top_k=None, threshold=0.0),
    }))
    """
)


class Hub:
    """The test server and its URL."""

    def __init__(self, server: HubServer, url: str):
        self.server, self.url = server, url

    def commits(self, repo_id: str, branch: str) -> list[str]:
        return self.server.commits(repo_id, branch)


def api_for(hub) -> HfApi:
    return HfApi(endpoint=hub.url, token="test-token")


def remote_files(hub, repo_id, branch):
    return sorted(name for name in api_for(hub).list_repo_files(repo_id, revision=branch) if name != ".gitattributes")


def remote_text(hub, repo_id, branch, name, tmp_path):
    path = api_for(hub).hf_hub_download(repo_id, name, revision=branch, cache_dir=tmp_path / "dl")
    return Path(path).read_text(encoding="utf-8")


def publish(hub, folder, repo_id, **kwargs):
    kwargs.setdefault("card_data", CARD)
    return publish_model(folder, repo_id, endpoint=hub.url, token="test-token", **kwargs)


def load_in_fresh_process(hub, repo_id, branch, tmp_path):
    # HF_ENDPOINT is read when huggingface_hub is imported, so it is set in the environment of a new process.
    out = run_fresh(
        LOAD_FROM_HUB,
        repo_id,
        branch,
        json.dumps(TEXTS),
        cwd=tmp_path,
        HF_ENDPOINT=hub.url,
        HF_HUB_DISABLE_XET="1",
        HF_HUB_OFFLINE="0",
        HF_TOKEN="test-token",
    )
    return json.loads(out.splitlines()[-1])


def script_main(name: str):
    """The `main(argv)` of `scripts/<name>.py`, loaded from its file: a CLI test without a subprocess."""
    spec = importlib.util.spec_from_file_location(f"polyhead_script_{name}", ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def save_tiny_folder(folder, seed=0, **kwargs):
    """A tiny random model folder written by `save_model_folder` (its weights depend on `seed`)."""
    torch.manual_seed(seed)
    return save_model_folder(MultitaskModel(tiny_multitask_config()), tiny_tokenizer(), folder, **kwargs)


def truncate_file(path, keep=0.5):
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[: int(len(data) * keep)])
