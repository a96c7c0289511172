"""The distillation job behind `scripts/distill.py`: teachers + unlabeled texts in, one polyhead model out.

Every check runs before any teacher does (student arguments and encoder positions, teachers' configs, task names,
texts, gold data); then each teacher labels the texts once (cached, `polyhead.distill.cache`), the student trains on
their soft targets with [`DistillationTrainer`], and the run is reported:

- `results.json` holds the usual scores of the student on every labelled test split given (`--tasks`; the schema of
  `polyhead.evaluation.scoring`, so the card and `scripts/publish.py` read it as for any model) and a
  `"distillation"` entry:
  `{"teachers": [...], "temperature", "temperatures": {task: T}, "gold_weight", "gold_weight_schedule",
  "joint_batches", "num_texts": {...}, "agreement": {task: {"metric", "value", "n", "metrics": {...},
  "per_label_f1": {...}, "by_teacher_margin": {"[0, 0.2)": {"n", "agreement"}, ...},
  "confident": {"min_margin", "n", "agreement"}}},`
  (held-out texts: top-1 agreement for single-label tasks, and it by the teacher's top-2 softmax margin; F1 against
  the teacher's decisions for multi-label ones)
  `"test": {task: {"metric", "n", "teacher": {...}, "student": {...}, "agreement"}},`  (labelled test splits, side
  by side, and the agreement on their rows)
  `"speed": {"texts", "student_seconds", "teachers_seconds", "speedup", "per_teacher": {--teacher entry: s}, ...}}`
  (the student and every teacher one after another, on the same held-out texts, or without --texts the gold test
  texts, in this run; median of `rounds`; `"gold_weight_schedule"`: constant or linear (teacher annealing);
  `"temperature"`: `--distill_temperature`, the default; `"temperatures"`: the one each single-label task used);
- `training_args.json` as training writes it, plus `"distillation"` (the `DistillArguments` and teachers).
"""

import dataclasses
import logging
import statistics
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import torch
from sklearn.metrics import f1_score
from transformers import EarlyStoppingCallback, set_seed

from polyhead import __version__
from polyhead.data import TaskData, load_task_data
from polyhead.distill.arguments import DistillArguments
from polyhead.distill.cache import teacher_logits
from polyhead.distill.corpus import Corpus, load_corpus
from polyhead.distill.teachers import (
    Teacher,
    describe,
    load_teacher,
    resolve_teachers,
    run_batches,
    teacher_forward,
    teacher_max_length,
)
from polyhead.distill.trainer import (
    DistillationTrainer,
    check_joint_batches,
    joint_name,
    joint_tasks,
    pack_targets,
    student_dataset,
    teacher_decisions,
    temperature_for,
)
from polyhead.evaluation.agreement import agreement_by_margin, top2_margin
from polyhead.evaluation.metrics import primary_metric
from polyhead.evaluation.scoring import predict_all_logits, score_model, score_task, task_records, write_evaluation
from polyhead.presets import TINY_ENCODER, tiny_encoder_config
from polyhead.remote_code import MULTI_LABEL, SINGLE_LABEL, MultitaskConfig
from polyhead.run_folder import RESULTS_FILE, write_json, write_training_args
from polyhead.saving import save_model_folder
from polyhead.tasks import TaskSpec
from polyhead.training.arguments import DataArguments, ModelArguments, MultitaskTrainingArguments
from polyhead.training.grow import match_label_maps
from polyhead.training.trainer import (
    build_model,
    check_checkpoint_fits,
    check_metric_names,
    check_output_locations,
    check_tokenizer_fits,
    load_tokenizer,
    resolve_max_length,
    resolve_resume_checkpoint,
    warn_earlier_checkpoints,
)


logger = logging.getLogger(__name__)

STANDARD_THRESHOLD = 0.5  # a standard multi-label checkpoint's decision: sigmoid >= 0.5


@dataclasses.dataclass
class Plan:
    """Everything checked before any teacher runs: the teachers and their token budgets, the texts (unlabeled rows
    first, then gold train and gold test rows), which rows train, which are held out, the gold data, and each
    single-label task's distillation temperature."""

    teachers: list[Teacher]
    max_lengths: dict[str, int]  # {teacher.key: its token budget}, one per --teacher entry
    corpus: Corpus
    train_rows: np.ndarray
    held_out_rows: np.ndarray
    gold: dict[str, TaskData]
    gold_rows: dict[str, dict[str, np.ndarray]]  # {task: {"train"|"test": corpus rows}}
    num_unlabeled: int
    temperatures: dict[str, float]  # {single-label task: T}, `DistillArguments.temperatures`
    # the rows the single-text tasks train on: train_rows less those whose text alone repeats a scored row's
    text_train_rows: np.ndarray | None = None
    model_args: ModelArguments | None = None  # the student's, to check a checkpoint to resume from (`check_resume`)

    def rows_for(self, head: Mapping[str, Any]) -> np.ndarray:
        """The training rows of a task with `head`: a single-text task reads the text alone, so a row whose text is
        a held-out or test row's (with another pair) does not train it."""
        if head.get("text_pair") or self.text_train_rows is None:
            return self.train_rows
        return self.text_train_rows

    @property
    def heads(self) -> dict[str, dict[str, Any]]:
        """The student's `tasks`: each teacher task's labels, problem type, pair flag and, for a multi-label task,
        the teacher's decision threshold(s) (a standard checkpoint decides at 0.5), so the student decides as its
        teacher does."""
        heads = {}
        for teacher in self.teachers:
            for name, task in teacher.tasks.items():
                head = {"labels": task["labels"], "problem_type": task["problem_type"]}
                if task["text_pair"]:
                    head["text_pair"] = True
                if task["problem_type"] == MULTI_LABEL:
                    threshold = task.get("threshold")
                    head["threshold"] = STANDARD_THRESHOLD if threshold is None else threshold
                    if task.get("thresholds") is not None:
                        head["thresholds"] = task["thresholds"]
                heads[name] = head
        return heads

    def continued_tasks(self, train_tasks: list[str] | None) -> list[str]:
        """The teacher tasks whose heads train on their teacher's answers (all, or those of `--train_tasks`): with
        `--init_from`, such a head of the starting model takes its teacher's decision threshold(s)."""
        return [name for name in self.heads if train_tasks is None or name in train_tasks]


