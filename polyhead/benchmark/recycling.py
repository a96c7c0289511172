"""Recycling: is the multitask model's encoder a better starting point for NEW tasks than the encoder it started from?

tasknet/tasksource's card reports +1.41 points averaged over 36 held-out datasets (IBM's model-recycling evaluation)
for its multitask encoder over its base. [`run_recycling`] measures the same thing here, end to end:

1. train a multitask model on the source tasks (`polyhead.training.trainer.run`, every task capped by
   `max_train_samples_per_task`);
2. export its encoder alone (`polyhead.exporters.encoder.export_encoder`);
3. fine-tune, with identical settings and seeds, both the raw encoder and the exported one on each target task (tasks
   NOT in the multitask model), and score the test split.

The report gives per-task and average test accuracy (mean ± sample standard deviation over the seeds), and the paired
difference (same seed, same rows, same head initialisation: only the starting encoder differs). Tasks are folders of
`train/validation/test.jsonl` files (the layout of `../shared/data`). Entry point: `scripts/bench_recycling.py`.
"""

import dataclasses
import json
import os
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from polyhead.benchmark.choose import cpu_description
from polyhead.benchmark.inputs import DEFAULT_DATA_DIR, read_jsonl, write_synthetic_tasks
from polyhead.benchmark.plots import _pyplot, _save
from polyhead.presets import TINY_ENCODER
from polyhead.run_folder import read_json, read_results


SOURCE_TASKS = ("tweet_emotion", "tweet_hate", "tweet_offensive", "go_emotions", "sick_nli", "trec")
TARGET_TASKS = ("sst2", "sms_spam", "trec_fine")
RAW, RECYCLED = "raw", "multitask"  # the two starting points, as the report names them
SPLITS = ("train", "validation", "test")


@dataclasses.dataclass
class RecyclingSettings:
    """What the benchmark trains. The defaults are bounded for 2 busy shared CPU cores (about 12k training examples in
    all, [`run_recycling`] prints the cost first); raise the sample counts where there is compute to spare."""

    encoder: str = "all-MiniLM-L6-v2"
    source_tasks: Sequence[str] = SOURCE_TASKS
    target_tasks: Sequence[str] = TARGET_TASKS
    seeds: Sequence[int] = (0, 1, 2)
    source_train_samples: int = 800  # max_train_samples_per_task of the multitask run
    source_epochs: float = 1.0
    target_train_samples: int = 200  # a small train set: where a better start matters most
    target_epochs: float = 2.0
    eval_samples: int | None = 300  # test rows scored per target task (drawn by the run's seed; None: all)
    source_eval_samples: int = 1000  # test rows the multitask model is scored on per source task (for the record)
    max_length: int = 32  # questions and most sentences fit; long tweets and SMS are cut (the same for both starts)
    batch_size: int = 32
    learning_rate: float = 1.0e-4
    seed: int = 42  # the multitask run's seed
    num_threads: int | None = 2

    def to_dict(self) -> dict[str, Any]:
        return {key: list(value) if isinstance(value, tuple) else value for key, value in vars(self).items()}


TINY = {
    "encoder": TINY_ENCODER,
    "source_tasks": ("src_sentiment", "src_topic"),
    "target_tasks": ("tgt_sentiment", "tgt_topic"),
    "seeds": (0, 1),
    "source_train_samples": 64,
    "target_train_samples": 48,
    "target_epochs": 1.0,
    "source_eval_samples": 32,
    "max_length": 16,
    "batch_size": 16,
    "learning_rate": 1.0e-3,
    "num_threads": 1,
}
_TINY_LABELS = {
    "src_sentiment": ["good", "bad"],
    "src_topic": ["sport", "tech", "money"],
    "tgt_sentiment": ["love", "hate"],
    "tgt_topic": ["movie", "food", "phone", "book"],
}


def write_tiny_data(folder: str | os.PathLike) -> Path:
    """Synthetic tasks over the tiny tokenizer's words (the label word is in the text) for the `--tiny` smoke run."""
    return write_synthetic_tasks(folder, _TINY_LABELS, {"train": 80, "validation": 16, "test": 32})


def task_spec(name: str, data_dir: str | os.PathLike, max_train_samples: int | None = None) -> dict[str, Any]:
    """The `TaskSpec` dict of a data folder `<data_dir>/<name>/{train,validation,test}.jsonl`: `labels` rows are
    multi-label, `text_pair` rows sentence pairs (read from its first train row)."""
    folder = Path(data_dir) / name
    if not (folder / "train.jsonl").is_file():
        raise FileNotFoundError(f"No {folder}/train.jsonl: give --data-dir, the folder holding the task folders.")
    first = read_jsonl(folder / "train.jsonl")[0]
    spec = {
        "name": name,
        "data_files": {s: str(folder / f"{s}.jsonl") for s in SPLITS if (folder / f"{s}.jsonl").is_file()},
    }
    if "labels" in first:
        spec["label_column"] = "labels"
    if "text_pair" in first:
        spec["text_pair_column"] = "text_pair"
    if max_train_samples is not None:
        spec["max_train_samples"] = max_train_samples
    return spec


