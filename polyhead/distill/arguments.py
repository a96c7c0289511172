"""Arguments of a distillation run: the teachers and texts ([`DistillArguments`]) beside the training run's own
dataclasses (`polyhead.training.arguments`: the student is built from `ModelArguments`, gold data comes from
`DataArguments.tasks`, training is `MultitaskTrainingArguments`), parsed together by `HfArgumentParser`.
"""

import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from transformers import HfArgumentParser

from polyhead.distill.trainer import GOLD_WEIGHT_SCHEDULES, gold_weight_at
from polyhead.encoders import check_positive_int
from polyhead.remote_code import MULTI_LABEL
from polyhead.training.arguments import DataArguments, ModelArguments, MultitaskTrainingArguments, read_config_file


# The distillation temperatures accepted (inclusive). Below, the loss (KL times T^2) and its gradients vanish and the
# student learns nothing; above, T^2 overflows float32 and the student's weights become NaN.
MIN_TEMPERATURE = 0.01
MAX_TEMPERATURE = 100.0


@dataclass
class DistillArguments:
    """The teachers, the unlabeled texts, and how the student learns from them."""

    teacher: list[str] = field(
        default_factory=list,
        metadata={
            "help": "A teacher, repeatable: '[task=]hub-id-or-folder' for a *ForSequenceClassification checkpoint, "
            "'[task=]polyhead-model[:task1,task2]' for (chosen tasks of) a polyhead multitask model. The task name "
            "defaults to the checkpoint's name, or the multitask model's task names. An existing local path is read "
            "as a path even if it holds '=' or ':'."
        },
    )
    texts: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Unlabeled texts: CSV/JSON/JSONL/Parquet file(s), a Dataset.save_to_disk folder or a datasets "
            "Hub id. Optional with labelled --tasks and --gold_weight > 0: the teachers then label those tasks' "
            "train texts only (born-again multitask networks; agreement is measured on their test rows)."
        },
    )
    text_column: str = field(default="text", metadata={"help": "Column of the texts."})
    text_pair_column: str | None = field(
        default=None, metadata={"help": "Column of the second texts of sentence pairs, for pair teachers."}
    )
    texts_split: str = field(default="train", metadata={"help": "Split of a dataset folder or Hub dataset."})
    pair_tasks: str | None = field(
        default=None,
        metadata={
            "help": "Comma-separated tasks of standard teachers that read (text, text_pair) sentence pairs "
            "(a polyhead teacher's pair tasks are known from its config)."
        },
    )
    max_texts: int | None = field(default=None, metadata={"help": "Seeded subsample of the texts."})
    held_out_fraction: float = field(
        default=0.1,
        metadata={"help": "Share of the texts kept out of training to measure agreement with the teachers."},
    )
    max_held_out: int = field(default=1000, metadata={"help": "At most this many held-out texts."})
    held_out_texts: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Texts kept for agreement instead of a share of --texts (same formats and columns), e.g. texts "
            "none of the teachers trained on: all --texts then train the student, except any text also given here; "
            "a seeded --max_held_out of them are scored."
        },
    )
    distill_temperature: float = field(
        default=2.0,
        metadata={
            "help": "Softmax temperature of single-label soft targets (the KL loss is scaled by T^2). Lower (0.5) "
            "copies a teacher's pick between two close labels more often, at some cost on confident teachers "
            "(docs/distillation.md, Temperature). The default of every task without --task_distill_temperature. "
            f"From {MIN_TEMPERATURE:g} to {MAX_TEMPERATURE:g}."
        },
    )
    task_distill_temperature: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Per-task override of --distill_temperature, repeatable: 'task=T', e.g. question=0.5 "
            "emotion=0.5 (tasks with many near-ties copy their teacher better at a lower T, confident ones at a "
            "higher T). Single-label tasks only: the temperature does not apply to multi-label ones "
            "(docs/distillation.md, Temperature)."
        },
    )
    gold_weight: float = field(
        default=0.0,
        metadata={
            "help": "Weight in [0, 1] of the gold-label loss on rows of a --tasks train split (0: teachers only; "
            "their train texts are still used as unlabeled texts)."
        },
    )
    gold_weight_schedule: str = field(
        default="constant",
        metadata={
            "help": "constant: --gold_weight throughout. linear: teacher annealing (Clark et al. 2019), the gold "
            "weight grows from 0 at the first step to --gold_weight at the last, so the student starts by copying "
            "its teachers and ends on the gold labels.",
            "choices": GOLD_WEIGHT_SCHEDULES,
        },
    )
    joint_batches: bool = field(
        default=True,
        metadata={
            "help": "Train every single-text task on the same batches: one encoder pass per text trains all their "
            "heads (loss: the sum of their losses), so an epoch has N times fewer steps for N tasks. false: one "
            "task per batch (each text passes the encoder once per task; PCGrad needs this). Pair tasks always get "
            "their own batches."
        },
    )
    teacher_batch_size: int = field(default=32, metadata={"help": "Batch size of the teachers and the speed test."})
    teacher_max_length: int | None = field(
        default=None,
        metadata={"help": "Teachers' token budget (checked against each one's position table; default 128)."},
    )
    teacher_cache_dir: str | None = field(
        default=None,
        metadata={"help": "Where teacher outputs are cached (default <output_dir>/teacher_outputs)."},
    )
    speed_texts: int = field(
        default=256, metadata={"help": "Held-out texts timed through the student and through every teacher."}
    )
    speed_rounds: int = field(
        default=3,
        metadata={"help": "Timing rounds, each the student then every teacher in turn; the median round counts."},
    )

    def __post_init__(self):
        if not 0.0 < self.held_out_fraction < 1.0:
            raise ValueError(f"held_out_fraction must be in (0, 1), got {self.held_out_fraction}.")
        if not 0.0 <= self.gold_weight <= 1.0:
            raise ValueError(f"gold_weight must be in [0, 1], got {self.gold_weight}.")
        gold_weight_at(self.gold_weight_schedule, self.gold_weight, 0.0)  # an unknown schedule fails here
        check_temperature("distill_temperature", self.distill_temperature)
        parse_task_temperatures(self.task_distill_temperature)
        for name in ("max_held_out", "teacher_batch_size", "speed_texts", "speed_rounds"):
            check_positive_int(name, getattr(self, name))
        for name in ("max_texts", "teacher_max_length"):
            if getattr(self, name) is not None:
                check_positive_int(name, getattr(self, name))

    @property
    def pair_task_names(self) -> list[str]:
        return [name.strip() for name in (self.pair_tasks or "").split(",") if name.strip()]

    def temperatures(self, heads: Mapping[str, Mapping]) -> dict[str, float]:
        r"""
        The distillation temperature of every single-label task of `heads` (`{task: {"problem_type", ...}}`, the
        teachers' tasks): its `--task_distill_temperature`, else `--distill_temperature`. Multi-label tasks have none
        (their targets are per-label sigmoids). A temperature given for an unknown or a multi-label task is refused.

        Example:

        ```python
        >>> args = DistillArguments(task_distill_temperature=["question=0.5"])
        >>> args.temperatures({"question": {"problem_type": "single_label_classification"},
        ...                    "sentiment": {"problem_type": "single_label_classification"}})
        {'question': 0.5, 'sentiment': 2.0}
        ```
        """
        overrides = parse_task_temperatures(self.task_distill_temperature)
        unknown = [task for task in overrides if task not in heads]
        if unknown:
            raise ValueError(
                f"--task_distill_temperature names task(s) {unknown} that no teacher has: the teachers' tasks are "
                f"{list(heads)}."
            )
        multi = [task for task in overrides if heads[task]["problem_type"] == MULTI_LABEL]
        if multi:
            raise ValueError(
                f"--task_distill_temperature {multi}: multi-label task(s) learn their teacher's per-label "
                "probabilities, where no temperature applies; remove them."
            )
        return {
            task: overrides.get(task, float(self.distill_temperature))
            for task, head in heads.items()
            if head["problem_type"] != MULTI_LABEL
        }