def plan_distillation(
    model_args: ModelArguments, data_args: DataArguments, distill_args: DistillArguments, seed: int = 0
) -> Plan:
    r"""
    Checks every input of a distillation run before any teacher runs (the student's encoder and `max_length`, the
    teachers' configs and task names, `--train_tasks` and the tasks of `--init_from` against them
    ([`check_student_tasks`]), the texts, the gold data) and lays out the corpus.

    Example:

    ```python
    >>> plan = plan_distillation(ModelArguments(), DataArguments(), DistillArguments(teacher=["models/sst2"],
    ...                          texts=["traffic.jsonl"]))
    >>> list(plan.heads)
    ['sst2']
    ```
    """
    resolve_max_length(model_args)  # a student whose positions cannot hold max_length fails here
    if model_args.tokenizer_name_or_path:  # another vocabulary than the encoder's (or --init_from model's): refused
        check_tokenizer_fits(load_tokenizer(model_args), model_args)
    teachers = resolve_teachers(distill_args.teacher, distill_args.pair_task_names)
    max_lengths = {teacher.key: teacher_max_length(teacher, distill_args.teacher_max_length) for teacher in teachers}
    heads = {name: task for teacher in teachers for name, task in teacher.tasks.items()}
    temperatures = distill_args.temperatures(heads)
    check_student_tasks(model_args, heads)
    warn_tiny_student(model_args, teachers)
    pair_tasks = [name for name, task in heads.items() if task["text_pair"]]
    if distill_args.texts:
        if pair_tasks and not distill_args.text_pair_column:
            raise ValueError(
                f"Task(s) {pair_tasks} read sentence pairs: name the pair column with --text_pair_column."
            )
        corpus = load_corpus(
            distill_args.texts,
            distill_args.text_column,
            distill_args.text_pair_column,
            distill_args.texts_split,
            distill_args.max_texts,
            seed,
        )
        if pair_tasks and all(pair is None for pair in corpus.pairs or []):
            raise ValueError(f"Task(s) {pair_tasks} read sentence pairs, but no text has a pair.")
        unpaired = sum(pair is None for pair in corpus.pairs or []) if pair_tasks else 0
        if unpaired:  # those texts still train the single-text tasks
            logger.warning(
                f"{unpaired} of {len(corpus)} texts have no {distill_args.text_pair_column!r}: the pair task(s) "
                f"{pair_tasks} are taught on the other {len(corpus) - unpaired} only."
            )
        if distill_args.held_out_texts:
            train_rows, held_out_rows = add_held_out_texts(corpus, distill_args, seed)
        else:
            train_rows, held_out_rows = split_held_out(len(corpus), distill_args, seed)
    else:  # born-again: the teachers label the gold tasks' own train texts
        if distill_args.held_out_texts:
            raise ValueError(
                "--held_out_texts needs --texts (the texts the student trains on); without --texts, agreement is "
                "measured on the --tasks' test rows."
            )
        if not (data_args.tasks and distill_args.gold_weight > 0):
            raise ValueError(
                "No texts to distill on: pass unlabeled texts with --texts, or labelled --tasks with "
                "--gold_weight > 0 (the teachers then label those tasks' train texts)."
            )
        corpus = Corpus([])
        train_rows = held_out_rows = np.empty(0, dtype=np.int64)
    gold = load_gold(data_args, distill_args, heads, seed)
    num_unlabeled = len(corpus)
    gold_rows: dict[str, dict[str, np.ndarray]] = {}
    role = final_role(data_args)
    for name, task in gold.items():
        column = task.spec.text_pair_column
        for kind, split in (("train", "train"), ("test", role)):
            if split in task.splits:
                rows = task.splits[split]
                added = corpus.extend(list(rows[task.spec.text_column]), list(rows[column]) if column else None)
                gold_rows.setdefault(name, {})[kind] = np.asarray(added, dtype=np.int64)
    extra = [rows["train"] for rows in gold_rows.values() if "train" in rows]
    if extra:  # gold train texts train every task: with their gold label for their own task, unlabeled for others
        train_rows = np.concatenate([train_rows, *extra])
    train_rows, text_train_rows = keep_scored_texts_out(corpus, train_rows, held_out_rows, gold_rows, heads)
    return Plan(
        teachers,
        max_lengths,
        corpus,
        train_rows,
        held_out_rows,
        gold,
        gold_rows,
        num_unlabeled,
        temperatures,
        text_train_rows,
        model_args,
    )