def _common(settings: RecyclingSettings, output_dir: Path, seed: int) -> dict[str, Any]:
    # The training arguments shared by the multitask run and every fine-tuning run (keys of scripts/train.py).
    return {
        "max_length": settings.max_length,
        "output_dir": str(output_dir),
        "per_device_train_batch_size": settings.batch_size,
        "per_device_eval_batch_size": 64,
        "learning_rate": settings.learning_rate,
        "warmup_steps": 0.1,
        "weight_decay": 0.01,
        "lr_scheduler_type": "linear",
        "eval_strategy": "no",
        "save_strategy": "no",
        "logging_steps": 50,
        "report_to": "none",
        "disable_tqdm": True,
        "seed": seed,
        "num_threads": settings.num_threads,
    }


def multitask_config(settings: RecyclingSettings, data_dir: str | os.PathLike, work_dir: Path) -> dict[str, Any]:
    """The multitask run: every source task, each capped at `source_train_samples` train rows."""
    return {
        **_common(settings, work_dir / "multitask", settings.seed),
        "encoder_name_or_path": settings.encoder,
        "tasks": [task_spec(name, data_dir) for name in settings.source_tasks],
        "max_train_samples_per_task": settings.source_train_samples,
        "max_eval_samples": settings.source_eval_samples,
        "sampling": "proportional",
        "num_train_epochs": settings.source_epochs,
    }


def finetune_config(
    settings: RecyclingSettings, encoder: str, task: str, seed: int, data_dir: str | os.PathLike, output_dir: Path
) -> dict[str, Any]:
    """One fine-tuning run: one target task from `encoder`; everything but `encoder` is the same for both starts."""
    return {
        **_common(settings, output_dir, seed),
        "encoder_name_or_path": encoder,
        "tasks": [task_spec(task, data_dir, settings.target_train_samples)],
        "max_eval_samples": settings.eval_samples,
        "num_train_epochs": settings.target_epochs,
    }


def train(config: dict[str, Any]) -> dict[str, Any]:
    """`polyhead.training.trainer.run` on a config dict (written next to the run, parsed as scripts/train.py does)."""
    from polyhead.training.arguments import parse_args
    from polyhead.training.trainer import run

    config_file = Path(config["output_dir"]) / "recycling_config.json"
    config_file.parent.mkdir(parents=True, exist_ok=True)
    config_file.write_text(json.dumps(config, indent=2), encoding="utf-8")
    return run(*parse_args([str(config_file)]))["multitask"]


def _rows(path: str) -> int:
    with open(path, encoding="utf-8") as handle:
        return sum(1 for line in handle if line.strip())


def reuse_multitask_model(config: dict[str, Any]) -> dict[str, Any]:
    """The results of the multitask model an earlier run trained with exactly `config`; a `ValueError` otherwise."""
    folder = Path(config["output_dir"])
    recorded = read_json(folder / "recycling_config.json")
    results = read_results(folder / "model")
    if recorded is None or results is None:
        raise ValueError(f"No trained multitask model in {folder}: run once without --reuse-multitask.")
    changed = {key for key in {*recorded, *config} if recorded.get(key) != json.loads(json.dumps(config.get(key)))}
    changed = sorted(changed - {"output_dir"})  # the same model reached through another work folder (a link)
    if changed:
        raise ValueError(f"The multitask model in {folder} was trained with other settings ({', '.join(changed)}).")
    return results


def estimate_cost(settings: RecyclingSettings, data_dir: str | os.PathLike) -> dict[str, Any]:
    """Training runs and examples the benchmark will process (train rows are upper bounds before carving)."""

    def rows(name: str, split: str) -> int:
        path = Path(data_dir) / name / f"{split}.jsonl"
        return _rows(str(path)) if path.is_file() else 0

    source = sum(min(rows(t, "train"), settings.source_train_samples) for t in settings.source_tasks)
    target = sum(min(rows(t, "train"), settings.target_train_samples) for t in settings.target_tasks)
    scored = sum(min(rows(t, "test"), settings.eval_samples or rows(t, "test")) for t in settings.target_tasks)
    runs = 2 * len(settings.seeds)
    return {
        "training_runs": 1 + runs * len(settings.target_tasks),
        "multitask_train_examples": round(source * settings.source_epochs),
        "finetune_train_examples": round(runs * target * settings.target_epochs),
        "finetune_test_examples": runs * scored,
    }


