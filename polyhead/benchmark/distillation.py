"""Distillation benchmark: classifiers trained separately, merged into one polyhead model, measured end to end.

1. Each teacher is trained with the plain transformers recipe (`AutoModelForSequenceClassification` and `Trainer`,
   the encoder's own pooler and head), as a team that runs separate classifiers would have trained it, on one task of
   `../shared/data` (its train rows, seeded shuffle, the first N; labels sorted). A teacher folder written with the
   same settings is reused.
2. `polyhead.distill` distils them into one polyhead model on the union of the tasks' train texts, unlabeled (plus
   any `extra_texts`), and measures agreement on the union of their test texts: texts neither side trained on.
3. The report: per task the teacher's and the student's test accuracy, the agreement (all held-out texts and where
   the teacher is confident), the student's speed against the teachers run one after another, and the targets of
   issue 28 (accuracy within 1.0 point, agreement >= 95%, speed >= 0.9 x N) met or not.

Entry point: `scripts/bench_distill.py`.
"""

import dataclasses
import hashlib
import json
import os
import random
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from polyhead.benchmark.choose import cpu_description
from polyhead.benchmark.inputs import DEFAULT_DATA_DIR, read_jsonl, write_synthetic_tasks
from polyhead.benchmark.plots import _pyplot, _save
from polyhead.presets import TINY_ENCODER
from polyhead.remote_code import check_task_name


TEACHERS = ("sentiment=sst2:4000", "question=trec", "emotion=tweet_emotion", "spam=sms_spam:1000")
STAMP = "benchmark_teacher.json"  # the settings a teacher folder was trained with (reused only when they match)
ACCURACY_WITHIN, AGREEMENT_AT_LEAST, SPEEDUP_PER_TEACHER = 1.0, 0.95, 0.9  # issue 28's targets


@dataclasses.dataclass
class DistillBenchSettings:
    """What the benchmark trains (the defaults: the measured run of docs/distillation.md)."""

    encoder: str = "all-MiniLM-L6-v2"  # every teacher's and the student's starting encoder
    teachers: Sequence[str] = TEACHERS  # name=task[:train rows]
    teacher_epochs: float = 3.0
    teacher_learning_rate: float = 5e-5
    teacher_batch_size: int = 16
    epochs: float = 3.0  # the student's
    learning_rate: float = 1e-4
    batch_size: int = 32
    max_length: int = 64  # the student's and the teachers' (training and labelling)
    temperature: float = 2.0
    extra_texts: Sequence[str] = ()  # more unlabeled text files for the student
    bf16: bool = True  # teachers' and student's training (the speed comparison runs float32 on both sides)
    speed_texts: int = 1000
    speed_rounds: int = 5
    max_held_out: int = 5000
    num_threads: int | None = 2
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {key: list(value) if isinstance(value, tuple) else value for key, value in vars(self).items()}


TINY = {
    "encoder": TINY_ENCODER,
    "teachers": ("sentiment=tiny_sentiment", "topic=tiny_topic:48"),
    "teacher_epochs": 1.0,
    "teacher_learning_rate": 1e-3,
    "epochs": 1.0,
    "learning_rate": 1e-3,
    "batch_size": 16,
    "max_length": 16,
    "bf16": False,
    "speed_texts": 16,
    "speed_rounds": 1,
    "max_held_out": 64,
    "num_threads": 1,
}
_TINY_LABELS = {"tiny_sentiment": ["good", "bad"], "tiny_topic": ["sport", "tech", "money"]}


def write_tiny_data(folder: str | os.PathLike) -> Path:
    """Synthetic tasks over the tiny tokenizer's words (the label word is in the text) for the `--tiny` smoke run."""
    return write_synthetic_tasks(folder, _TINY_LABELS, {"train": 64, "validation": 16, "test": 24})


def parse_teachers(teachers: Sequence[str], data_dir: str | os.PathLike) -> list[tuple[str, str, int | None]]:
    """`name=task[:rows]` entries as `(name, task, rows)`, each task checked: a single-label, single-text task folder
    of `data_dir` with train and test splits."""
    parsed = []
    for entry in teachers:
        name, _, rest = entry.partition("=")
        task, _, rows = rest.partition(":")
        if not name or not task or (rows and not rows.isdigit()):
            raise ValueError(f"Teacher {entry!r}: write name=task or name=task:rows (e.g. sentiment=sst2:4000).")
        check_task_name(name)  # the student's task name, and the teacher's folder name
        folder = Path(data_dir) / task
        missing = [split for split in ("train", "test") if not (folder / f"{split}.jsonl").is_file()]
        if missing:
            raise FileNotFoundError(f"Teacher {name}: no {missing} split in {folder}; give --data-dir.")
        first = read_jsonl(folder / "train.jsonl")[0]
        if "label" not in first or "text_pair" in first:
            raise ValueError(
                f"Teacher {name}: {task} is not a single-label, single-text task (its rows: {sorted(first)}); "
                "the benchmark's teachers are plain sequence classifiers of one text."
            )
        parsed.append((name, task, int(rows) if rows else None))
    if len({name for name, _, _ in parsed}) < len(parsed):
        raise ValueError(f"Teacher names must differ: {[name for name, _, _ in parsed]}.")
    return parsed


