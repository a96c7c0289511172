"""Teachers: the classifiers a student learns from, checked from their configs before any of them runs.

A teacher is a standard `*ForSequenceClassification` checkpoint (any architecture and tokenizer; single- or
multi-label, read from its `id2label` and `problem_type`) or a polyhead multitask model (all of its tasks, or chosen
ones). [`parse_teacher`] reads the command-line form, [`resolve_teachers`] reads every teacher's config and tokenizer
(no weights) and refuses what cannot be distilled, [`label_texts`] runs one teacher over texts (batched,
length-sorted, with a progress bar) and returns each of its tasks' logits.
"""

import dataclasses
import fnmatch
import hashlib
import json
import logging
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer, PreTrainedConfig
from transformers.tokenization_utils_base import VERY_LARGE_INTEGER
from transformers.utils import cached_file

from polyhead.encoders import DEFAULT_MAX_LENGTH, check_max_length, default_max_length
from polyhead.evaluation.scoring import trained_max_length
from polyhead.remote_code import (
    MULTI_LABEL,
    SINGLE_LABEL,
    MultitaskConfig,
    MultitaskModel,
    check_task_name,
    check_tokenizer,
    normalize_task,
)
from polyhead.run_folder import MODEL_DIR, run_model_folder


logger = logging.getLogger(__name__)

_INVALID_NAME_CHARACTERS = re.compile(r"[^A-Za-z0-9_-]+")
# The files a teacher folder's tokenizer is read from: hashed into its identity, one of them needed to distil it.
TOKENIZER_FILE_PATTERNS = (
    "tokenizer*",
    "vocab*",
    "merges.txt",
    "*.model",
    "*.tiktoken",
    "bpe.codes",
    "special_tokens_map.json",
    "added_tokens.json",
)


@dataclasses.dataclass
class TeacherSpec:
    r"""
    One teacher as the user named it: `[name=]source[:task,task...]`.

    Args:
        source (`str`): a Hub id or a local folder.
        name (`str`, *optional*): the student's task name for this teacher (a multitask teacher: only with one
            chosen task); derived from the source (or the teacher's task names) when absent.
        tasks (`list[str]`, *optional*): a multitask teacher's tasks to distil (default: all of them).
        revision (`str`, *optional*): Hub revision.

    Example:

    ```python
    >>> parse_teacher("sentiment=org/sst2-model")
    TeacherSpec(source='org/sst2-model', name='sentiment', tasks=None, revision=None)
    ```
    """

    source: str
    name: str | None = None
    tasks: list[str] | None = None
    revision: str | None = None


def parse_teacher(item: str | TeacherSpec) -> TeacherSpec:
    """Reads `[name=]source[:task,task...]` (the `:tasks` part picks tasks of a polyhead multitask teacher). An
    existing local path wins over that syntax, so a folder named `sst2_lr=5e-5` or `v1:final` is a source: the whole
    text, the part after `name=`, or the part before a trailing `:tasks`; a "name" containing a path separator is
    part of the path."""
    if isinstance(item, TeacherSpec):
        return item
    text = str(item).strip()
    if Path(text).exists():
        return TeacherSpec(source=text)
    name, separator, rest = text.partition("=")
    if not separator or _is_path_part(name):
        name, rest = None, text
    source, picked = rest, ""
    if not Path(rest).exists():
        before, colon, after = rest.rpartition(":")
        if colon and not _is_path_part(after):  # a task list holds no path separator
            source, picked = before, after
    tasks = [task.strip() for task in picked.split(",") if task.strip()] or None
    if not source.strip() or (name is not None and not name.strip()):
        raise ValueError(f"Teacher {item!r}: expected '[name=]hub-id-or-folder[:task,...]'.")
    return TeacherSpec(source=source.strip(), name=name.strip() if name else None, tasks=tasks)


def _is_path_part(text: str) -> bool:
    return "/" in text or "\\" in text