def warn_tiny_student(model_args: ModelArguments, teachers: list[Teacher]) -> None:
    """Warns when the student is the tiny random test encoder (the default `--encoder_name_or_path`) and a teacher is
    larger: such a student cannot learn much from it, and the run is most likely missing its encoder."""
    if model_args.init_from or model_args.encoder_name_or_path != TINY_ENCODER:
        return
    tiny = tiny_encoder_config().hidden_size
    larger = [t.source for t in teachers if (getattr(t.position_config, "hidden_size", None) or 0) > tiny]
    if larger:
        logger.warning(
            f"The student is {TINY_ENCODER!r}, a tiny random encoder for tests ({tiny} wide), the default "
            f"--encoder_name_or_path, while teacher(s) {larger} are larger: it cannot learn much from them. Name the "
            "student's encoder with --encoder_name_or_path (for instance all-MiniLM-L6-v2)."
        )


def check_student_tasks(model_args: ModelArguments, heads: Mapping[str, Mapping[str, Any]]) -> None:
    r"""
    Checks the teachers' tasks (`heads`: `{task: {"labels", "problem_type", ...}}`) against the student arguments
    before any teacher runs: `--train_tasks` must name teacher tasks and, with `--init_from`, a teacher task that the
    starting model already has continues its head, so it must fit it as training's data must
    (`polyhead.training.grow.match_label_maps`): the same problem type, and the teacher's labels the head's labels
    (in the head's order, the order of the teacher's outputs) followed, with `--extend_labels` only, by new ones,
    and the same inputs (one text, or pairs).
    """
    train_tasks = model_args.train_task_names
    unknown = [task for task in train_tasks or [] if task not in heads]
    if unknown:
        raise ValueError(
            f"--train_tasks {unknown} have no teacher: the teachers' tasks are {list(heads)}. Name those whose heads "
            "train (every other head is frozen), or leave --train_tasks out to train them all."
        )
    if not model_args.init_from:
        return
    config = MultitaskConfig.from_pretrained(model_args.init_from, revision=model_args.revision)
    shared = {name: head for name, head in heads.items() if name in config.tasks}

    def as_data(extend_labels: bool, train_tasks: list[str] | None = None) -> dict[str, TaskData]:
        """The shared tasks as training's data would be (no rows), label maps matched as training matches them."""
        data = {
            name: TaskData(
                TaskSpec(
                    name, dataset=datasets.DatasetDict(), text_pair_column="text_pair" if head["text_pair"] else None
                ),
                list(head["labels"]),
                head["problem_type"],
            )
            for name, head in shared.items()
        }
        match_label_maps(data, config, extend_labels, train_tasks)
        return data

    try:
        for name, grown in as_data(extend_labels=True).items():  # problem types and pair inputs, then label order
            if grown.labels != list(shared[name]["labels"]):
                raise ValueError(
                    f"Task {name!r}: the teacher's labels {list(shared[name]['labels'])} do not start with the "
                    f"model's labels {config.tasks[name]['labels']} in their order, which the teacher's outputs "
                    "must follow to train its head."
                )
        as_data(model_args.extend_labels, train_tasks)  # labels the model lacks: --extend_labels, trained heads only
    except ValueError as error:
        raise ValueError(
            f"--init_from {model_args.init_from!r}: {error} A teacher task named like one of the model's tasks "
            "continues its head; to give the teacher a new head, name its task apart with --teacher new_name=source."
        ) from None
    uncovered = untaught_tasks(config, heads)
    taught_heads = {config.head_of(name) for name in heads if name in config.tasks}
    sharing = [name for name in uncovered if config.head_of(name) in taught_heads]  # a taught task trains their head
    if uncovered and not model_args.freeze_encoder:  # their heads stay, but the encoder under them trains
        logger.warning(
            f"--init_from {model_args.init_from!r}: its task(s) {uncovered} have no teacher, but the encoder under "
            f"their heads trains, so their answers may change ({RESULTS_FILE}: distillation.forgetting). To keep them "
            f"answering as before, add --teacher {model_args.init_from}:{','.join(uncovered)}, or train the heads "
            "only with --freeze_encoder true."
        )
    elif sharing:
        logger.warning(
            f"--init_from {model_args.init_from!r}: its task(s) {sharing} have no teacher, but share their head with "
            f"a taught task, so the head trains and their answers may change ({RESULTS_FILE}: "
            f"distillation.forgetting). To keep them answering as before, add --teacher "
            f"{model_args.init_from}:{','.join(sharing)}."
        )


def untaught_tasks(config: MultitaskConfig, heads: Mapping[str, Any]) -> list[str]:
    """The single- and multi-label tasks of `config` (the `--init_from` model's, or the student built from it) that
    no teacher teaches."""
    kinds = (SINGLE_LABEL, MULTI_LABEL)
    return [name for name in config.tasks if name not in heads and config.task(name)["problem_type"] in kinds]


def check_evaluation(plan: Plan, training_args: MultitaskTrainingArguments) -> None:
    """The training arguments against the plan, before any teacher runs: evaluation during training scores the
    held-out texts, so without any (no --texts) it is refused, as are task names whose metrics it would report under
    one name; and a checkpoint to resume from must be of this student ([`check_resume`])."""
    _check_eval_strategy(plan, training_args)
    if plan.model_args is not None:
        check_resume(plan, training_args)


def _check_eval_strategy(plan: Plan, training_args: MultitaskTrainingArguments) -> None:
    if len(plan.held_out_rows) == 0 and training_args.eval_strategy != "no":
        raise ValueError(
            "Without --texts there are no held-out texts to evaluate on during training: set --eval_strategy no "
            "(and no --early_stopping_patience); the student and its teachers are scored on the test rows at the end."
        )
    if training_args.eval_strategy != "no":  # one metric name per task's metric, or one overwrites the other
        check_metric_names({name: task["problem_type"] for name, task in plan.heads.items()})


