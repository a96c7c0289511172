r"""Seed-averaged multitask vs single-task comparison (`--single_task_baselines true --seeds N`).

One run per side measures seed noise as much as transfer at small data sizes. [`run_seeds`] trains, under each seed
`seed, seed + 1, ..., seed + N - 1` and otherwise identical arguments, the multitask model and one single-task model
per task (`polyhead.training.trainer.train_baselines`), on the SAME tokenized data (loaded, subsampled and tokenized
once: the seeds change the initialisation of the heads, dropout and the batch order, not the rows). Then
`polyhead.evaluation.comparison.compare_runs` reports per task, on the primary metric of the scored split (test by
default):

- the mean and sample standard deviation over seeds of the multitask model and of the single-task model;
- the paired difference (multitask minus single-task, seed by seed), its mean and a two-sided 95% Student t-interval
  `mean +- t(0.975, N - 1) * sd / sqrt(N)` (a t table, so scipy is not needed);
- a verdict: `better` when the interval lies above 0, `worse` when below, else `within noise`.

The same is reported for the average over tasks (per seed, the mean of the tasks' primary metrics).

Layout: the first seed is the main run (`output_dir`, `model_dir`, `<output_dir>/baselines/<task>`); seed `s` of the
others trains under `<output_dir>/seeds/seed-<s>/` (its model in `.../model`, its baselines in `.../baselines`). The
comparison is added to the main model's `results.json` under `"comparison"` (schema: `compare_runs`), which the
end-of-run table and the model card show. With `resume_from_checkpoint`, a run whose model folder already holds its
`results.json`, trained with the same settings (`RUN_SETTINGS`), is read, not retrained, and an unfinished one
resumes from its newest checkpoint.
"""

import dataclasses
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from transformers import PreTrainedTokenizerBase
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from polyhead.evaluation.comparison import compare_runs, format_seed_comparison_table
from polyhead.run_folder import (
    BASELINES_DIR,
    MODEL_DIR,
    RESULTS_FILE,
    read_baseline_results,
    read_results,
    read_training_args,
    write_results,
)
from polyhead.training.arguments import DataArguments, ModelArguments, MultitaskTrainingArguments


SEEDS_DIR = "seeds"


def seed_list(training_args: MultitaskTrainingArguments) -> list[int]:
    """The seeds of a comparison: `seed, seed + 1, ..., seed + seeds - 1`."""
    return [training_args.seed + i for i in range(training_args.seeds)]


def seed_arguments(training_args: MultitaskTrainingArguments, seed: int) -> MultitaskTrainingArguments:
    """The arguments of seed `seed`'s run: the main run's for the first seed, else the same under
    `<output_dir>/seeds/seed-<seed>/` with that seed."""
    if seed == training_args.seed:
        return training_args
    folder = os.path.join(training_args.output_dir, SEEDS_DIR, f"seed-{seed}")
    return dataclasses.replace(training_args, seed=seed, output_dir=folder, model_dir=os.path.join(folder, MODEL_DIR))


# The training settings a finished run must share with the current arguments to be reused instead of retrained.
RUN_SETTINGS = (
    "seed",
    "data_seed",
    "learning_rate",
    "num_train_epochs",
    "max_steps",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "weight_decay",
    "warmup_ratio",
    "warmup_steps",
    "lr_scheduler_type",
    "loss_balancing",
    "balancing_learning_rate",
    "head_learning_rate",
    "pcgrad",
)


def finished_results(
    model_dir: str | os.PathLike, training_args: MultitaskTrainingArguments | None = None
) -> dict[str, Any] | None:
    """The results of a finished run (its model folder is written atomically once scored), else `None`; with
    `training_args`, only when the run's recorded settings ([`RUN_SETTINGS`]) are those (a run continued with a larger
    budget, or with another rate, is not finished)."""
    if not (Path(model_dir) / "config.json").is_file():
        return None
    results = read_results(model_dir)
    if results is None or training_args is None:
        return results
    recorded = (read_training_args(model_dir) or {}).get("training", {})
    current = json.loads(json.dumps(training_args.to_dict(), default=str))
    if any(recorded.get(key) != current.get(key) for key in RUN_SETTINGS):
        return None
    return results


def count_trainings(
    training_args: MultitaskTrainingArguments,
    tasks: Sequence[str],
    model_args: ModelArguments | None = None,
    data_args: DataArguments | None = None,
) -> tuple[int, int]:
    """`(trainings of the comparison, how many of them are finished and will be reused)`; with `model_args` and
    `data_args`, a finished run of other model or data settings, or other tasks, is refused
    ([`check_finished_settings`])."""
    total = finished = 0
    reuse = bool(training_args.resume_from_checkpoint)
    for seed in seed_list(training_args):
        args = seed_arguments(training_args, seed)
        folders = {args.model_dir: list(tasks)}
        folders.update({os.path.join(args.output_dir, BASELINES_DIR, task, MODEL_DIR): [task] for task in tasks})
        total += len(folders)
        for folder, trained in folders.items():
            if reuse and finished_results(folder, args) is not None:
                finished += 1
                if model_args is not None and data_args is not None:
                    check_finished_settings(folder, model_args, data_args, trained)
    return total, finished