@dataclasses.dataclass
class Teacher:
    """A checked teacher: where it comes from, what kind it is, and the student task each of its outputs becomes.

    `tasks` maps the student's task name to `{"labels", "problem_type", "teacher_task", "text_pair"}` (`teacher_task`
    is the multitask teacher's own task name, `None` for a standard checkpoint)."""

    spec: TeacherSpec
    kind: str  # "sequence-classification" or "multitask"
    model_type: str
    tasks: dict[str, dict[str, Any]]
    position_config: PreTrainedConfig  # the config whose position table limits the teacher's max_length
    commit: str | None = None  # the Hub commit its config was read from

    @property
    def source(self) -> str:
        return self.spec.source

    @property
    def key(self) -> str:
        """The `--teacher` entry this teacher came from, `[name=]source[:task,...]`: one per entry, where `source`
        is not (two entries may pick different tasks of one polyhead model). Keys its token budget and timing."""
        return _teacher_argument(self.spec)

    def identity(self) -> dict[str, Any]:
        """What names these exact weights and tokenizer: a folder's weight, config and tokenizer files hashed, or a
        Hub id with its revision and commit (which pins every file of the repository)."""
        folder = Path(self.source)
        if folder.is_dir():
            digest = hashlib.sha256()
            for path in sorted(folder.iterdir()):
                weights = path.suffix in (".safetensors", ".bin") or path.name == "config.json"
                if path.is_file() and (weights or is_tokenizer_file(path.name)):
                    digest.update(path.name.encode())
                    with open(path, "rb") as handle:
                        for block in iter(lambda: handle.read(1 << 20), b""):
                            digest.update(block)
            return {"source": str(folder.resolve()), "files_sha256": digest.hexdigest()}
        return {"source": self.source, "revision": self.spec.revision, "commit": self.commit}


def is_tokenizer_file(name: str) -> bool:
    """Whether a teacher folder's file `name` is one its tokenizer is read from ([`TOKENIZER_FILE_PATTERNS`])."""
    return any(fnmatch.fnmatch(name, pattern) for pattern in TOKENIZER_FILE_PATTERNS)


def _config_dict(spec: TeacherSpec) -> dict[str, Any]:
    try:
        config, _ = PreTrainedConfig.get_config_dict(spec.source, revision=spec.revision)
    except (OSError, ValueError) as error:
        raise ValueError(
            f"Teacher {spec.source!r}: cannot read its config.json ({error}). Give a Hub id or a folder of a "
            "*ForSequenceClassification checkpoint or a polyhead multitask model."
        ) from None
    return config


def derived_task_name(source: str) -> str:
    r"""
    A task name from a teacher's source: its last path part with characters outside `[A-Za-z0-9_-]` turned to `_`.

    Example:

    ```python
    >>> derived_task_name("cardiffnlp/twitter-roberta-base-sentiment-latest")
    'twitter-roberta-base-sentiment-latest'
    ```
    """
    base = Path(source.rstrip("/\\")).name or source
    return _INVALID_NAME_CHARACTERS.sub("_", base).strip("_-")[:64] or "teacher"


def hub_commit(spec: TeacherSpec) -> str | None:
    """The commit a Hub teacher's `revision` (default: main) points at now, read from where its `config.json` was
    cached (a snapshot folder is named by its commit; offline, the cached one): every file of the teacher is then
    read at that commit, and the cache of its answers is keyed by it. `None` for a local folder."""
    if Path(spec.source).exists():
        return None
    try:
        path = cached_file(spec.source, "config.json", revision=spec.revision)
    except (OSError, ValueError):  # named by _config_dict's error
        return None
    folder = Path(path).parent.name if path else ""
    return folder if re.fullmatch(r"[0-9a-f]{40}", folder) else None