def teacher_stamp(task: str, rows: int | None, settings: DistillBenchSettings, train_file: Path) -> dict[str, Any]:
    """Everything a teacher's weights depend on (its train file by content); a folder with another stamp is
    retrained."""
    keys = ("encoder", "teacher_epochs", "teacher_learning_rate", "teacher_batch_size", "max_length", "bf16", "seed")
    data = hashlib.sha256(train_file.read_bytes()).hexdigest()
    return {"task": task, "rows": rows, "train_sha256": data, **{key: getattr(settings, key) for key in keys}}


def train_teacher(
    task: str, rows: int | None, settings: DistillBenchSettings, data_dir: str | os.PathLike, folder: Path
) -> bool:
    """Trains one teacher into `folder` with the plain transformers recipe, unless the folder already holds one
    trained with the same settings; returns whether it trained. The folder appears whole or not at all."""
    import datasets
    import torch
    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

    train_file = Path(data_dir) / task / "train.jsonl"
    stamp = teacher_stamp(task, rows, settings, train_file)
    if (folder / STAMP).is_file() and json.loads((folder / STAMP).read_text(encoding="utf-8")) == stamp:
        return False
    train = read_jsonl(train_file)
    random.Random(settings.seed).shuffle(train)
    train = train[:rows] if rows else train
    labels = sorted({row["label"] for row in train})
    if len(labels) < 2:
        raise ValueError(f"{task} has one label in its first {len(train)} train row(s): a classifier needs two.")
    torch.manual_seed(settings.seed)
    model, tokenizer = _teacher_start(settings.encoder, labels)
    dataset = datasets.Dataset.from_dict(
        {"text": [row["text"] for row in train], "label": [labels.index(row["label"]) for row in train]}
    ).map(
        lambda batch: tokenizer(batch["text"], truncation=True, max_length=settings.max_length),
        batched=True,
        remove_columns=["text"],
    )
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    args = TrainingArguments(
        str(partial / "run"),
        num_train_epochs=settings.teacher_epochs,
        per_device_train_batch_size=settings.teacher_batch_size,
        learning_rate=settings.teacher_learning_rate,
        bf16=settings.bf16,
        use_cpu=True,
        seed=settings.seed,
        report_to="none",
        save_strategy="no",
        logging_strategy="no",
        disable_tqdm=True,
    )
    try:
        trainer = Trainer(
            model=model, args=args, train_dataset=dataset, data_collator=DataCollatorWithPadding(tokenizer)
        )
        trainer.train()
        shutil.rmtree(partial / "run")
        model.save_pretrained(partial)
        tokenizer.save_pretrained(partial)
        (partial / STAMP).write_text(json.dumps(stamp, indent=2) + "\n", encoding="utf-8")
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)
    return True


def _teacher_start(encoder: str, labels: list[str]):
    """A fresh sequence classifier on `encoder` (the tiny preset built locally) and its tokenizer."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, BertForSequenceClassification

    from polyhead.encoders import resolve_encoder
    from polyhead.presets import tiny_encoder_config, tiny_tokenizer

    label_maps = {"id2label": dict(enumerate(labels)), "label2id": {label: i for i, label in enumerate(labels)}}
    if encoder == TINY_ENCODER:
        config = tiny_encoder_config()
        config.id2label, config.label2id = label_maps["id2label"], label_maps["label2id"]
        return BertForSequenceClassification(config), tiny_tokenizer()
    path = resolve_encoder(encoder)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=len(labels), **label_maps)
    return model, AutoTokenizer.from_pretrained(path)


def distill_arguments(
    settings: DistillBenchSettings, teachers: Sequence[tuple[str, str, int | None]], data_dir: Path, work_dir: Path
) -> list[str]:
    """The `scripts/distill.py` command line of the benchmark's student."""
    argv = [arg for name, _, _ in teachers for arg in ("--teacher", f"{name}={work_dir / 'teachers' / name}")]
    argv += ["--texts", *(str(data_dir / task / "train.jsonl") for _, task, _ in teachers), *settings.extra_texts]
    argv += ["--held_out_texts", *(str(data_dir / task / "test.jsonl") for _, task, _ in teachers)]
    argv += ["--tasks", *(f"{name}={data_dir / task}" for name, task, _ in teachers)]
    values = {
        "max_held_out": settings.max_held_out,
        "encoder_name_or_path": settings.encoder,
        "max_length": settings.max_length,
        "teacher_max_length": settings.max_length,
        "distill_temperature": settings.temperature,
        "num_train_epochs": settings.epochs,
        "learning_rate": settings.learning_rate,
        "per_device_train_batch_size": settings.batch_size,
        "teacher_batch_size": settings.batch_size,
        "bf16": str(settings.bf16).lower(),
        "use_cpu": "true",
        "speed_texts": settings.speed_texts,
        "speed_rounds": settings.speed_rounds,
        "seed": settings.seed,
        "report_to": "none",
        "disable_tqdm": "true",
        "teacher_cache_dir": work_dir / "teacher_outputs",
        "output_dir": work_dir / "student",
    }
    if settings.num_threads:
        values["num_threads"] = settings.num_threads
    return argv + [arg for key, value in values.items() for arg in (f"--{key}", str(value))]