def parse_task_temperatures(values: Sequence[str] | Mapping[str, float]) -> dict[str, float]:
    r"""
    `--task_distill_temperature` values (`'task=T'` strings, or a `{task: T}` mapping from Python or a config file)
    as `{task: T}`, each T a number in [`MIN_TEMPERATURE`, `MAX_TEMPERATURE`] and each task named once.

    Example:

    ```python
    >>> parse_task_temperatures(["question=0.5", "emotion=1"])
    {'question': 0.5, 'emotion': 1.0}
    ```
    """
    if isinstance(values, Mapping):
        values = [f"{task}={value}" for task, value in values.items()]
    temperatures: dict[str, float] = {}
    for given in values:
        task, _, value = str(given).partition("=")
        task = task.strip()
        try:
            temperature = float(value)
        except ValueError:
            temperature = None
        if not task or temperature is None:
            raise ValueError(
                f"--task_distill_temperature expects 'task=T' with T a number (e.g. question=0.5), got {given!r}."
            )
        check_temperature(f"--task_distill_temperature {task}: the temperature", value.strip())
        if task in temperatures:
            raise ValueError(f"--task_distill_temperature names task {task!r} twice: give each task one value.")
        temperatures[task] = temperature
    return temperatures


def check_temperature(what: str, value: float | str) -> float:
    r"""
    `value` as a float, if it is a distillation temperature in [`MIN_TEMPERATURE`, `MAX_TEMPERATURE`]; else a
    `ValueError` that starts with `what` (`"distill_temperature"`, ...) and says the range.

    Example:

    ```python
    >>> check_temperature("distill_temperature", float("inf"))
    Traceback (most recent call last):
    ValueError: distill_temperature must be a number from 0.01 to 100, got inf: ...
    ```
    """
    try:
        temperature = float(value)
    except (TypeError, ValueError):
        temperature = math.nan
    if not MIN_TEMPERATURE <= temperature <= MAX_TEMPERATURE:  # NaN fails too
        raise ValueError(
            f"{what} must be a number from {MIN_TEMPERATURE:g} to {MAX_TEMPERATURE:g}, got {value}: "
            "lower, the loss (KL times T^2) vanishes and the student learns nothing; higher, T^2 overflows "
            "and the student's weights become NaN."
        )
    return temperature