def mean_std(values: Sequence[float]) -> dict[str, Any]:
    """`{"mean", "std", "values"}`: the sample standard deviation (n - 1), 0 for a single value."""
    values = [float(v) for v in values]
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"mean": statistics.fmean(values), "std": std, "values": values}


def summarize(runs: Sequence[dict[str, Any]], tasks: Sequence[str], seeds: Sequence[int]) -> dict[str, Any]:
    """Per task, and for the average over tasks: accuracy of each start over the seeds and their paired difference.
    The average is computed per seed (mean over tasks), then over seeds; only seeds with every run are used."""
    score = {(r["task"], r["start"], r["seed"]): r["accuracy"] for r in runs}
    complete = [s for s in seeds if all((t, start, s) in score for t in tasks for start in (RAW, RECYCLED))]
    summary: dict[str, Any] = {"seeds": complete, "tasks": {}}
    if not complete:
        return summary
    for task in tasks:
        raw, recycled = ([score[(task, start, s)] for s in complete] for start in (RAW, RECYCLED))
        summary["tasks"][task] = _row(raw, recycled)
    raw, recycled = (
        [statistics.fmean(score[(t, start, s)] for t in tasks) for s in complete] for start in (RAW, RECYCLED)
    )
    summary["average"] = _row(raw, recycled)
    return summary


def _row(raw: list[float], recycled: list[float]) -> dict[str, Any]:
    return {
        RAW: mean_std(raw),
        RECYCLED: mean_std(recycled),
        "difference": mean_std([b - a for a, b in zip(raw, recycled)]),
    }


def _cell(stats: dict[str, Any], signed: bool = False) -> str:
    return f"{100 * stats['mean']:{'+' if signed else ''}.2f} ± {100 * stats['std']:.2f}"


def recycling_table(report: dict[str, Any]) -> str:
    """Markdown: test accuracy (%) per target task and on average, mean ± std over the seeds, and the difference."""
    summary, encoder = report["summary"], report["settings"]["encoder"]
    lines = [
        f"| held-out task | raw {encoder} | multitask encoder | difference |",
        "|---|---|---|---|",
    ]
    rows = [*summary["tasks"].items()] + ([("**average**", summary["average"])] if "average" in summary else [])
    for task, row in rows:
        lines.append(f"| {task} | {_cell(row[RAW])} | {_cell(row[RECYCLED])} | {_cell(row['difference'], True)} |")
    return "\n".join(lines)


def plot_recycling(report: dict[str, Any], path: str | os.PathLike) -> Path:
    """Bars of test accuracy per target task and on average, raw vs multitask encoder, seed std as error bars."""
    plt, summary = _pyplot(), report["summary"]
    rows = [*summary["tasks"].items()] + ([("average", summary["average"])] if "average" in summary else [])
    figure, axis = plt.subplots(figsize=(max(5, 1.6 * len(rows)), 3.6))
    for offset, start, label in (
        (-0.2, RAW, f"raw {report['settings']['encoder']}"),
        (0.2, RECYCLED, "multitask encoder"),
    ):
        means = [100 * row[start]["mean"] for _, row in rows]
        errors = [100 * row[start]["std"] for _, row in rows]
        axis.bar([i + offset for i in range(len(rows))], means, 0.4, yerr=errors, capsize=3, label=label)
    for i, (_, row) in enumerate(rows):
        top = 100 * max(row[RAW]["mean"], row[RECYCLED]["mean"])
        axis.annotate(f"{100 * row['difference']['mean']:+.1f}", (i, top), ha="center", va="bottom", fontsize="small")
    low = min(100 * row[start]["mean"] for _, row in rows for start in (RAW, RECYCLED))
    axis.set(ylabel=f"test accuracy (%), {len(summary['seeds'])} seeds", ylim=(max(0, low - 10), 100))
    axis.set_xticks(range(len(rows)), [name for name, _ in rows])
    axis.legend(fontsize="small", loc="lower left")
    return _save(figure, Path(path))


def pending_note(report: dict[str, Any], json_name: str = "the JSON report") -> str:
    """The Markdown table's stand-in while no seed has all of its runs scored: how many runs are, out of how many."""
    planned = 2 * len(report["settings"]["seeds"]) * len(report["settings"]["target_tasks"])
    return (
        f"No complete seed yet: {len(report['runs'])} of {planned} fine-tuning runs scored (their scores are in "
        f"{json_name}); the table and the plot come once every run of a seed is."
    )