def resolve_teacher(spec: TeacherSpec) -> Teacher:
    """Reads one teacher's config (no weights) and refuses what cannot be distilled (see [`resolve_teachers`])."""
    _check_folder(spec)
    commit = hub_commit(spec)
    if commit:  # its files read at the commit main (or the revision) points at now, not at a moving branch
        spec = dataclasses.replace(spec, revision=commit)
    config = _config_dict(spec)
    if config.get("model_type") == MultitaskConfig.model_type:
        config = MultitaskConfig.from_pretrained(spec.source, revision=spec.revision)
        teacher = _multitask_teacher(spec, config, commit)
        _check_teacher_tokenizer(teacher)
        return teacher
    if spec.tasks:
        raise ValueError(
            f"Teacher {spec.source!r}: ':{','.join(spec.tasks)}' picks tasks of a polyhead multitask model, but this "
            "is a single-task checkpoint; name its task with 'name=source'."
        )
    architectures = config.get("architectures") or []
    if not any(str(a).endswith("ForSequenceClassification") for a in architectures):
        raise ValueError(
            f"Teacher {spec.source!r} is not a sequence classifier (architectures {architectures}, model_type "
            f"{config.get('model_type')!r}): teachers are *ForSequenceClassification checkpoints or polyhead "
            "multitask models."
        )
    try:
        auto = AutoConfig.from_pretrained(spec.source, revision=spec.revision)
    except (OSError, ValueError, KeyError) as error:
        raise ValueError(f"Teacher {spec.source!r}: transformers cannot read its config ({error}).") from None
    problem_type = auto.problem_type or SINGLE_LABEL
    if problem_type == "regression" or (auto.num_labels == 1 and problem_type != MULTI_LABEL):
        raise ValueError(
            f"Teacher {spec.source!r} is a regression model (problem_type={auto.problem_type!r}, "
            f"{auto.num_labels} output): refused, polyhead distils classifiers only (single- or multi-label)."
        )
    labels = [str(auto.id2label[i]) for i in range(auto.num_labels)]
    name = spec.name or derived_task_name(spec.source)
    _check_name(name, spec)
    try:  # the student's config checks its label map so (MultitaskConfig): refused here, before any teacher runs
        normalize_task(name, {"labels": labels, "problem_type": problem_type})
    except ValueError as error:
        problem = str(error).rstrip(".")
        raise ValueError(
            f"Teacher {spec.source!r}: its id2label {labels} cannot be a task's label map ({problem}): give each of "
            "its outputs a label name of its own in its config.json (id2label and label2id)."
        ) from None
    task = {"labels": labels, "problem_type": problem_type, "teacher_task": None, "text_pair": False}
    teacher = Teacher(spec, "sequence-classification", auto.model_type, {name: task}, auto, commit)
    _check_teacher_tokenizer(teacher)
    return teacher


def _check_teacher_tokenizer(teacher: Teacher) -> None:
    """Loads the teacher's tokenizer (no weights) and refuses a folder without tokenizer files, a tokenizer of
    special tokens only (transformers builds one for such a folder: every word would be unknown) or one with more
    tokens than the model's vocabulary (its highest ids would fail inside the model): the pipeline's checks."""
    folder = Path(teacher.source)
    if folder.is_dir() and not any(is_tokenizer_file(path.name) for path in folder.iterdir() if path.is_file()):
        raise ValueError(
            f"Teacher {teacher.source!r} holds no tokenizer files (tokenizer.json, tokenizer_config.json, "
            "vocab.txt/vocab.json + merges.txt or a sentencepiece *.model): copy in the tokenizer it was trained with."
        )
    try:
        tokenizer = _own_tokenizer(teacher)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise ValueError(
            f"Teacher {teacher.source!r}: its tokenizer cannot be loaded ({' '.join(str(error).split())}); copy in "
            "the tokenizer it was trained with."
        ) from None
    vocab_size = getattr(teacher.position_config, "vocab_size", None)
    try:
        check_tokenizer(tokenizer, vocab_size, teacher.source)
    except ValueError as error:  # the pipeline's message, less its Python-only remedy
        message = str(error).removesuffix(", or pass tokenizer=...")
        raise ValueError(f"Teacher {teacher.source!r}: {message}.") from None
    _set_pad_token(tokenizer, teacher)  # texts are labelled in padded batches