ARGUMENT_CLASSES = (ModelArguments, DataArguments, DistillArguments, MultitaskTrainingArguments)
# `--teacher a --teacher b` means `--teacher a b`
REPEATABLE = ("--teacher", "--texts", "--tasks", "--task_distill_temperature")


def merge_repeated(args: Sequence[str], flags: Sequence[str] = REPEATABLE) -> list[str]:
    r"""
    Joins the values of every occurrence of a list flag into one occurrence (argparse would keep only the last).

    Example:

    ```python
    >>> merge_repeated(["--teacher", "a", "--output_dir", "o", "--teacher=b"])
    ['--output_dir', 'o', '--teacher', 'a', 'b']
    ```
    """
    rest, values = [], {flag: [] for flag in flags}
    current = None
    for arg in args:
        flag, equals, value = arg.partition("=")
        if arg.startswith("--") and flag in values:
            current = flag
            if equals:
                values[flag].append(value)
            continue
        if arg.startswith("--"):
            current = None
        if current is not None:
            values[current].append(arg)
        else:
            rest.append(arg)
    for flag, found in values.items():
        if found:
            rest += [flag, *found]
    return rest


def parse_distill_args(
    args: Sequence[str] | None = None,
) -> tuple[ModelArguments, DataArguments, DistillArguments, MultitaskTrainingArguments]:
    r"""
    Parses `[config.json|config.yaml] [--flag value ...]` into the four argument dataclasses (file values are
    defaults, flags override them), as `polyhead.training.arguments.parse_args` does for training; `--teacher`,
    `--texts`, `--tasks` and `--task_distill_temperature` may be repeated.

    Example:

    ```python
    >>> model_args, data_args, distill_args, training_args = parse_distill_args(
    ...     ["--teacher", "sentiment=models/sst2", "--texts", "traffic.jsonl", "--output_dir", "/tmp/student"])
    ```
    """
    args = list(sys.argv[1:] if args is None else args)
    parser = HfArgumentParser(ARGUMENT_CLASSES)
    given = False  # whether the task-sampling --temperature was set, to refuse it where it would be ignored
    if args and Path(args[0]).suffix in (".json", ".yaml", ".yml"):
        config = read_config_file(args.pop(0))
        unknown = sorted(set(config) - {action.dest for action in parser._actions})
        if unknown:
            raise ValueError(f"Unknown key(s) {unknown} in the config file.")
        parser.set_defaults(**config)
        for action in parser._actions:
            if action.dest in config:
                action.required = False
        given = "temperature" in config
    parsed = tuple(parser.parse_args_into_dataclasses(args=merge_repeated(args)))
    given = given or any(arg == "--temperature" or arg.startswith("--temperature=") for arg in args)
    check_sampling_temperature(parsed[1], given)
    return parsed


def check_sampling_temperature(data_args: DataArguments, given: bool = False) -> None:
    r"""
    Refuses a task-sampling `--temperature` (training's, `DataArguments.temperature`) that this run would ignore: it
    applies with `--sampling temperature` only, and is easily taken for `--distill_temperature`. `given`: the flag
    was on the command line or in the config file (a value other than the default counts as given too).

    Example:

    ```python
    >>> check_sampling_temperature(DataArguments(temperature=0.5))
    Traceback (most recent call last):
    ValueError: --temperature 0.5 is the task-sampling temperature ...
    ```
    """
    if data_args.sampling == "temperature" or not (given or data_args.temperature != DataArguments.temperature):
        return
    raise ValueError(
        f"--temperature {data_args.temperature:g} is the task-sampling temperature (used with --sampling temperature "
        f"only; this run samples {data_args.sampling!r}), so it would be ignored: the softmax temperature of the "
        f"teachers' soft targets is --distill_temperature (per task: --task_distill_temperature task=T)."
    )


__all__ = [
    "ARGUMENT_CLASSES",
    "MAX_TEMPERATURE",
    "MIN_TEMPERATURE",
    "DistillArguments",
    "check_sampling_temperature",
    "check_temperature",
    "merge_repeated",
    "parse_distill_args",
    "parse_task_temperatures",
]