def check_resume(plan: Plan, training_args: MultitaskTrainingArguments, model=None) -> str | None:
    """The checkpoint of `--resume_from_checkpoint` (`None`: start afresh), refused when it holds another model than
    this student (other teachers' tasks, labels or head options: `check_checkpoint_fits`), as training refuses it;
    `model`: the student built already, else built here from `plan.model_args`. Starting afresh in an `output_dir`
    with checkpoints of an earlier run is warned about, as in training."""
    resume = resolve_resume_checkpoint(training_args.resume_from_checkpoint, training_args.output_dir)
    if resume:
        if model is None:
            model_args = plan.model_args or ModelArguments()
            trained = model_args.train_task_names
            model = build_model(model_args, plan.heads, trained, thresholds_from=plan.continued_tasks(trained))
        check_checkpoint_fits(resume, model.config)
    elif model is not None:
        warn_earlier_checkpoints(training_args.output_dir or "trainer_output")
    return resume


def split_held_out(size: int, distill_args: DistillArguments, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split of the texts into training rows and held-out rows (at least one of each)."""
    if size < 2:
        raise ValueError(f"Distillation needs at least 2 texts (training and held-out), got {size}.")
    held = min(distill_args.max_held_out, max(1, round(size * distill_args.held_out_fraction)), size - 1)
    order = np.random.default_rng(seed).permutation(size)
    return np.sort(order[held:]), np.sort(order[:held])


def add_held_out_texts(corpus: Corpus, distill_args: DistillArguments, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`--held_out_texts`: appends (a seeded `--max_held_out` of) them to the corpus as the held-out rows; every row
    of `--texts` trains (`keep_held_out_texts_out` then drops those that repeat a held-out text)."""
    held = load_corpus(
        distill_args.held_out_texts,
        distill_args.text_column,
        distill_args.text_pair_column,
        distill_args.texts_split,
        distill_args.max_held_out,
        seed,
    )
    train_rows = np.arange(len(corpus), dtype=np.int64)
    return train_rows, np.asarray(corpus.extend(held.texts, held.pairs), dtype=np.int64)


def keep_scored_texts_out(
    corpus: Corpus,
    train_rows: np.ndarray,
    held_out_rows: np.ndarray,
    gold_rows: Mapping[str, Mapping[str, np.ndarray]],
    heads: Mapping[str, Mapping[str, Any]],
) -> tuple[np.ndarray, np.ndarray | None]:
    """`(train_rows, text_train_rows)`: the training rows less those whose text and pair repeat a held-out row or a
    `--tasks` test row (agreement and test scores are only measured on texts the student never trained on), and,
    with pairs and single-text tasks, those rows less the ones whose text alone repeats a held-out row's or a
    single-text task's test row's (`Plan.text_train_rows`: what those tasks read; `None` otherwise)."""
    test = {name: rows["test"] for name, rows in gold_rows.items() if "test" in rows}
    if len(held_out_rows):
        train_rows = keep_held_out_texts_out(corpus, train_rows, held_out_rows)
    if test:
        scored = np.concatenate(list(test.values()))
        train_rows = keep_held_out_texts_out(corpus, train_rows, scored, f"a test row of --tasks {list(test)}")
    single = [name for name, head in heads.items() if not head["text_pair"]]
    if not (single and corpus.pairs and any(pair is not None for pair in corpus.pairs)):
        return train_rows, None
    scored = np.concatenate([held_out_rows, *(rows for name, rows in test.items() if name in single)])
    what = "the text of a held-out or test row (with another pair)"
    return train_rows, keep_held_out_texts_out(corpus, train_rows, scored, what, text_only=True)


def keep_held_out_texts_out(
    corpus: Corpus, train_rows: np.ndarray, held_out_rows: np.ndarray, what: str = "a held-out text", text_only=False
) -> np.ndarray:
    """The training rows less those whose text and pair (`text_only`: text, as a single-text task reads it) are also
    one of `held_out_rows`' (`what` they are, for the warning), whether from `--texts` or a `--tasks` train split."""
    pairs = corpus.pairs or [None] * len(corpus)

    def key(row):
        return corpus.texts[row] if text_only else (corpus.texts[row], pairs[row])

    held = {key(i) for i in held_out_rows}
    kept = np.asarray([i for i in train_rows if key(i) not in held], dtype=np.int64)
    if len(kept) < len(train_rows):
        where = "the single-text tasks' training (they read the text alone)" if text_only else "training"
        logger.warning(
            f"{len(train_rows) - len(kept)} of the {len(train_rows)} training rows repeat {what}: kept out of {where}."
        )
    if not len(kept):
        raise ValueError(
            f"Every training text is also {what}: no text is left to train on. Give texts to train on apart from "
            "those the student is scored on."
        )
    return kept


def final_role(data_args: DataArguments) -> str:
    """The gold split the student and teachers are scored on: `"test"`, or `"eval"` (validation)."""
    return data_args.final_eval_split


def load_gold(
    data_args: DataArguments, distill_args: DistillArguments, heads: Mapping[str, dict], seed: int
) -> dict[str, TaskData]:
    """The labelled data of `--tasks`, checked against the teachers' label maps: a train split when `gold_weight`
    > 0, and the scored split (`final_eval_split`)."""
    if data_args.tune_thresholds:
        raise ValueError("--tune_thresholds is not supported by distillation (the student follows the teachers).")
    if not data_args.tasks:
        if distill_args.gold_weight > 0:
            raise ValueError("gold_weight > 0 mixes in gold labels: give the labelled data with --tasks.")
        return {}
    specs = data_args.task_specs()
    unknown = [spec.name for spec in specs if spec.name not in heads]
    if unknown:
        raise ValueError(f"--tasks {unknown} have no teacher: the teachers' tasks are {list(heads)}.")
    for spec in specs:
        head = heads[spec.name]
        if head["text_pair"] != bool(spec.text_pair_column):
            need = "needs a text_pair column" if head["text_pair"] else "reads single texts: no text_pair column"
            raise ValueError(f"--tasks {spec.name!r}: its teacher {need}.")
        spec.labels, spec.problem_type = list(head["labels"]), head["problem_type"]
    roles = (["train"] if distill_args.gold_weight > 0 else []) + [final_role(data_args)]
    gold = load_task_data(specs, roles=roles, seed=seed, require_train=distill_args.gold_weight > 0)
    return gold


def label_with_teachers(
    plan: Plan, distill_args: DistillArguments, output_dir: str | None, progress: bool
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Every teacher's logits on the corpus (`{task: (rows, logits)}`), each teacher run once or read from cache."""
    cache_dir = distill_args.teacher_cache_dir or str(Path(output_dir or "trainer_output") / "teacher_outputs")
    outputs = {}
    for teacher in plan.teachers:
        outputs.update(
            teacher_logits(
                teacher,
                plan.corpus.texts,
                plan.corpus.pairs,
                plan.max_lengths[teacher.key],
                distill_args.teacher_batch_size,
                cache_dir,
                progress,
            )
        )
    return outputs


def _rows_logits(outputs, task: str, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows of `rows` that `task` labelled, and the teacher's logits on them."""
    labelled, logits = outputs[task]
    position = {int(row): i for i, row in enumerate(labelled)}
    kept = np.array([row for row in rows if int(row) in position], dtype=np.int64)
    return kept, logits[[position[int(row)] for row in kept]] if len(kept) else logits[:0]


def _gold_labels(plan: Plan, task: str, rows: np.ndarray, kind: str) -> list | None:
    """Gold labels of `rows` from the task's own gold split `kind` (`None` for rows from elsewhere)."""
    if task not in plan.gold or kind not in plan.gold_rows.get(task, {}):
        return None
    split = "train" if kind == "train" else final_role_of(plan, task)
    ids = plan.gold[task].label_ids(split)
    where = {int(row): i for i, row in enumerate(plan.gold_rows[task][kind])}
    return [ids[where[int(row)]] if int(row) in where else None for row in rows]


def final_role_of(plan: Plan, task: str) -> str:
    return next(role for role in plan.gold[task].splits if role != "train")


def build_datasets(
    plan: Plan,
    outputs,
    tokenizer,
    max_length: int,
    temperature: float | Mapping[str, float],
    joint_batches: bool = False,
    train_tasks: list[str] | None = None,
) -> tuple[dict, dict, dict]:
    """`(train, held_out, margins)`: per task, the packed soft-target rows it trains on (soft targets at its
    `temperature`: one for every task or `{task: T}`, `temperature_for`), the held-out rows labelled
    with the teacher's decisions and, for single-label tasks, the teacher's top-2 softmax margin on each held-out row
    (same order; `polyhead.evaluation.agreement`). With `joint_batches`, the single-text tasks share one train
    dataset instead (keyed by `joint_name` of them; a row: every one of their packed rows, see
    `polyhead.distill.trainer`); pair tasks keep their own. With `train_tasks` (`--train_tasks`), only those tasks
    get train rows: the others' heads are frozen and their teachers' answers only measure agreement, as training's
    `--train_tasks` only evaluates the other tasks' data."""
    corpus, heads = plan.corpus, plan.heads
    train, held_out, margins, joint = {}, {}, {}, {}
    for task, head in heads.items():
        pairs = corpus.pairs if head.get("text_pair") else None
        if train_tasks is None or task in train_tasks:
            rows, logits = _rows_logits(outputs, task, plan.rows_for(head))
            task_temperature = temperature_for(temperature, task, head["problem_type"])
            gold = _gold_labels(plan, task, rows, "train")
            labels = pack_targets(head["problem_type"], logits, task_temperature, gold)
            texts = [corpus.texts[i] for i in rows]
            if joint_batches and pairs is None:  # a single-text task labels each of its train rows, in their order
                joint[task] = labels
            else:
                train[task] = student_dataset(task, texts, _pick(pairs, rows), labels, tokenizer, max_length)
        rows, logits = _rows_logits(outputs, task, plan.held_out_rows)
        if len(rows):
            decisions = teacher_decisions(head, logits)
            texts = [corpus.texts[i] for i in rows]
            held_out[task] = student_dataset(task, texts, _pick(pairs, rows), decisions, tokenizer, max_length)
            if head["problem_type"] != MULTI_LABEL:
                margins[task] = top2_margin(logits)
    if joint:
        name, texts = joint_name(list(joint)), [corpus.texts[i] for i in plan.rows_for({})]
        labels = [sum(parts, []) for parts in zip(*joint.values())]
        train = {name: student_dataset(name, texts, None, labels, tokenizer, max_length), **train}
    return train, held_out, margins


def rows_per_task(train: Mapping) -> dict[str, int]:
    """`{task: train rows}` of `build_datasets`' train datasets (a joint dataset's rows count for each of its
    tasks)."""
    return {task: len(dataset) for name, dataset in train.items() for task in joint_tasks(name)}


def _pick(values, rows):
    return [values[i] for i in rows] if values is not None else None


def agreement_report(
    model, tokenizer, held_out: Mapping, batch_size: int, progress: bool, margins: Mapping | None = None
) -> dict[str, Any]:
    """Per task, the student's agreement with its teacher on held-out texts: top-1 agreement (accuracy against the
    teacher's answers) for single-label tasks, F1 against its decisions for multi-label tasks (micro, macro, and per
    label).

    With `margins` (`build_datasets`' teacher top-2 softmax margins per held-out row), a single-label task's entry
    also breaks the agreement down by how sure the teacher was (`agreement_by_margin`): `"by_teacher_margin"`
    (buckets of `MARGIN_EDGES`, each `{"n", "agreement"}`, `None` when empty) and `"confident"` (margin >=
    `CONFIDENT_MARGIN`). Multi-label tasks have no such breakdown: their teacher decides per label against a
    threshold, with no top-2 margin."""
    if not held_out:
        return {}
    results, outputs = score_model(model, tokenizer, held_out, "held_out", batch_size, progress=progress)
    report = {}
    for task, task_metrics in results["tasks"].items():
        spec = model.config.task(task)
        multi = spec["problem_type"] == MULTI_LABEL
        metric = "f1_macro" if multi else "accuracy"
        entry = {"metric": metric, "value": task_metrics[metric], "n": len(held_out[task]), "metrics": task_metrics}
        predictions, references = outputs[task]
        if multi:
            per_label = f1_score(references, predictions, average=None, zero_division=1.0)
            entry["per_label_f1"] = {label: float(v) for label, v in zip(spec["labels"], per_label)}
        elif margins is not None and task in margins:
            entry.update(agreement_by_margin(margins[task], np.asarray(predictions) == np.asarray(references)))
        report[task] = entry
    return report


def test_report(plan: Plan, outputs, model, tokenizer, max_length: int, batch_size: int, progress: bool):
    """Student and teacher scores on each labelled test split, and their agreement on its rows: `(results in the
    results.json schema, {task: side-by-side entry}, {task: (predictions, references)})`; empty without test data."""
    datasets_, teacher_scores, teacher_logits = {}, {}, {}
    for task, rows_by_kind in plan.gold_rows.items():
        if "test" not in rows_by_kind:
            continue
        head = plan.heads[task]
        rows, logits = _rows_logits(outputs, task, rows_by_kind["test"])
        gold = _gold_labels(plan, task, rows, "test")
        pairs = plan.corpus.pairs if head.get("text_pair") else None
        texts = [plan.corpus.texts[i] for i in rows]
        datasets_[task] = student_dataset(task, texts, _pick(pairs, rows), gold, tokenizer, max_length)
        teacher_scores[task], teacher_logits[task] = score_task(head, logits, np.asarray(gold))[0], logits
    if not datasets_:
        return None, {}, {}
    split = "test" if all(final_role_of(plan, t) == "test" for t in datasets_) else "validation"
    results, predictions = score_model(model, tokenizer, datasets_, split, batch_size, progress=progress)
    side_by_side = {
        task: {
            "metric": primary_metric(plan.heads[task]["problem_type"]),
            "n": len(datasets_[task]),
            "teacher": teacher_scores[task],
            "student": results["tasks"][task],
            "agreement": _agreement(plan.heads[task], predictions[task][0], teacher_logits[task]),
        }
        for task in datasets_
    }
    return results, side_by_side, predictions


def _agreement(head: Mapping, student_predictions, teacher_logits: np.ndarray) -> float:
    """On the same rows: the share of the teacher's answers the student gives (single-label), or the macro F1 of the
    student's decisions against the teacher's (multi-label), as the held-out agreement is measured."""
    teacher = np.asarray(teacher_decisions(head, teacher_logits))
    student = np.asarray(student_predictions)
    if head["problem_type"] == MULTI_LABEL:
        return float(f1_score(teacher, student, average="macro", zero_division=1.0))
    return float((teacher == student).mean())


def measure_speed(
    plan: Plan, model, tokenizer, max_length: int, distill_args: DistillArguments, progress: bool
) -> dict[str, Any]:
    r"""
    Times the student (one encoder pass for its single-text tasks, one more for its pair tasks) and then every
    teacher, one after another, on the same held-out texts with the same batch size, in `speed_rounds` interleaved
    rounds (so a busy spell of the machine hits both sides); each model's median round counts. Tokenization is timed
    on both sides, model loading on neither, and each model runs one warm-up batch per round first.
    """
    rows = speed_rows(plan)[: distill_args.speed_texts]
    if not len(rows):
        return {}
    texts = [plan.corpus.texts[i] for i in rows]
    pairs = [plan.corpus.pairs[i] for i in rows] if plan.corpus.pairs else None
    batch = distill_args.teacher_batch_size
    heads = plan.heads

    def student_forward(pair):
        names = [name for name, head in heads.items() if bool(head.get("text_pair")) == pair]
        return names, lambda inputs: dict(model(**inputs, task=names).logits)

    model.eval()
    student_runs = [(names, fn, pair) for pair in (False, True) for names, fn in [student_forward(pair)] if names]
    rounds: dict[str, list[float]] = {}
    teacher_rounds: dict[str, list[float]] = {}  # {teacher.key: seconds per round}
    for _ in range(distill_args.speed_rounds):
        seconds = sum(_timed(fn, tokenizer, texts, pairs, pair, batch, max_length) for _, fn, pair in student_runs)
        rounds.setdefault("student", []).append(seconds)
        for teacher in plan.teachers:
            teacher_model, teacher_tokenizer = load_teacher(teacher)
            seconds = 0.0
            for pair in (False, True):
                if any(task["text_pair"] == pair for task in teacher.tasks.values()):
                    forward = teacher_forward(teacher, teacher_model, pair)
                    limit = plan.max_lengths[teacher.key]
                    seconds += _timed(forward, teacher_tokenizer, texts, pairs, pair, batch, limit)
            teacher_rounds.setdefault(teacher.key, []).append(seconds)  # one entry per --teacher, not per source
            del teacher_model
    student_seconds = statistics.median(rounds.pop("student"))
    per_teacher = {key: round(statistics.median(times), 4) for key, times in teacher_rounds.items()}
    teachers_seconds = sum(per_teacher.values())
    return {
        "texts": len(texts),
        "batch_size": batch,
        "num_teachers": len(plan.teachers),
        "student_seconds": round(student_seconds, 4),
        "teachers_seconds": round(teachers_seconds, 4),
        "student_texts_per_second": round(len(texts) / student_seconds, 2),
        "teachers_texts_per_second": round(len(texts) / teachers_seconds, 2),
        "speedup": round(teachers_seconds / student_seconds, 3),
        "per_teacher": per_teacher,
        "rounds": distill_args.speed_rounds,
        "torch_threads": torch.get_num_threads(),
        "device": str(model.device),
    }


def speed_rows(plan: Plan) -> np.ndarray:
    """Rows the student never trained on, to time it against the teachers: the held-out texts, else (no --texts) the
    gold test rows, in a seeded shuffle (held-out and test rows follow their files' order; shuffled, the first
    `--speed_texts` of them sample every source, and pairs)."""
    rows = (
        [plan.held_out_rows]
        if len(plan.held_out_rows)
        else [r["test"] for r in plan.gold_rows.values() if "test" in r]
    )
    return np.random.default_rng(0).permutation(np.concatenate(rows)) if rows else np.empty(0, dtype=np.int64)


def _timed(forward, tokenizer, texts, pairs, pair: bool, batch_size: int, max_length: int) -> float:
    if pair:
        kept = [i for i, value in enumerate(pairs or []) if value is not None]
        texts, pairs = [texts[i] for i in kept], [pairs[i] for i in kept]
    else:
        pairs = None
    if not texts:
        return 0.0
    with torch.inference_mode():
        run_batches(
            forward, tokenizer, texts[:batch_size], pairs[:batch_size] if pairs else None, batch_size, max_length
        )
        start = time.perf_counter()
        run_batches(forward, tokenizer, texts, pairs, batch_size, max_length)
        return time.perf_counter() - start


def distillation_summary(
    plan: Plan, distill_args: DistillArguments, train: Mapping, agreement, side_by_side, speed
) -> dict[str, Any]:
    """The `"distillation"` entry of `results.json` (schema in the module docstring)."""
    return {
        "teachers": [describe(teacher) for teacher in plan.teachers],
        "temperature": distill_args.distill_temperature,
        "temperatures": plan.temperatures,
        "gold_weight": distill_args.gold_weight,
        "gold_weight_schedule": distill_args.gold_weight_schedule,
        "joint_batches": distill_args.joint_batches,
        "num_texts": {
            "unlabeled": plan.num_unlabeled,
            "held_out": len(plan.held_out_rows),
            "train": rows_per_task(train),
        },
        "agreement": agreement,
        "test": side_by_side,
        "speed": speed,
    }


def run_info(model_args, data_args, distill_args, training_args, plan, trainer, train_metrics, train) -> dict:
    """`training_args.json`: the training run's keys (see `polyhead.training.trainer`) plus `"distillation"`."""
    data = {f.name: getattr(data_args, f.name) for f in dataclasses.fields(data_args) if f.name != "tasks"}
    data["tasks"] = task_records(task.spec for task in plan.gold.values())  # lets an evaluation carve as this run did
    return {
        "model": {
            **dataclasses.asdict(model_args),
            "pooling": trainer.model.config.pooling,
            "classifier_dropout": trainer.model.config.classifier_dropout,
        },
        "data": data,
        "training": training_args.to_dict(),
        "tasks": plan.heads,
        "num_train_examples": rows_per_task(train),
        "train_metrics": dict(train_metrics),
        "log_history": trainer.state.log_history,
        "distillation": {**dataclasses.asdict(distill_args), "teachers": [describe(t) for t in plan.teachers]},
        "polyhead_version": __version__,
    }


def run(
    model_args: ModelArguments,
    data_args: DataArguments,
    distill_args: DistillArguments,
    training_args: MultitaskTrainingArguments,
    plan: Plan | None = None,
) -> dict[str, Any]:
    r"""
    The distillation job: check everything, label the texts with every teacher (cached), train the student on their
    soft targets, report agreement, test scores and speed, write the model folder (`training_args.model_dir`).
    Returns the `results.json` dict. `plan`: what [`plan_distillation`] returned for these arguments (checked
    already), else it is made here.

    Example:

    ```python
    >>> from polyhead.distill import parse_distill_args, run
    >>> results = run(*parse_distill_args(["--teacher", "models/sst2", "--texts", "traffic.jsonl",
    ...                                    "--output_dir", "outputs/student"]))
    >>> results["distillation"]["agreement"]["sst2"]["value"]
    ```
    """
    check_output_locations(training_args)
    if distill_args.joint_batches:
        check_joint_batches(training_args)
    if training_args.num_threads is not None:
        torch.set_num_threads(training_args.num_threads)
    model_args = dataclasses.replace(model_args, max_length=resolve_max_length(model_args))
    seed = training_args.sampling_seed
    plan = plan or plan_distillation(model_args, data_args, distill_args, seed)
    _check_eval_strategy(plan, training_args)
    tokenizer = load_tokenizer(model_args)  # before the teachers run: a missing tokenizer fails early too
    progress = not training_args.disable_tqdm
    trained = model_args.train_task_names
    set_seed(training_args.seed)
    # before the teachers run: a checkpoint must fit it; a head a teacher continues decides at its thresholds
    model = build_model(model_args, plan.heads, trained, thresholds_from=plan.continued_tasks(trained))
    resume = check_resume(plan, training_args, model)
    max_length = model_args.max_length
    batch_size = training_args.per_device_eval_batch_size
    before = before_training(plan, model, tokenizer, max_length, batch_size)
    outputs = label_with_teachers(plan, distill_args, training_args.output_dir, progress)
    train, held_out, margins = build_datasets(
        plan, outputs, tokenizer, max_length, plan.temperatures, distill_args.joint_batches, trained
    )
    callbacks = []
    if training_args.early_stopping_patience is not None:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=training_args.early_stopping_patience))
    trainer = DistillationTrainer(
        model=model,
        args=training_args,
        train_datasets=train,
        eval_datasets=held_out,
        processing_class=tokenizer,
        loss_weights={name: task.spec.loss_weight for name, task in plan.gold.items()},
        sampling=data_args.sampling,
        temperature=data_args.temperature,
        callbacks=callbacks,
        distill_temperature=plan.temperatures,
        gold_weight=distill_args.gold_weight,
        gold_weight_schedule=distill_args.gold_weight_schedule,
    )
    train_result = trainer.train(resume_from_checkpoint=resume)
    # without accelerate's autocast wrapper (--bf16): reports, timing and the saved folder are the float32 student
    model = trainer.accelerator.unwrap_model(trainer.model, keep_fp32_wrapper=False).eval()
    agreement = agreement_report(model, tokenizer, held_out, batch_size, progress, margins)
    scored, side_by_side, predictions = test_report(plan, outputs, model, tokenizer, max_length, batch_size, progress)
    speed = measure_speed(plan, model, tokenizer, max_length, distill_args, progress)
    results = scored or {"tasks": {}, "num_examples": {}, "split": None, "model": None}
    results["model"] = str(training_args.model_dir)
    results["distillation"] = distillation_summary(plan, distill_args, train, agreement, side_by_side, speed)
    if before is not None:
        results["distillation"]["forgetting"] = forgetting(model_args, model, tokenizer, batch_size, *before)
    info = run_info(model_args, data_args, distill_args, training_args, plan, trainer, train_result.metrics, train)

    def write_run_files(folder: Path) -> None:
        if scored is not None:
            write_evaluation(model, results, predictions, folder, results["split"])
        else:
            write_json(folder / RESULTS_FILE, results)
        write_training_args(info, folder)

    save_model_folder(model, tokenizer, training_args.model_dir, overwrite=True, extra=write_run_files)
    return results


def before_training(plan: Plan, model, tokenizer, max_length: int, batch_size: int):
    """The `--init_from` model's tasks that no teacher teaches (`untaught_tasks`), before any step: `(their rows,
    the starting model's logits on them)`, on texts the student never trains on (the held-out texts, else the test
    rows: `speed_rows`); `None` when there are none."""
    names = untaught_tasks(model.config, plan.heads)  # the student holds the starting model's tasks
    rows = np.sort(speed_rows(plan))
    if not (names and len(rows)):
        return None
    pairs = plan.corpus.pairs or [None] * len(plan.corpus)
    unlabelled = {}
    for name in names:
        spec = model.config.task(name)
        kept = [i for i in rows if pairs[i] is not None] if spec.get("text_pair") else list(rows)
        if kept:  # placeholder labels: the starting model's own answers are the reference
            labels = teacher_decisions(spec, np.zeros((len(kept), len(spec["labels"]))))
            texts, kept_pairs = (
                [plan.corpus.texts[i] for i in kept],
                _pick(pairs, kept) if spec.get("text_pair") else None,
            )
            unlabelled[name] = student_dataset(name, texts, kept_pairs, labels, tokenizer, max_length)
    if not unlabelled:
        return None
    logits = predict_all_logits(model, unlabelled, tokenizer, batch_size, progress=False)
    return unlabelled, {name: logits[name][0] for name in unlabelled}


def forgetting(model_args: ModelArguments, model, tokenizer, batch_size: int, rows: Mapping, before: Mapping):
    """`"forgetting"` of the `"distillation"` entry: per untaught task of the starting model, how far the student's
    answers on the same texts still agree with the starting model's (`_agreement`: the share of the same answers, or
    macro F1 of the decisions for multi-label tasks), and a warning for each below 1 - `--forgetting_margin`."""
    after = predict_all_logits(model, rows, tokenizer, batch_size, progress=False)
    report = {"init_from": model_args.init_from, "margin": model_args.forgetting_margin, "tasks": {}, "warnings": []}
    for name, logits in before.items():
        spec = model.config.task(name)
        value = _agreement(spec, teacher_decisions(spec, after[name][0]), logits)
        report["tasks"][name] = {"n": len(logits), "agreement": value}
        if value < 1 - model_args.forgetting_margin:
            message = f"Task {name!r} has no teacher and answers {value:.4f} as the --init_from model did"
            report["warnings"].append(message)
            logger.warning(f"Forgetting: {message} on {len(logits)} texts it never trained on.")
    return report


__all__ = [
    "Plan",
    "agreement_report",
    "build_datasets",
    "check_evaluation",
    "check_resume",
    "check_student_tasks",
    "distillation_summary",
    "label_with_teachers",
    "load_gold",
    "measure_speed",
    "plan_distillation",
    "rows_per_task",
    "run",
    "speed_rows",
    "split_held_out",
    "test_report",
    "untaught_tasks",
    "warn_tiny_student",
]