def _set_pad_token(tokenizer: Any, teacher: Teacher) -> Any:
    """Gives a tokenizer without a pad token (GPT-2's) its model config's `pad_token_id`, as texts are labelled in
    padded batches (decoder classifiers also find each text's last token by that id); without one, refused."""
    if tokenizer.pad_token is not None:
        return tokenizer
    pad_id = getattr(teacher.position_config, "pad_token_id", None)
    if isinstance(pad_id, int) and 0 <= pad_id < len(tokenizer):
        tokenizer.pad_token = tokenizer.convert_ids_to_tokens(pad_id)
        return tokenizer
    example = f" (e.g. its eos token's id, {tokenizer.eos_token_id})" if tokenizer.eos_token is not None else ""
    raise ValueError(
        f"Teacher {teacher.source!r}: its tokenizer has no pad token and its config no pad_token_id, so texts cannot "
        f'be labelled in batches: set "pad_token_id" in its config.json{example}.'
    )


def _check_folder(spec: TeacherSpec) -> None:
    """A local folder without `config.json` holds no model: a training run's folder (the model is in its `model`
    subfolder) or any other one is refused with what to give instead."""
    folder = Path(spec.source)
    if not folder.is_dir() or (folder / "config.json").is_file():
        return
    if (inside := run_model_folder(folder)) is not None:
        model = dataclasses.replace(spec, source=str(inside))
        raise ValueError(
            f"Teacher {spec.source!r} is a training run's folder; its model is {model.source}: give that, "
            f"--teacher {_teacher_argument(model)}."
        )
    raise ValueError(
        f"Teacher {spec.source!r} is a folder without config.json: give the folder of a *ForSequenceClassification "
        f"checkpoint or of a polyhead multitask model (a training run's model is in <output_dir>/{MODEL_DIR})."
    )


def _teacher_argument(spec: TeacherSpec) -> str:
    """`spec` written back as a `--teacher` value: `[name=]source[:task,...]`."""
    return f"{spec.name + '=' if spec.name else ''}{spec.source}{':' + ','.join(spec.tasks) if spec.tasks else ''}"


def _multitask_teacher(spec: TeacherSpec, config: MultitaskConfig, commit: str | None = None) -> Teacher:
    picked = spec.tasks or config.task_names
    unknown = [task for task in picked if task not in config.tasks]
    if unknown:
        raise ValueError(f"Teacher {spec.source!r} has no task(s) {unknown}; its tasks: {config.task_names}.")
    choices = config.tasks_of_kind(True, picked)
    if choices:
        others = config.tasks_of_kind(False)
        fix = (
            f"pick its other tasks, --teacher {_teacher_argument(dataclasses.replace(spec, name=None, tasks=others))}"
            if others
            else "it has no other task to distil"
        )
        raise ValueError(
            f"Teacher {spec.source!r}: task(s) {choices} are multiple-choice (they rank answer choices, they do not "
            f"classify a text), which distillation does not support: {fix}."
        )
    if spec.name and len(picked) != 1:
        raise ValueError(
            f"Teacher {spec.source!r}: 'name=' renames one task, but {len(picked)} are distilled ({picked}); pick "
            "one with 'name=source:task', or leave the name out to keep the teacher's task names."
        )
    tasks = {}
    for task in picked:
        head = config.tasks[task]
        name = spec.name or task
        _check_name(name, spec)
        tasks[name] = {
            "labels": list(head["labels"]),
            "problem_type": head["problem_type"],
            "teacher_task": task,
            "text_pair": bool(head.get("text_pair")),
            "threshold": head.get("threshold"),
            "thresholds": head.get("thresholds"),
        }
    return Teacher(spec, "multitask", config.encoder.model_type, tasks, config.encoder, commit)


def _check_name(name: str, spec: TeacherSpec) -> None:
    try:
        check_task_name(name)
    except ValueError as error:
        raise ValueError(f"Teacher {spec.source!r}: {error} Name it with 'name={spec.source}'.") from None