def check_finished_settings(
    model_dir: str | os.PathLike, model_args: ModelArguments, data_args: DataArguments, tasks: Sequence[str]
) -> None:
    """Refuses to reuse a finished run whose recorded model or data settings (`training_args.json`) or tasks are not
    this run's: its results would enter the comparison as if trained with them."""
    recorded = read_training_args(model_dir) or {}
    given = {
        part: {f.name: getattr(args, f.name) for f in dataclasses.fields(args) if f.name != "tasks"}
        for part, args in (("model", model_args), ("data", data_args))
    }
    current = json.loads(json.dumps(given, default=str))
    resolved = {"pooling", "classifier_dropout"}  # recorded as the model resolved them: a None here is "the default"
    differ = [
        f"{key} {recorded.get(part, {}).get(key)!r} there, {value!r} here"
        for part in ("model", "data")
        for key, value in current[part].items()
        if recorded.get(part, {}).get(key) != value and not (key in resolved and value is None)
    ]
    if sorted(recorded.get("tasks") or {}) != sorted(tasks):
        differ.append(f"tasks {sorted(recorded.get('tasks') or {})} there, {sorted(tasks)} here")
    if differ:
        raise ValueError(
            f"Cannot reuse the finished run in {model_dir}: it was trained with other settings ({'; '.join(differ)}). "
            "Resume with the settings it was trained with, or compare afresh in another --output_dir."
        )


def check_seed_locations(training_args: MultitaskTrainingArguments) -> None:
    """Refuses a `model_dir` inside `<output_dir>/seeds`, where the other seeds' runs are written."""
    seeds_path = (Path(training_args.output_dir) / SEEDS_DIR).resolve()
    model_path = Path(training_args.model_dir).resolve()
    if seeds_path == model_path or seeds_path in model_path.parents:
        raise ValueError(
            f"model_dir {training_args.model_dir!r} is where the other seeds' runs are trained "
            f"({training_args.output_dir}/{SEEDS_DIR}): use the default <output_dir>/model."
        )


def run_seeds(
    prepared: Any,
    tokenizer: PreTrainedTokenizerBase,
    model_args: ModelArguments,
    data_args: DataArguments,
    training_args: MultitaskTrainingArguments,
    train_and_evaluate: Callable[..., dict[str, Any]],
    train_baselines: Callable[..., dict[str, Any]],
) -> dict[str, Any]:
    r"""
    Trains (or, resuming, reads) the multitask model and every single-task baseline under each seed on the shared
    `prepared` tasks, and adds the comparison to the main model's `results.json`. Returns `{"multitask": main
    results (with "comparison"), "baselines": the first seed's baseline results, "comparison": ..., "runs":
    [{"seed", "multitask", "baselines"}]}` (empty results on processes other than the main one).
    `train_and_evaluate` and `train_baselines` are `polyhead.training.trainer`'s (which calls this).
    """
    check_seed_locations(training_args)
    seeds = seed_list(training_args)
    tasks = list(prepared.data)
    total, finished = count_trainings(training_args, tasks, model_args, data_args)
    if training_args.process_index == 0:
        print(
            f"Multitask vs single-task comparison: {len(seeds)} seeds x (1 multitask + {len(tasks)} single-task "
            f"models) = {total} trainings" + (f", {finished} already finished (reused)" if finished else "") + ".",
            flush=True,
        )
    reuse = bool(training_args.resume_from_checkpoint)
    runs = []
    for seed in seeds:
        args = seed_arguments(training_args, seed)
        multitask = finished_results(args.model_dir, args) if reuse else None
        if multitask is not None and training_args.process_index != 0:
            multitask = {}  # read on the main process only, as trained runs return results there only
        if multitask is None:
            resume = "true" if reuse and _has_checkpoint(args.output_dir) else None
            multitask = train_and_evaluate(
                prepared, tokenizer, model_args, data_args, dataclasses.replace(args, resume_from_checkpoint=resume)
            )
        baselines = train_baselines(prepared, tokenizer, model_args, data_args, args)
        if not multitask:  # not the main process
            continue
        baselines = baselines if baselines.get("tasks") else (read_baseline_results(args.model_dir) or {})
        runs.append({"seed": seed, "multitask": multitask, "baselines": baselines})
    if not runs:
        return {"multitask": {}, "baselines": None, "comparison": None, "runs": []}
    comparison = compare_runs([(run["multitask"], run["baselines"]) for run in runs], seeds)
    main = dict(runs[0]["multitask"])
    main["comparison"] = comparison
    write_results(main, training_args.model_dir, RESULTS_FILE)
    return {"multitask": main, "baselines": runs[0]["baselines"], "comparison": comparison, "runs": runs}


def _has_checkpoint(output_dir: str) -> bool:
    return any(path.is_dir() for path in Path(output_dir).glob(f"{PREFIX_CHECKPOINT_DIR}-*"))


__all__ = [
    "SEEDS_DIR",
    "check_finished_settings",
    "compare_runs",
    "count_trainings",
    "finished_results",
    "format_seed_comparison_table",
    "run_seeds",
    "seed_arguments",
    "seed_list",
]