def summarize(distillation: dict[str, Any]) -> dict[str, Any]:
    """Per task: teacher and student test accuracy (points), their difference, the agreements, each target met or
    not; the speed-up against its target."""
    tasks = {}
    for task, agreement in distillation["agreement"].items():
        test = distillation["test"].get(task, {})
        teacher, student = test.get("teacher", {}).get("accuracy"), test.get("student", {}).get("accuracy")
        difference = None if teacher is None or student is None else 100 * (student - teacher)
        confident = agreement.get("confident") or {}
        tasks[task] = {
            "teacher_accuracy": None if teacher is None else 100 * teacher,
            "student_accuracy": None if student is None else 100 * student,
            "difference": difference,
            "agreement": agreement["value"],
            "held_out": agreement["n"],
            "confident_agreement": confident.get("agreement"),
            "confident_n": confident.get("n"),
            "test_agreement": test.get("agreement"),  # on the task's own test rows
            "accuracy_met": difference is not None and difference >= -ACCURACY_WITHIN,
            "agreement_met": agreement["value"] >= AGREEMENT_AT_LEAST,
        }
    speed = distillation["speed"]
    target = SPEEDUP_PER_TEACHER * speed["num_teachers"]
    return {
        "tasks": tasks,
        "speedup": speed["speedup"],
        "speedup_target": target,
        "speed_met": speed["speedup"] >= target,
    }