def resolve_teachers(specs: Sequence[str | TeacherSpec], pair_tasks: Sequence[str] = ()) -> list[Teacher]:
    r"""
    Checks every teacher from its config before any of them runs: it is a sequence classifier or a polyhead
    multitask model (a training run's folder is refused with the path of its model), not a regression model nor a
    multiple-choice task (refused), its tokenizer is there and fits its vocabulary, its task names are valid and no
    two teachers map to one task name. `pair_tasks` names the standard teachers' tasks that read sentence pairs (a
    multitask teacher's pair tasks are known from its config: naming one of its single-text tasks is refused).

    Example:

    ```python
    >>> teachers = resolve_teachers(["sentiment=models/sst2", "models/multitask:topic"])
    >>> [name for teacher in teachers for name in teacher.tasks]
    ['sentiment', 'topic']
    ```
    """
    if not specs:
        raise ValueError("No teacher given: name at least one with --teacher [name=]hub-id-or-folder.")
    teachers = [resolve_teacher(parse_teacher(spec)) for spec in specs]
    owners: dict[str, list[str]] = {}
    for teacher in teachers:
        for name in teacher.tasks:
            owners.setdefault(name, []).append(teacher.source)
    clashes = {name: sources for name, sources in owners.items() if len(sources) > 1}
    if clashes:
        described = "; ".join(f"{name!r} <- {sources}" for name, sources in clashes.items())
        raise ValueError(
            f"Two teachers map to one task name ({described}): name them apart with --teacher name=source."
        )
    unknown = sorted(set(pair_tasks) - set(owners))
    if unknown:
        raise ValueError(f"pair_tasks {unknown} are no teacher's task; the tasks are {list(owners)}.")
    for teacher in teachers:  # a polyhead head that reads single texts would be run on pairs and taught as a pair task
        single = [name for name, task in teacher.tasks.items() if not task["text_pair"]]
        if teacher.kind == "multitask" and (wrong := [name for name in single if name in pair_tasks]):
            raise ValueError(
                f"pair_tasks {wrong}: task(s) of polyhead teacher {teacher.source!r} that read single texts (its "
                "config says which of its tasks read pairs); remove them from --pair_tasks."
            )
    for teacher in teachers:
        for name, task in teacher.tasks.items():
            task["text_pair"] = task["text_pair"] or name in pair_tasks
    return teachers


def teacher_max_length(teacher: Teacher, max_length: int | None) -> int:
    """The teacher's token budget: `--teacher_max_length` checked against its position table and its tokenizer's
    special tokens (room for text); by default the length the teacher runs at on its own
    ([`default_teacher_max_length`])."""
    source = f"teacher {teacher.source!r}"
    if max_length is None:
        length = default_teacher_max_length(teacher)
        return check_max_length(length, teacher.position_config, source, option="teacher_max_length")
    tokenizer = _own_tokenizer(teacher)
    return check_max_length(max_length, teacher.position_config, source, tokenizer, option="teacher_max_length")


def default_teacher_max_length(teacher: Teacher) -> int | None:
    r"""
    The length a teacher runs at without `--teacher_max_length`, so that it labels texts as it answers them on its
    own. A polyhead model: the length it was trained at, as its pipeline and evaluation run it (its
    `training_args.json` record, else its tokenizer's `model_max_length`, capped by its positions). A standard
    checkpoint records no trained length (its tokenizer's `model_max_length` is mostly its pretrained encoder's):
    128, or less where its tokenizer's `model_max_length` or its position table says so. `None`: nothing known
    (`check_max_length`'s default).

    Example:

    ```python
    >>> default_teacher_max_length(resolve_teacher(parse_teacher("models/polyhead-model:topic")))  # trained at 256
    256
    ```
    """
    tokenizer = _own_tokenizer(teacher)
    if teacher.kind == "multitask":
        length = trained_max_length(teacher.source, teacher.spec.revision) or default_max_length(
            tokenizer, teacher.position_config
        )
    else:
        length = min(DEFAULT_MAX_LENGTH, default_max_length(tokenizer, teacher.position_config))
    return None if length >= VERY_LARGE_INTEGER else length


def load_teacher(teacher: Teacher) -> tuple[torch.nn.Module, Any]:
    """The teacher's model (eval mode) and its own tokenizer."""
    revision = teacher.spec.revision
    if teacher.kind == "multitask":
        model = MultitaskModel.from_pretrained(teacher.source, revision=revision)
    else:
        model = AutoModelForSequenceClassification.from_pretrained(teacher.source, revision=revision)
    return model.eval(), _load_tokenizer(teacher)