def save_report(report: dict[str, Any], output: str | os.PathLike) -> list[Path]:
    """Writes the JSON report and beside it the Markdown table (`.md`) and the plot (`.png`), the three always of the
    same run: before any seed has all its runs scored, the table is [`pending_note`] and no plot is left (an earlier
    run's plot there is removed)."""
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    table, plot = output.with_suffix(".md"), output.with_suffix(".png")
    if report["summary"].get("tasks"):
        table.write_text(recycling_table(report) + "\n", encoding="utf-8")
        return [output, table, plot_recycling(report, plot)]
    table.write_text(pending_note(report, output.name) + "\n", encoding="utf-8")
    plot.unlink(missing_ok=True)  # an earlier run's plot would pass for this one's
    return [output, table]


def run_recycling(
    settings: RecyclingSettings,
    data_dir: str | os.PathLike = DEFAULT_DATA_DIR,
    work_dir: str | os.PathLike = "outputs/recycling_work",
    output: str | os.PathLike = "outputs/recycling.json",
    log: Callable[[str], None] = print,
    reuse_multitask: bool = False,
) -> dict[str, Any]:
    r"""
    Runs the benchmark (module docstring) and returns the report; the JSON report (with the table and the plot beside
    it) is rewritten after every fine-tuning run, so an interrupted run keeps what it measured (`"complete": false`).
    The multitask model and its exported encoder stay in `work_dir`; each fine-tuned model is deleted once scored.
    With `reuse_multitask`, the multitask model already in `work_dir` is used (it must have been trained with the same
    multitask settings, which are checked) and only the fine-tuning runs are made.

    Example:

    ```python
    >>> report = run_recycling(RecyclingSettings(seeds=(0, 1, 2)), output="outputs/recycling.json")
    >>> report["summary"]["average"]["difference"]["mean"]
    ```
    """
    from polyhead.exporters.encoder import export_encoder

    start, work_dir = time.time(), Path(work_dir)
    for name in [*settings.source_tasks, *settings.target_tasks]:
        task_spec(name, data_dir)  # a missing task fails now, not after an hour of training
    overlap = sorted(set(settings.source_tasks) & set(settings.target_tasks))
    if overlap:
        raise ValueError(f"Target tasks must be held out of the multitask model; in both: {overlap}.")
    cost = estimate_cost(settings, data_dir)
    log(f"Cost: {json.dumps(cost)} (threads: {settings.num_threads})")
    report = {
        "settings": settings.to_dict(),
        "cost": cost,
        "data_dir": str(data_dir),
        "machine": cpu_description(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "runs": [],
        "summary": {},
        "complete": False,
    }
    config = multitask_config(settings, data_dir, work_dir)
    multitask = reuse_multitask_model(config) if reuse_multitask else train(config)
    model_dir, encoder_dir = work_dir / "multitask" / "model", work_dir / "encoder"
    if encoder_dir.exists():
        shutil.rmtree(encoder_dir)  # the encoder of an earlier run of this benchmark
    export_encoder(model_dir, encoder_dir)
    report["multitask"] = {
        "model_dir": str(model_dir),
        "encoder_dir": str(encoder_dir),
        "average": multitask["average"],
        "tasks": {task: scores.get("accuracy", scores.get("f1_micro")) for task, scores in multitask["tasks"].items()},
        "seconds": round(time.time() - start),
        "reused": reuse_multitask,
    }
    done = "reused" if reuse_multitask else "trained"
    log(f"Multitask model {done} and its encoder exported in {report['multitask']['seconds']} s: {encoder_dir}")
    starts = {RAW: settings.encoder, RECYCLED: str(encoder_dir)}
    for seed in settings.seeds:
        for task in settings.target_tasks:
            for start_name, encoder in starts.items():
                folder = work_dir / f"finetune_{task}_{start_name}_{seed}"
                began = time.time()
                results = train(finetune_config(settings, encoder, task, seed, data_dir, folder))
                scores = results["tasks"][task]
                report["runs"].append(
                    {
                        "task": task,
                        "start": start_name,
                        "seed": seed,
                        "accuracy": scores["accuracy"],
                        "f1_macro": scores.get("f1_macro"),
                        "test_examples": results["num_examples"][task],
                        "seconds": round(time.time() - began),
                    }
                )
                shutil.rmtree(folder, ignore_errors=True)
                log(f"seed {seed} {task} from {start_name}: accuracy {100 * scores['accuracy']:.2f}")
                report["summary"] = summarize(report["runs"], settings.target_tasks, settings.seeds)
                report["wall_seconds"] = round(time.time() - start)
                save_report(report, output)
    report["complete"] = True
    save_report(report, output)
    return report


__all__ = [
    "RAW",
    "RECYCLED",
    "SOURCE_TASKS",
    "TARGET_TASKS",
    "TINY",
    "RecyclingSettings",
    "estimate_cost",
    "finetune_config",
    "mean_std",
    "multitask_config",
    "pending_note",
    "plot_recycling",
    "recycling_table",
    "run_recycling",
    "save_report",
    "summarize",
    "task_spec",
    "write_tiny_data",
]