def distill_table(report: dict[str, Any]) -> str:
    """The report as Markdown: one row per task, then the speed and the targets."""
    summary, speed = report["summary"], report["distillation"]["speed"]
    lines = [
        "| task (teacher's data) | teacher test acc | student test acc | difference | agreement, held-out texts "
        "| where the teacher is confident (margin >= 0.5) | its own test rows |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]

    def points(value: float | None, signed: bool = False) -> str:
        return "-" if value is None else f"{value:{'+' if signed else ''}.1f}"

    def percent(share: float | None) -> str:
        return "-" if share is None else f"{100 * share:.1f}%"

    for task, row in summary["tasks"].items():
        confident = percent(row["confident_agreement"])
        lines.append(
            f"| `{task}` ({report['teachers'][task]['task']}) | {points(row['teacher_accuracy'])} "
            f"| {points(row['student_accuracy'])} | {points(row['difference'], True)} "
            f"| {100 * row['agreement']:.1f}% ({row['held_out']:,}) | {confident} ({row['confident_n'] or 0:,}) "
            f"| {percent(row['test_agreement'])} |"
        )
    tasks = summary["tasks"].values()
    lines += [
        "",
        f"Speed on {speed['texts']:,} held-out texts (batch {speed['batch_size']}, {speed['torch_threads']} "
        f"thread(s)): student {speed['student_texts_per_second']:.1f} texts/s, the {speed['num_teachers']} teachers "
        f"one after another {speed['teachers_texts_per_second']:.1f} texts/s: **{speed['speedup']:.2f}x**.",
        "",
        f"Targets: test accuracy within {ACCURACY_WITHIN} point of each teacher: "
        f"{_met(all(row['accuracy_met'] for row in tasks))}; agreement >= {100 * AGREEMENT_AT_LEAST:.0f}%: "
        f"{_met(all(row['agreement_met'] for row in tasks))} "
        f"({sum(row['agreement_met'] for row in tasks)} of {len(summary['tasks'])} tasks); speed >= "
        f"{summary['speedup_target']:.1f}x: {_met(summary['speed_met'])}.",
    ]
    return "\n".join(lines)


def _met(met: bool) -> str:
    return "met" if met else "not met"


def plot_distillation(report: dict[str, Any], path: str | os.PathLike) -> Path:
    """Two panels: teacher vs student test accuracy per task; agreement (all held-out texts, and where the teacher is
    confident) per task against the 95% target."""
    plt, tasks = _pyplot(), report["summary"]["tasks"]
    names = list(tasks)
    figure, (accuracy, agreement) = plt.subplots(1, 2, figsize=(max(8, 2.4 * len(names)), 3.6))
    for axis, bars, ylabel in (
        (accuracy, (("teacher", "teacher_accuracy", 1), ("student", "student_accuracy", 1)), "test accuracy (%)"),
        (
            agreement,
            (("all held-out", "agreement", 100), ("teacher confident", "confident_agreement", 100)),
            "agreement with the teacher (%)",
        ),
    ):
        shown = []
        for offset, (label, key, scale) in zip((-0.2, 0.2), bars):
            values = [None if tasks[name][key] is None else scale * tasks[name][key] for name in names]
            shown += [value for value in values if value is not None]
            heights = [float("nan") if value is None else value for value in values]  # no bar where unmeasured
            drawn = axis.bar([i + offset for i in range(len(names))], heights, 0.4, label=label)
            labels = ["" if value is None else f"{value:.1f}" for value in values]
            axis.bar_label(drawn, labels=labels, fontsize="x-small")
        axis.set_xticks(range(len(names)), names)
        axis.set(ylabel=ylabel, ylim=(max(0, min(shown, default=50) - 10), 102))
        axis.legend(fontsize="small", loc="lower left")
    agreement.axhline(100 * AGREEMENT_AT_LEAST, color="grey", linestyle="--", linewidth=1)
    speedup = report["summary"]["speedup"]
    figure.suptitle(f"{len(names)} teachers -> one student: {speedup:.2f}x the teachers run one after another")
    return _save(figure, Path(path))


def save_report(report: dict[str, Any], output: str | os.PathLike) -> list[Path]:
    """Writes the JSON report and beside it the Markdown table (`.md`) and the plot (`.png`)."""
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    table = output.with_suffix(".md")
    table.write_text(distill_table(report) + "\n", encoding="utf-8")
    return [output, table, plot_distillation(report, output.with_suffix(".png"))]


def run_distill_bench(
    settings: DistillBenchSettings,
    data_dir: str | os.PathLike = DEFAULT_DATA_DIR,
    work_dir: str | os.PathLike = "outputs/distill_bench",
    output: str | os.PathLike = "outputs/distill_bench.json",
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    r"""
    Runs the benchmark (module docstring), writes the report and returns it. Teachers stay in `work_dir/teachers`
    (reused by a later run with the same settings), their outputs in `work_dir/teacher_outputs` (the distillation
    cache), the student in `work_dir/student` (replaced by every run).

    Example:

    ```python
    >>> report = run_distill_bench(DistillBenchSettings(extra_texts=["traffic.jsonl"]))
    >>> report["summary"]["speedup"]
    ```
    """
    from polyhead.distill import format_distillation_table, parse_distill_args, run
    from polyhead.distill.corpus import load_corpus

    data_dir, work_dir, started = Path(data_dir), Path(work_dir), time.time()
    teachers = parse_teachers(settings.teachers, data_dir)
    if settings.extra_texts:
        load_corpus(list(settings.extra_texts))  # an unreadable file fails now, not after the teachers trained
    report = {
        "settings": settings.to_dict(),
        "data_dir": str(data_dir),
        "machine": cpu_description(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "teachers": {},
    }
    for name, task, rows in teachers:
        began = time.time()
        trained = train_teacher(task, rows, settings, data_dir, work_dir / "teachers" / name)
        seconds = round(time.time() - began)
        report["teachers"][name] = {"task": task, "train_rows": rows, "trained": trained, "seconds": seconds}
        log(f"Teacher {name} ({task}): {'trained' if trained else 'reused'} in {seconds} s")
    shutil.rmtree(work_dir / "student", ignore_errors=True)  # the previous run's student
    began = time.time()
    results = run(*parse_distill_args(distill_arguments(settings, teachers, data_dir, work_dir)))
    log(format_distillation_table(results))
    report["distillation"] = results["distillation"]
    report["student_dir"] = str(work_dir / "student" / "model")
    report["distill_seconds"] = round(time.time() - began)
    report["summary"] = summarize(results["distillation"])
    report["wall_seconds"] = round(time.time() - started)
    save_report(report, output)
    return report


__all__ = [
    "TEACHERS",
    "TINY",
    "DistillBenchSettings",
    "distill_arguments",
    "distill_table",
    "parse_teachers",
    "plot_distillation",
    "run_distill_bench",
    "save_report",
    "summarize",
    "train_teacher",
    "write_tiny_data",
]