def _load_tokenizer(teacher: Teacher) -> Any:
    """The teacher's own tokenizer, with a pad token to batch texts ([`_set_pad_token`])."""
    return _set_pad_token(_own_tokenizer(teacher), teacher)


def _own_tokenizer(teacher: Teacher) -> Any:
    """The teacher's own tokenizer, as saved (a polyhead model's may come with remote code)."""
    remote = {"trust_remote_code": True} if teacher.kind == "multitask" else {}
    return AutoTokenizer.from_pretrained(teacher.source, revision=teacher.spec.revision, **remote)


def teacher_forward(teacher: Teacher, model: torch.nn.Module, pair: bool) -> Callable[[dict], dict[str, torch.Tensor]]:
    """`batch -> {student task: logits}` for the teacher's tasks that read pairs (`pair`) or single texts."""
    names = [name for name, task in teacher.tasks.items() if task["text_pair"] == pair]
    if teacher.kind == "multitask":
        own = [teacher.tasks[name]["teacher_task"] for name in names]

        def forward(batch: dict) -> dict[str, torch.Tensor]:
            logits = model(**batch, task=own).logits
            return {name: logits[task] for name, task in zip(names, own)}

        return forward
    return lambda batch: {names[0]: model(**batch).logits}


@torch.no_grad()
def run_batches(
    forward: Callable[[dict], dict[str, torch.Tensor]],
    tokenizer: Any,
    texts: Sequence[str],
    pairs: Sequence[str] | None,
    batch_size: int,
    max_length: int,
    desc: str | None = None,
) -> dict[str, np.ndarray]:
    r"""
    Runs `forward` over `texts` (with `pairs`: sentence pairs) in batches of similar length, tokenizing each batch
    with `tokenizer`; returns `{task: float32 logits}` in input order. Used for the teachers' labels and the speed
    comparison, so both sides pay for tokenization the same way.

    Example:

    ```python
    >>> run_batches(lambda b: {"t": model(**b).logits}, tokenizer, ["a", "b"], None, 32, 128)["t"].shape
    (2, 2)
    ```
    """
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]) + (len(pairs[i]) if pairs else 0))
    outputs: dict[str, np.ndarray] = {}
    starts = range(0, len(order), batch_size)
    for start in tqdm(starts, desc=desc, disable=desc is None, leave=False):
        chunk = order[start : start + batch_size]
        args = [[texts[i] for i in chunk]] + ([[pairs[i] for i in chunk]] if pairs else [])
        batch = tokenizer(*args, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        for task, logits in forward(dict(batch)).items():
            if task not in outputs:
                outputs[task] = np.zeros((len(texts), logits.shape[-1]), dtype=np.float32)
            outputs[task][chunk] = logits.float().cpu().numpy()
    return outputs


def describe(teacher: Teacher) -> dict[str, Any]:
    """The JSON-ready record of a teacher (results.json, training_args.json, the model card)."""
    return {
        "source": teacher.source,
        "revision": teacher.spec.revision,
        "kind": teacher.kind,
        "model_type": teacher.model_type,
        "tasks": {name: task["teacher_task"] or name for name, task in teacher.tasks.items()},
    }


def fingerprint(*values: Any) -> str:
    """sha256 of the JSON form of `values` (texts, settings, identities)."""
    digest = hashlib.sha256()
    for value in values:
        digest.update(json.dumps(value, sort_keys=True, ensure_ascii=False).encode("utf-8"))
        digest.update(b"\x00")
    return digest.hexdigest()


__all__ = [
    "TOKENIZER_FILE_PATTERNS",
    "Teacher",
    "TeacherSpec",
    "default_teacher_max_length",
    "derived_task_name",
    "describe",
    "fingerprint",
    "is_tokenizer_file",
    "load_teacher",
    "parse_teacher",
    "resolve_teacher",
    "resolve_teachers",
    "run_batches",
    "teacher_forward",
    "teacher_max_length",
]
