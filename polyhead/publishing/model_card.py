"""Model cards for multitask models: rendered offline from the config, `results.json` and `training_args.json`.

[`render_model_card`] is pure: plain dicts in, `README.md` text out, no Hub call and no file read except the Jinja
template in `model_cards/`. Tables are built here; the template only places them. The YAML header is built with
`huggingface_hub`'s `ModelCardData` and one `EvalResult` per (task, metric), each task its own `dataset_config` so the
Hub does not merge the results of tasks that share a dataset.

[`write_model_card`] does the impure parts for a model folder: it reads the files a training run writes, takes the
widget's answers (the Hub does not run custom code in widgets, so their `output` is precomputed; when the caller does
not pass them, `polyhead.serving.inference.predict_widget` computes them), records the installed framework versions and
writes `README.md` with [`GENERATED_MARKER`].

Inputs (every key optional unless said otherwise):

- `results` (the `results.json` schema of `polyhead.evaluation.scoring`): `{"tasks": {task: {metric: value}}`
  (required), `"average": {metric: value, "primary": value}`, `"primary_metrics": {task: metric}`,
  `"majority_baseline": {task: {metric: value}}`, `"split": str`, `"num_examples": {task: int}}`. Metric keys:
  single-label `accuracy`, `precision_macro`, `recall_macro`, `f1_macro`; multi-label `f1_micro`, `f1_macro`,
  `precision_micro`, `recall_micro`, `precision_macro`, `recall_macro`, `exact_match`, `label_accuracy`.
- `training_args` (the `training_args.json` schema of `polyhead.training.trainer`): `{"model": {"encoder_name_or_path",
  "pooling", "max_length", ...}, "data": {"tasks": [{"name", "dataset", "dataset_config", "data_files",
  "test_split", ...}], "sampling", "temperature"}, "training": TrainingArguments.to_dict(), "num_train_examples":
  {task: int}, "train_metrics": {...}}`.
- `baseline_results`: `baselines/results.json`, the same schema as `results`, one single-task model per task.
- `widget`: `[{"text": str, "output": {task: [{"label", "score"}]}}]`, the pipeline's default answers.
"""

import dataclasses
import importlib.metadata
import itertools
import json
import os
import platform
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from polyhead import encoders, run_folder
from polyhead.encoders import encoder_hub_id, hub_id_or_none
from polyhead.evaluation.agreement import CONFIDENT_MARGIN, forgetting_text, gold_text, temperature_text
from polyhead.evaluation.comparison import COLUMNS, comparison_rows
from polyhead.remote_code import MULTI_LABEL, MULTIPLE_CHOICE, PIPELINE_TASK, MultitaskConfig, normalize_tasks
from polyhead.serving.inference import (
    predict_widget,  # kept importable from here: polyhead.publishing.model_card.predict_widget
)


_TEMPLATE_NAME = "multitask_model_card_template.md"
# Installed from a wheel the template is in `polyhead/model_cards/`; in the source tree (and editable installs) it is
# the top-level `model_cards/`.
TEMPLATE_PATH = Path(__file__).resolve().parents[1] / "model_cards" / _TEMPLATE_NAME
if not TEMPLATE_PATH.is_file():
    TEMPLATE_PATH = Path(__file__).resolve().parents[2] / "model_cards" / _TEMPLATE_NAME
# A README holding this line was written by polyhead and may be regenerated; remove it to keep manual edits.
GENERATED_MARKER = "<!-- polyhead:generated-model-card (delete this line to keep manual edits) -->"
GENERATED_MARKER_PREFIX = "<!-- polyhead:generated-model-card"
# The run folder's file names are polyhead.run_folder's; these aliases keep the old import paths working.
README = run_folder.README_FILE
RESULTS_FILE = run_folder.RESULTS_FILE
TRAINING_ARGS_FILE = run_folder.TRAINING_ARGS_FILE
BASELINE_RESULTS_FILE = run_folder.BASELINE_RESULTS_FILE
DEFAULT_WIDGET_TEXTS = ("I really love this, what a great day!",)
# Shown in the errors that refuse a malformed base model or dataset id.
EXAMPLE_BASE_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
EXAMPLE_DATASET = "declare-lab/MELD"
VERSION_PACKAGES = ("polyhead", "transformers", "torch", "huggingface_hub", "datasets", "tokenizers")
# metric key -> (model-index metric type, metric config, readable name)
METRIC_INFO = {
    "accuracy": ("accuracy", None, "Accuracy"),
    "precision_macro": ("precision", "macro", "Precision (macro)"),
    "recall_macro": ("recall", "macro", "Recall (macro)"),
    "f1_macro": ("f1", "macro", "F1 (macro)"),
    "precision_micro": ("precision", "micro", "Precision (micro)"),
    "recall_micro": ("recall", "micro", "Recall (micro)"),
    "f1_micro": ("f1", "micro", "F1 (micro)"),
    "exact_match": ("exact_match", None, "Exact match (subset accuracy)"),
    "label_accuracy": ("accuracy", "label", "Label accuracy (1 - Hamming loss)"),
    "primary": ("primary", None, "Primary metric (mean over tasks)"),
}
HYPERPARAMETERS = (
    ("training", "learning_rate"),
    ("training", "per_device_train_batch_size"),
    ("training", "per_device_eval_batch_size"),
    ("training", "gradient_accumulation_steps"),
    ("training", "num_train_epochs"),
    ("training", "max_steps"),
    ("training", "lr_scheduler_type"),
    ("training", "warmup_steps"),
    ("training", "warmup_ratio"),
    ("training", "weight_decay"),
    ("training", "optim"),
    ("training", "max_grad_norm"),
    ("training", "fp16"),
    ("training", "bf16"),
    ("training", "seed"),
    ("data", "sampling"),
    ("data", "temperature"),
    ("model", "pooling"),
    ("model", "classifier_dropout"),
    ("model", "freeze_encoder"),
    ("model", "max_length"),
    ("model", "share_heads_by_labels"),
    ("model", "task_embeddings"),
    ("model", "task_embedding_dropout"),
)
# The model-shape options (docs/multitask-kinds.md): listed only when on (a run without them shows no extra rows).
_SHAPE_OPTIONS = ("share_heads_by_labels", "task_embeddings")


def check_hub_id(repo_id: str, what: str, kind: str, fix: str, where: str = "") -> None:
    """Raises a `ValueError` naming `repo_id` (`what` it is, `where` it was given) and the `fix` unless it is a valid
    Hub `kind` id (`huggingface_hub`'s own check, no network): a card would name and link a repo that cannot exist."""
    problem = run_folder.repo_id_problem(repo_id)
    if problem:
        raise ValueError(f"{what} {repo_id!r}{where} is not a valid Hub {kind} id ({problem}): {fix}.")


@dataclasses.dataclass
class MultitaskCardData:
    r"""
    What a multitask model card says: user fields, and fields computed from the config, results and training args.

    Args:
        repo_id (`str`, *optional*): the Hub repo the card is for (used in the usage snippet and as model name).
        revision (`str`, *optional*, defaults to `"main"`): the branch or commit the usage snippet pins.
        license (`str`, *optional*, defaults to `"apache-2.0"`): an SPDX-like Hub license id.
        language (`list[str]`, *optional*, defaults to `["en"]`): ISO language codes.
        datasets (`list[str]`, *optional*): Hub dataset ids; those named in the training args are added.
        task_datasets (`dict[str, str]`, *optional*): `{task: Hub dataset id}`, the public source of a task trained
            from local files (shown in the data table and added to `datasets`).
        base_model (`str`, *optional*): the pretrained encoder's Hub id; defaults to the one training recorded
            (`training_args["model"]["base_model"]`: the encoder's Hub id, or what a local encoder folder's own
            metadata names, see [`encoder_hub_id`]), else to the training args' encoder when that is a Hub id; a bare
            local path is left out.
        widget_texts (`list[str]`, *optional*): example inputs for the Hub widget and the usage section.
        description (`str`, *optional*): a paragraph on what the model is for; a generic one otherwise.
        model_name (`str`, *optional*): the title; defaults to the repo name.

    Example:

    ```python
    >>> card_data = MultitaskCardData(repo_id="org/tweets-multitask", widget_texts=["what a match"])
    >>> card_data.license
    'apache-2.0'
    ```
    """

    repo_id: str | None = None
    revision: str = "main"
    license: str = "apache-2.0"
    language: list[str] = dataclasses.field(default_factory=lambda: ["en"])
    datasets: list[str] = dataclasses.field(default_factory=list)
    task_datasets: dict[str, str] = dataclasses.field(default_factory=dict)
    base_model: str | None = None
    widget_texts: list[str] = dataclasses.field(default_factory=list)
    description: str | None = None
    model_name: str | None = None
    # Computed by `fill`.
    tasks: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict, init=False)
    shared_heads: dict[str, list[str]] = dataclasses.field(default_factory=dict, init=False)
    task_embeddings: bool = dataclasses.field(default=False, init=False)
    task_sources: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict, init=False)
    eval_results: list[EvalResult] = dataclasses.field(default_factory=list, init=False)

    def check(self) -> None:
        """Refuses a `base_model`, `datasets` or `task_datasets` entry that is not a valid Hub repo id
        (`huggingface_hub`'s own check, no network) with a `ValueError` naming it and the fix: the card's metadata
        and links would name a repo that cannot exist."""
        if self.base_model is not None:
            fix = f"give the encoder's Hub id, e.g. {EXAMPLE_BASE_MODEL!r}, or leave it out"
            check_hub_id(self.base_model, "Base model", "model", fix)
        named = [(dataset, "") for dataset in self.datasets]
        named += [(dataset, f" (for task {task!r})") for task, dataset in self.task_datasets.items()]
        for dataset, where in named:
            check_hub_id(dataset, "Dataset", "dataset", f"give it as org/name, e.g. {EXAMPLE_DATASET!r}", where)

    def fill(self, config: Any, results: Mapping[str, Any], training_args: Mapping[str, Any] | None) -> None:
        """Computes tasks, data sources, `base_model`, `datasets` and the eval results from the run's files (after
        [`check`]: user ids that are not Hub ids are refused)."""
        self.check()
        training_args = training_args or {}
        self.tasks = config_tasks(config)
        self.shared_heads, self.task_embeddings = config_shape(config)
        self.task_sources = task_sources(training_args, list(self.tasks))
        for task, dataset in self.task_datasets.items():
            if task not in self.task_sources:
                raise ValueError(f"Dataset given for task {task!r}, which the model lacks ({list(self.tasks)}).")
            self.task_sources[task]["dataset"] = dataset
        if self.base_model is None:
            model_args = training_args.get("model", {})
            # Training resolved `base_model` knowing whether the encoder was a local folder ("models/minilm" looks
            # like a Hub id); runs from before that key read the encoder name (a short name stands for its Hub id).
            recorded = (
                model_args["base_model"]
                if "base_model" in model_args
                else encoders.hub_id(model_args.get("encoder_name_or_path"))
            )
            self.base_model = hub_id_or_none(recorded)
        found = [source["dataset"] for source in self.task_sources.values() if source.get("dataset")]
        self.datasets = list(dict.fromkeys([*self.datasets, *found]))
        self.model_name = self.model_name or (self.repo_id or "multitask-model").split("/")[-1]
        self.eval_results = build_eval_results(results, self.task_sources)

    def to_hub_card_data(self, widget: Sequence[Mapping[str, Any]] | None) -> ModelCardData:
        """The YAML header as `huggingface_hub.ModelCardData`."""
        metric_types = sorted({result.metric_type for result in self.eval_results})
        return ModelCardData(
            license=self.license,
            language=self.language,
            library_name="transformers",
            tags=["multitask", "text-classification", "custom_code", "polyhead"],
            base_model=self.base_model,
            datasets=self.datasets or None,
            metrics=metric_types or None,
            pipeline_tag="text-classification",
            widget=widget_metadata(widget) if widget else None,
            model_name=self.model_name,
            eval_results=self.eval_results or None,
        )


def config_tasks(config: Any) -> dict[str, dict[str, Any]]:
    """The ordered, normalized `tasks` of a `MultitaskConfig`, a `config.json` dict or a bare tasks mapping."""
    if isinstance(config, MultitaskConfig):
        return dict(config.tasks)
    tasks = config.get("tasks", config) if isinstance(config, Mapping) else config
    return normalize_tasks(tasks)


def config_shape(config: Any) -> tuple[dict[str, list[str]], bool]:
    """The config's `shared_heads` (`{}` when none) and `task_embeddings`; a bare tasks mapping has neither."""
    if isinstance(config, MultitaskConfig):
        return dict(config.shared_heads or {}), bool(config.task_embeddings)
    if isinstance(config, Mapping) and "tasks" in config:
        return dict(config.get("shared_heads") or {}), bool(config.get("task_embeddings"))
    return {}, False


def head_of(shared_heads: Mapping[str, Sequence[str]], task: str) -> str:
    """The task whose head `task` runs (`MultitaskConfig.head_of` on the card's copy of `shared_heads`)."""
    return next((head for head, members in shared_heads.items() if task in members), task)


def task_sources(training_args: Mapping[str, Any], task_names: list[str]) -> dict[str, dict[str, Any]]:
    """Per task: `dataset` (a Hub id or `None`), `local_dataset` (a local folder given as `dataset`, e.g. a
    `save_to_disk` one, or `None`), `dataset_config`, `data_files`, `split`, `num_train_examples`."""
    specs = {spec.get("name"): spec for spec in training_args.get("data", {}).get("tasks", []) or []}
    num_train = training_args.get("num_train_examples", {}) or {}
    sources = {}
    for name in task_names:
        spec = specs.get(name, {})
        dataset = spec.get("dataset")
        hub_id = hub_id_or_none(dataset) or (dataset if _is_plain_dataset_name(dataset) else None)
        if spec.get("local_dataset"):  # recorded at training: a local folder, however much it looks like a Hub id
            hub_id = None
        in_memory = isinstance(dataset, str) and dataset.startswith("<in-memory")
        sources[name] = {
            "dataset": hub_id,
            "local_dataset": dataset if isinstance(dataset, str) and not hub_id and not in_memory else None,
            "dataset_config": spec.get("dataset_config"),
            "data_files": spec.get("data_files"),
            "in_memory": in_memory,
            "split": spec.get("test_split"),
            "text_column": spec.get("text_column"),
            "label_column": spec.get("label_column"),
            "num_train_examples": num_train.get(name),
        }
    return sources


def _is_plain_dataset_name(dataset: Any) -> bool:
    # Canonical Hub datasets have no namespace ("imdb"); local paths and "<in-memory ...>" markers are not ids.
    return isinstance(dataset, str) and re.fullmatch(r"[A-Za-z0-9][\w.-]*", dataset) is not None


def build_eval_results(results: Mapping[str, Any], sources: Mapping[str, Mapping[str, Any]]) -> list[EvalResult]:
    """One `EvalResult` per (task, metric); `dataset_config` is the task name so tasks never merge on the Hub."""
    split = results.get("split")
    eval_results = []
    for task, task_metrics in results.get("tasks", {}).items():
        dataset = (sources.get(task) or {}).get("dataset") or task
        for key, value in task_metrics.items():
            metric_type, metric_config, metric_name = METRIC_INFO.get(key, (key, None, key))
            eval_results.append(
                EvalResult(
                    task_type="text-classification",
                    task_name=f"Text classification ({task})",
                    dataset_type=dataset,
                    dataset_name=task,
                    dataset_config=task,
                    dataset_split=split,
                    metric_type=metric_type,
                    metric_name=metric_name,
                    metric_config=metric_config,
                    metric_value=round(float(value), 4),
                )
            )
    return eval_results


def shown_answers(prediction: Mapping[str, Sequence[Mapping[str, Any]]]) -> dict[str, Sequence[Mapping[str, Any]]]:
    """The part of a pipeline answer the card shows: every task, or the first `MAX_DETAILED_TASKS` above that many
    (an answer of hundreds of tasks would be thousands of lines of widget YAML and example tables)."""
    return dict(itertools.islice(prediction.items(), MAX_DETAILED_TASKS))


def flatten_prediction(prediction: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[dict[str, Any]]:
    """A pipeline answer `{task: [{"label", "score"}]}` as the flat list a Hub widget shows: `"task: label"` labels,
    in task order (the Hub widget has no notion of tasks; the first `MAX_DETAILED_TASKS` tasks above that many)."""
    return [
        {"label": f"{task}: {item['label']}", "score": round(float(item["score"]), 4)}
        for task, items in shown_answers(prediction).items()
        for item in items
    ]


def widget_metadata(widget: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The `widget:` YAML entries: each example text with its precomputed, flattened output."""
    return [{"text": example["text"], "output": flatten_prediction(example["output"])} for example in widget]


def format_value(value: Any) -> str:
    """Metrics with 4 decimals, other values as they are (`-` for missing)."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def code_span(text: Any) -> str:
    """`text` as a markdown code span that shows it verbatim (CommonMark): its line breaks become spaces (a code span
    cannot hold one, and a table row must stay on one line), and text holding backticks is fenced by one backtick more
    than its longest run of them, with a space inside each end when it starts or ends with a backtick (or with a space
    at both ends, which CommonMark strips once)."""
    text = " ".join(str(text).splitlines())
    if not text.strip():  # kept as is (an empty span would be two bare backticks)
        return f"`{text or ' '}`"
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if "`" in (text[0], text[-1]) or text[0] == text[-1] == " " else ""
    return f"{fence}{pad}{text}{pad}{fence}"


# What markdown reads as formatting in running text: escapes, code, emphasis, strikethrough, links, HTML, entities.
_MARKDOWN_INLINE = re.compile(r"([\\`*_~\[\]<>&])")


def plain_text(text: Any) -> str:
    """Free text (a widget example) as markdown that shows it verbatim: what markdown would read as formatting is
    backslash-escaped (line breaks and pipes are left to [`table_cell`])."""
    return _MARKDOWN_INLINE.sub(r"\\\1", str(text))


def table_cell(cell: Any) -> str:
    """One markdown table cell, kept on its row: line breaks become `<br>`, and pipes are escaped (GFM splits cells on
    a pipe even inside a code span, and reads `\\|` as a pipe there too)."""
    return "<br>".join(str(cell).splitlines()).replace("|", "\\|")


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A GitHub-flavoured markdown table, every cell (header included) through [`table_cell`]; cells holding user
    text build it with [`code_span`] or [`plain_text`]."""
    lines = ["| " + " | ".join(map(table_cell, header)) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(map(table_cell, row)) + " |")
    return "\n".join(lines)


MAX_DETAILED_TASKS = 20  # above this many tasks the card summarises: no per-task tables or confusion matrices


def tasks_table(
    tasks: Mapping[str, Mapping[str, Any]], shared_heads: Mapping[str, Sequence[str]] | None = None
) -> str:
    """Name, problem type (and input: text or sentence pair), number of labels and labels of every task, in head
    order; above `MAX_DETAILED_TASKS` tasks only the first labels of each are named. With `shared_heads`, a `Head`
    column names the head each task runs and the tasks it shares it with."""
    rows = []
    shown = None if len(tasks) <= MAX_DETAILED_TASKS else 5
    for name, spec in tasks.items():
        if spec["problem_type"] == MULTI_LABEL:
            kind = f"multi-label (threshold {spec.get('threshold', 0.5)})"
            if spec.get("thresholds"):
                low, high = min(spec["thresholds"]), max(spec["thresholds"])
                kind = f"multi-label (per-label thresholds tuned on validation, {low:.2f} to {high:.2f})"
        elif spec["problem_type"] == MULTIPLE_CHOICE:
            rows.append((code_span(name), "multiple choice (each input brings its choices)", "-", "-"))
            continue
        else:
            kind = "single-label (binary)" if len(spec["labels"]) == 2 else "single-label (multiclass)"
        if spec.get("text_pair"):
            kind += ", trained on sentence pairs"
        labels = ", ".join(code_span(label) for label in spec["labels"][:shown])
        if shown is not None and len(spec["labels"]) > shown:
            labels += f", ... ({len(spec['labels']) - shown} more)"
        rows.append((code_span(name), kind, len(spec["labels"]), labels))
    if not shared_heads:
        return markdown_table(("Task", "Problem type", "Labels", "Label names"), rows)
    heads = [_head_cell(shared_heads, name) for name in tasks]
    rows = [(*row, head) for row, head in zip(rows, heads)]
    return markdown_table(("Task", "Problem type", "Labels", "Label names", "Head"), rows)


def _head_cell(shared_heads: Mapping[str, Sequence[str]], task: str) -> str:
    head = head_of(shared_heads, task)
    if head == task and task not in shared_heads:
        return "own"
    return f"{code_span(head)} (shared by {', '.join(code_span(member) for member in shared_heads[head])})"


def task_summary_table(results: Mapping[str, Any], lowest: int = 10) -> str:
    """For many tasks, instead of one table each: the spread of the primary metric, and the lowest-scoring tasks."""
    primary = results.get("primary_metrics", {})
    scores = {
        task: values.get(primary.get(task) or "f1_macro")
        for task, values in results.get("tasks", {}).items()
        if values.get(primary.get(task) or "f1_macro") is not None
    }
    if not scores:
        return ""
    ordered = sorted(scores.values())
    middle = ordered[len(ordered) // 2]
    rows = [
        (
            f"{len(ordered)} tasks",
            *(format_value(v) for v in (sum(ordered) / len(ordered), middle)),
            format_value(ordered[0]),
            format_value(ordered[-1]),
        )
    ]
    summary = markdown_table(("Primary metric", "Mean", "Median", "Min", "Max"), rows)
    worst = sorted(scores, key=scores.get)[:lowest]
    lines = [(code_span(task), primary.get(task, "f1_macro"), format_value(scores[task])) for task in worst]
    return (
        summary
        + f"\n\nThe {len(worst)} lowest-scoring tasks (all scores: `{RESULTS_FILE}`):\n\n"
        + markdown_table(("Task", "Metric", "Value"), lines)
    )


def task_metric_table(task_metrics: Mapping[str, float], majority: Mapping[str, float] | None) -> str:
    """One task's metrics, with the majority-class baseline as a second column when known."""
    header = ["Metric", "Value"] + (["Majority-class baseline"] if majority else [])
    rows = []
    for key, value in task_metrics.items():
        row = [METRIC_INFO.get(key, (key, None, key))[2], format_value(value)]
        if majority:
            row.append(format_value(majority.get(key)))
        rows.append(row)
    return markdown_table(header, rows)


def average_table(average: Mapping[str, float]) -> str:
    """The cross-task average (`primary` is the mean of each task's primary metric)."""
    rows = [(METRIC_INFO.get(key, (key, None, key))[2], format_value(value)) for key, value in average.items()]
    return markdown_table(("Metric", "Mean over tasks"), rows)


def baseline_table(results: Mapping[str, Any], baseline_results: Mapping[str, Any]) -> str:
    """Multitask vs single-task models on each task's primary metric, with the difference."""
    primary = results.get("primary_metrics", {})
    rows = []
    for task, task_metrics in results.get("tasks", {}).items():
        metric = primary.get(task) or ("f1_micro" if "f1_micro" in task_metrics else "f1_macro")
        ours = task_metrics.get(metric)
        theirs = baseline_results.get("tasks", {}).get(task, {}).get(metric)
        delta = f"{ours - theirs:+.4f}" if ours is not None and theirs is not None else "-"
        name = METRIC_INFO.get(metric, (metric, None, metric))[2]
        rows.append((code_span(task), name, format_value(ours), format_value(theirs), delta))
    return markdown_table(("Task", "Metric", "Multitask", "Single-task", "Difference"), rows)


def seed_comparison_table(comparison: Mapping[str, Any]) -> str:
    """The seed-averaged multitask vs single-task comparison (`results["comparison"]`, see
    `polyhead.evaluation.comparison`): per task mean ± std of each side in points, the paired difference, its 95%
    interval and the verdict."""
    rows = [
        (code_span(row[0]) if row[0] != "average" else "**average**", *row[1:]) for row in comparison_rows(comparison)
    ]
    return markdown_table([column.capitalize() for column in COLUMNS], rows)


def forgetting_table(forgetting: Mapping[str, Any]) -> str:
    """The starting model's tasks before and after a continued run (`results["forgetting"]`), on their primary
    metric; a loss beyond the run's margin is flagged."""
    rows = []
    for task, row in forgetting.get("tasks", {}).items():
        flag = " (beyond margin)" if row["change"] < -forgetting.get("margin", 0.0) else ""
        name = METRIC_INFO.get(row["metric"], (row["metric"], None, row["metric"]))[2]
        trained = "yes" if row.get("trained") else "no"
        cells = (format_value(row["before"]), format_value(row["after"]), f"{row['change']:+.4f}{flag}")
        rows.append((code_span(task), name, trained, *cells))
    return markdown_table(("Task", "Metric", "Trained in this run", "Before", "After", "Change"), rows)


def distillation_tables(distillation: Mapping[str, Any]) -> str:
    """A distilled model's teachers, its agreement with them, the soft targets' temperature (each task's where they
    differ), teacher vs student on labelled test splits and its speed against running the teachers one after another
    (`results["distillation"]`, `polyhead.distill.job`)."""
    agreement, test = distillation.get("agreement", {}), distillation.get("test", {})
    rows = []
    for teacher in distillation.get("teachers", []):
        hub_id = hub_id_or_none(teacher.get("source"))  # a local path stays out of the card
        source = code_span(hub_id) if hub_id else "a local model"
        for task, own in teacher.get("tasks", {}).items():
            named = source + (f" (task {code_span(own)})" if own != task else "")
            if not agreement:  # born-again: the only agreement is the one on the labelled test rows
                entry = test.get(task, {})
                rows.append(
                    (code_span(task), named, format_value(entry.get("agreement")), format_value(entry.get("n")))
                )
                continue
            entry = agreement.get(task, {})
            metric = "top-1 agreement" if entry.get("metric") == "accuracy" else "F1 vs the teacher's decisions"
            cells = (format_value(entry.get("value")), format_value(entry.get("n")), _confident_cell(entry))
            rows.append((code_span(task), named, metric, *cells))
    if agreement:
        confident = f"Where the teacher is confident (margin ≥ {CONFIDENT_MARGIN:g}): value (texts)"
        text = markdown_table(("Task", "Teacher", "Agreement", "Value", "Held-out texts", confident), rows)
    else:
        columns = ("Task", "Teacher", "Agreement on the test rows (top-1; multi-label: F1)", "Test rows")
        text = markdown_table(columns, rows) + (
            "\n\nNo held-out unlabeled texts: the teachers labelled the tasks' own train texts (born-again "
            "distillation); the agreement is on the labelled test data."
        )
    if any("confident" in entry for entry in agreement.values()):
        text += (
            "\n\nThe teacher's margin on a text is its top-1 minus its top-2 softmax probability (single-label "
            "tasks). The last column is the agreement on the texts where the teacher's answer is clear: when it is "
            "much higher than the overall value, the student differs from the teacher mostly where the teacher "
            "itself is unsure."
        )
    for sentence in (
        temperature_text(distillation, quote="`"),
        gold_text(distillation),
        forgetting_text(distillation, quote="`"),
    ):
        if sentence:
            text += f"\n\n{sentence}"
    if test:
        lines = []
        for task, entry in test.items():
            name = METRIC_INFO.get(entry["metric"], (entry["metric"], None, entry["metric"]))[2]
            teacher, student = entry["teacher"].get(entry["metric"]), entry["student"].get(entry["metric"])
            delta = f"{student - teacher:+.4f}" if teacher is not None and student is not None else "-"
            lines.append((code_span(task), name, format_value(teacher), format_value(student), delta))
        text += "\n\nOn the labelled test data:\n\n" + markdown_table(
            ("Task", "Metric", "Teacher", "Student", "Difference"), lines
        )
    speed = distillation.get("speed")
    if speed:
        text += (
            f"\n\nSpeed on {speed['texts']} texts (batch {speed['batch_size']}, {speed['torch_threads']} CPU "
            f"thread(s), device `{speed['device']}`): this model {speed['student_texts_per_second']} texts/s, its "
            f"{speed['num_teachers']} teacher(s) run one after another {speed['teachers_texts_per_second']} texts/s "
            f"({speed['speedup']}x), measured in the same run."
        )
    return text


def _confident_cell(entry: Mapping[str, Any]) -> str:
    """`0.9940 (494)`: held-out agreement where the teacher's margin is >= `CONFIDENT_MARGIN` and on how many texts;
    `-` without that breakdown (multi-label tasks, older results)."""
    confident = entry.get("confident")
    return f"{format_value(confident['agreement'])} ({confident['n']})" if confident else "-"


def unscored_text(tasks: Sequence[str], results: Mapping[str, Any], training_args: Mapping[str, Any] | None) -> str:
    """A sentence naming the model's tasks that `results` does not score (empty when it scores all): after a run
    continued from a trained model (`init_from`) without a frozen encoder, their heads read a retrained encoder, so
    their earlier scores no longer hold."""
    missing = [task for task in tasks if task not in results.get("tasks", {})]
    if not missing:
        return ""
    names = ", ".join(code_span(task) for task in missing[:MAX_DETAILED_TASKS])
    if len(missing) > MAX_DETAILED_TASKS:
        names += f" and {len(missing) - MAX_DETAILED_TASKS} more"
    one = len(missing) == 1
    text = f"Not scored here: {names} ({len(missing)} of the model's {len(tasks)} tasks)."
    model_args = (training_args or {}).get("model") or {}
    init_from = model_args.get("init_from") or (results.get("forgetting") or {}).get("init_from")
    if init_from and not model_args.get("freeze_encoder"):
        text += (
            f" This run continued from {_describe_start(init_from)} and retrained the shared encoder that "
            f"{'its head reads' if one else 'their heads read'}, so no score from before this run holds for "
            f"{'it' if one else 'them'}."
        )
    return text + f" Evaluate {'it' if one else 'them'} before relying on {'it' if one else 'them'}."


def _describe_start(init_from: Any) -> str:
    # A Hub id is named; a local path stays out of the card.
    hub_id = hub_id_or_none(init_from)
    return code_span(hub_id) if hub_id else "a trained multitask model (a local folder)"


def hyperparameters_table(training_args: Mapping[str, Any]) -> str:
    """The hyperparameters that matter to reproduce a run (all of them are in `training_args.json`)."""
    rows = []
    for section, key in HYPERPARAMETERS:
        value = (training_args.get(section) or {}).get(key)
        if value is not None and not _irrelevant(training_args, key, value):
            rows.append((code_span(key), str(value)))  # as given: 4-decimal rounding would turn 2e-05 into 0.0000
    return markdown_table(("Hyperparameter", "Value"), rows) if rows else ""


def _irrelevant(training_args: Mapping[str, Any], key: str, value: Any) -> bool:
    # max_steps=-1 means "use epochs"; the temperature only matters to the temperature sampler.
    if key == "max_steps":
        return value == -1
    if key in _SHAPE_OPTIONS:
        return not value
    if key == "task_embedding_dropout":
        return not (training_args.get("model") or {}).get("task_embeddings")
    return key == "temperature" and (training_args.get("data") or {}).get("sampling") != "temperature"


def data_table(sources: Mapping[str, Mapping[str, Any]], results: Mapping[str, Any]) -> str:
    """Where each task's data came from, and how many examples trained and scored it."""
    num_eval, capped = results.get("num_examples", {}), results.get("capped", {})
    split = results.get("split") or "evaluation"
    rows = []
    for task, source in sources.items():
        scored = format_value(num_eval.get(task))
        if task in capped:  # a max_eval_samples subsample of the split, not all of it
            scored += f" of {capped[task]['split_rows']} (subsample)"
        held = (results.get("held_out") or {}).get(task, {}).get(split)
        if held and task in num_eval:  # carved from the train rows (polyhead.data.carve_splits)
            how = ", stratified by label" if held.get("stratified") else ""
            scored += f" (held out: {held['fraction']:.0%} of the train rows, seed {held['seed']}{how})"
        rows.append((code_span(task), describe_source(source), format_value(source.get("num_train_examples")), scored))
    return markdown_table(("Task", "Data", "Training examples", f"{code_span(split)} examples"), rows)


def describe_source(source: Mapping[str, Any]) -> str:
    """`[org/name](https://huggingface.co/datasets/org/name)` (config), local files (named by their folder, so tasks
    read from `<name>/train.jsonl` files can be told apart) or in-memory data, with the columns when not the default
    `text`/`label` (two tasks from one file differ by their label column)."""
    if source.get("dataset"):
        config = f" (config {code_span(source['dataset_config'])})" if source.get("dataset_config") else ""
        text = f"[{source['dataset']}](https://huggingface.co/datasets/{source['dataset']}){config}"
    elif source.get("data_files"):
        text = _describe_files(source["data_files"])
    elif source.get("local_dataset"):  # a local folder given as `dataset:`, named like the folder of data_files
        folder = Path(source["local_dataset"]).name
        text = f"local files in {code_span(folder + '/')}" if folder else "local files"
    else:
        text = "in-memory data" if source.get("in_memory") else "not recorded"
    columns = [
        f"{kind} column {code_span(source[key])}"
        for kind, key, default in (("text", "text_column", "text"), ("label", "label_column", "label"))
        if source.get(key) not in (None, default)
    ]
    return text + (f" ({', '.join(columns)})" if columns else "")


def _describe_files(files: Any) -> str:
    # Only the last folder and file names: a full local path says nothing to a reader and leaks the trainer's disk.
    names = files.values() if isinstance(files, Mapping) else files if isinstance(files, list) else [files]
    paths = [Path(str(name)) for group in names for name in (group if isinstance(group, list) else [group])]
    folders = {path.parent.name for path in paths}
    if len(folders) == 1 and "" not in folders:
        return f"local files in {code_span(folders.pop() + '/')}: " + ", ".join(code_span(path.name) for path in paths)
    return "local files: " + ", ".join(code_span(Path(path.parent.name, path.name).as_posix()) for path in paths)


def confusion_matrix_images(images: Iterable[str], tasks: Iterable[str]) -> list[dict[str, str]]:
    """`[{"task", "path"}]` for the `confusion_matrix_<task>.png` files present (relative paths, in task order)."""
    names = {Path(image).name: str(image) for image in images}
    return [
        {"task": task, "path": names[run_folder.confusion_matrix_image(task)]}
        for task in tasks
        if run_folder.confusion_matrix_image(task) in names
    ]


def versions_list(versions: Mapping[str, str] | None) -> str:
    """Framework versions as a markdown list."""
    return "\n".join(f"- {name}: {version}" for name, version in (versions or {}).items())


def installed_versions() -> dict[str, str]:
    """Python and the installed versions of `VERSION_PACKAGES` (the ones found)."""
    versions = {"Python": platform.python_version()}
    for package in VERSION_PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def pipeline_example(widget: Sequence[Mapping[str, Any]] | None) -> tuple[str, str] | None:
    """The first widget example as (text as a Python literal, JSON of the answer), for the usage section (the first
    `MAX_DETAILED_TASKS` tasks above that many, said so)."""
    if not widget:
        return None
    answer = widget[0]["output"]
    rounded = {
        task: [{"label": item["label"], "score": round(float(item["score"]), 4)} for item in items]
        for task, items in shown_answers(answer).items()
    }
    more = f" ... (the first {len(rounded)} of {len(answer)} tasks)" if len(rounded) < len(answer) else ""
    return json.dumps(widget[0]["text"]), json.dumps(rounded) + more


def widget_answers_table(widget: Sequence[Mapping[str, Any]] | None) -> str:
    """Every widget example with its per-task answer (the Hub widget shows a flattened list; the first
    `MAX_DETAILED_TASKS` tasks above that many, and a row saying how many more)."""
    rows = []
    for example in widget or []:
        shown, text = shown_answers(example["output"]), plain_text(example["text"])  # free text, shown verbatim
        for task, items in shown.items():
            answer = ", ".join(f"{code_span(item['label'])} ({float(item['score']):.4f})" for item in items)
            rows.append((text, code_span(task), answer or "(none)"))
        if len(shown) < len(example["output"]):
            rows.append((text, f"{len(example['output']) - len(shown)} more tasks", "not shown"))
    return markdown_table(("Text", "Task", "Answer (score)"), rows) if rows else ""


def _names(tasks: Iterable[str]) -> str:
    names = [code_span(name) for name in tasks]
    return ", ".join(names[:-1]) + f" and {names[-1]}" if len(names) > 1 else "".join(names)


def shared_heads_text(card_data: MultitaskCardData) -> str:
    """One sentence per group of tasks sharing a head ("" when every task has its own)."""
    groups = [members for members in card_data.shared_heads.values() if len(members) > 1]
    return " ".join(f"Tasks {_names(members)} share one head (same labels)." for members in groups)


def passes_text(card_data: MultitaskCardData) -> str:
    """How many encoder passes an input costs: one for every task, unless task embeddings (one per task) or
    multiple-choice tasks (one row per choice) change it (docs/multitask-kinds.md)."""
    choice = [name for name, spec in card_data.tasks.items() if spec["problem_type"] == MULTIPLE_CHOICE]
    if card_data.task_embeddings:
        text = (
            "With task embeddings (a learned vector per task on the first token), the encoder runs once per task, "
            "each pass with its task's vector: asking for T tasks costs T encoder passes."
        )
    elif len(choice) < len(card_data.tasks):
        text = "One forward pass answers every task" + (" that takes a text or sentence pair." if choice else ".")
    else:
        text = ""
    if choice:
        text += (
            f" A multiple-choice task ({_names(choice)}) scores each choice as one (context, choice) sentence pair: "
            "one encoder row per choice."
        )
    return text.strip()


def default_description(card_data: MultitaskCardData) -> str:
    """What the model does, when the user gave no description."""
    names = ", ".join(code_span(name) for name in card_data.tasks)
    encoder = (
        f"[{card_data.base_model}](https://huggingface.co/{card_data.base_model})"
        if card_data.base_model
        else ("a pretrained transformer encoder")
    )
    heads = f"with one classification head per task ({names})."
    if card_data.shared_heads:
        heads = f"with classification heads for its tasks ({names}). {shared_heads_text(card_data)}"
    return (
        f"A multitask text classifier: one shared encoder fine-tuned from {encoder}, {heads[:-1]}. "
        f"{passes_text(card_data)} It was trained with "
        "[polyhead](https://github.com/polyhead/polyhead) and runs with `trust_remote_code=True`."
    )


def architecture_text(card_data: MultitaskCardData) -> str:
    """The sentence above the tasks table: which tasks have their own head, and what one input costs."""
    if not card_data.shared_heads and not card_data.task_embeddings and passes_text(card_data).startswith("One"):
        own = "Every task has its own head on the shared encoder"
        if passes_text(card_data) == "One forward pass answers every task.":
            return f"{own}; one forward pass answers all of them."
        return f"{own}. {passes_text(card_data)}"
    heads = "Every task has its own head on the shared encoder."
    if card_data.shared_heads:
        heads = f"{shared_heads_text(card_data)} Every other task has its own head on the shared encoder."
    return f"{heads} {passes_text(card_data)}"


# Shown by the usage snippet when it needs a sentence pair or a multiple-choice input (docs/multitask-kinds.md).
PAIR_EXAMPLE = ("A man is playing a guitar.", "Someone plays music.")
CHOICE_EXAMPLE = {
    "text": "The man broke his toe.",
    "question": "What was the cause?",
    "choices": ["He dropped a hammer on his foot.", "He got a hole in his sock."],
}


def usage_example(tasks: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """What the usage snippet feeds the model and which task's logits it shows: the first task that answers a plain
    text (a plain forward runs every task that is not multiple-choice); else the first sentence-pair task, with a
    pair; else (every task multiple-choice) the first task, with a multiple-choice input shaped
    `(batch, choices, length)`. A multiple-choice task never answers a plain text."""
    answering = [name for name, spec in tasks.items() if spec["problem_type"] != MULTIPLE_CHOICE]
    single = [name for name in answering if not tasks[name].get("text_pair")]
    if single:
        return {"kind": "text", "task": single[0]}
    if answering:
        return {"kind": "pair", "task": answering[0], "pair": [json.dumps(text) for text in PAIR_EXAMPLE]}
    item = CHOICE_EXAMPLE
    context = f"{item['text']} {item['question']}"
    return {
        "kind": "choice",
        "task": next(iter(tasks)),
        "context": json.dumps(context),
        "choices": json.dumps(item["choices"]),
        "count": len(item["choices"]),
        "input": json.dumps(item),
    }


def render_model_card(
    config: Any,
    results: Mapping[str, Any],
    training_args: Mapping[str, Any] | None = None,
    *,
    repo_id: str,
    revision: str = "main",
    card_data: MultitaskCardData | None = None,
    baseline_results: Mapping[str, Any] | None = None,
    widget: Sequence[Mapping[str, Any]] | None = None,
    images: Iterable[str] = (),
    versions: Mapping[str, str] | None = None,
    template_path: str | os.PathLike | None = None,
) -> str:
    r"""
    Renders the `README.md` of a multitask model: pure and offline (no Hub call, no file read but the template).

    Args:
        config (`MultitaskConfig`, `dict`): the model config, or the `config.json` dict (only `tasks` is read).
        results (`dict`): the `results.json` dict (schema in this module's docstring).
        training_args (`dict`, *optional*): the `training_args.json` dict; without it the hyperparameters and data
            provenance sections are left out.
        repo_id (`str`): the Hub repo id the usage snippet loads.
        revision (`str`, *optional*, defaults to `"main"`): the revision the usage snippet pins.
        card_data (`MultitaskCardData`, *optional*): user fields (license, language, datasets, base model,
            description); `repo_id` and `revision` given here win over the ones inside it.
        baseline_results (`dict`, *optional*): `baselines/results.json`; the comparison section needs it.
        widget (`list[dict]`, *optional*): `[{"text", "output": pipeline answer}]`, precomputed answers.
        images (`Iterable[str]`, *optional*): file names in the model folder; `confusion_matrix_<task>.png` are shown.
        versions (`dict[str, str]`, *optional*): framework versions to list (inputs, so a rendering is reproducible).
        template_path (`str`, *optional*): another Jinja template; defaults to `TEMPLATE_PATH`.

    Returns:
        `str`: the card text, YAML header included; it parses back with `huggingface_hub.ModelCard`.

    Example:

    ```python
    >>> config = {"tasks": {"sentiment": {"labels": ["negative", "positive"]}}}
    >>> results = {"tasks": {"sentiment": {"accuracy": 0.9, "f1_macro": 0.88}}, "split": "test"}
    >>> text = render_model_card(config, results, repo_id="org/model")
    >>> len(ModelCard(text).data.eval_results)
    2
    ```
    """
    card_data = dataclasses.replace(card_data or MultitaskCardData(), repo_id=repo_id, revision=revision)
    card_data.fill(config, results, training_args)
    card = ModelCard.from_template(
        card_data.to_hub_card_data(widget),
        template_path=str(template_path or TEMPLATE_PATH),
        **template_variables(card_data, results, training_args, baseline_results, widget, images, versions),
    )
    return str(card)


def template_variables(
    card_data: MultitaskCardData,
    results: Mapping[str, Any],
    training_args: Mapping[str, Any] | None,
    baseline_results: Mapping[str, Any] | None,
    widget: Sequence[Mapping[str, Any]] | None,
    images: Iterable[str],
    versions: Mapping[str, str] | None,
) -> dict[str, Any]:
    """Everything the template places: strings and tables, built here."""
    majority = results.get("majority_baseline", {})
    many = len(results.get("tasks", {})) > MAX_DETAILED_TASKS  # hundreds of tasks: a summary, not a table each
    task_tables = [
        {"task": task, "table": task_metric_table(values, majority.get(task))}
        for task, values in results.get("tasks", {}).items()
        if not many
    ]
    return {
        "marker": GENERATED_MARKER,
        "model_name": card_data.model_name,
        "repo_id": card_data.repo_id,
        "revision": card_data.revision,
        "description": card_data.description or default_description(card_data),
        "architecture": architecture_text(card_data),
        "tasks_table": tasks_table(card_data.tasks, card_data.shared_heads),
        "split": results.get("split") or "evaluation",
        "unscored": unscored_text(list(card_data.tasks), results, training_args),
        "task_tables": task_tables,
        "task_summary": task_summary_table(results) if many else "",
        "has_majority": bool(majority),
        "average_table": average_table(results["average"]) if results.get("average") else "",
        "baseline_table": baseline_table(results, baseline_results)
        if baseline_results and not results.get("comparison") and _same_split(results, baseline_results)
        else "",
        "comparison_table": seed_comparison_table(results["comparison"]) if results.get("comparison") else "",
        "comparison_seeds": len((results.get("comparison") or {}).get("seeds", [])),
        "forgetting_table": forgetting_table(results["forgetting"]) if results.get("forgetting") else "",
        "distillation_table": distillation_tables(results["distillation"]) if results.get("distillation") else "",
        "init_from": _describe_start((results.get("forgetting") or {}).get("init_from")),
        "forgetting_margin": (results.get("forgetting") or {}).get("margin"),
        "confusion_matrices": [] if many else confusion_matrix_images(images, card_data.tasks),
        "hyperparameters_table": hyperparameters_table(training_args or {}),
        "data_table": data_table(card_data.task_sources, results),
        "versions": versions_list(versions),
        "pipeline_task": PIPELINE_TASK,
        "example": pipeline_example(widget),
        "widget_table": widget_answers_table(widget),
        "usage": usage_example(card_data.tasks),
    }


def _same_split(results: Mapping[str, Any], baseline_results: Mapping[str, Any]) -> bool:
    # Scores of another split (results of a later evaluation on validation, say) are not compared with the baselines'.
    return baseline_results.get("split") in (None, results.get("split"))


def is_generated_card(text: str) -> bool:
    """Whether a README was written by polyhead (holds the marker) and so may be regenerated."""
    return GENERATED_MARKER_PREFIX in text


def write_model_card(
    folder: str | os.PathLike,
    *,
    repo_id: str,
    revision: str = "main",
    card_data: MultitaskCardData | None = None,
    versions: Mapping[str, str] | None = None,
    overwrite: bool = False,
    widget: Sequence[Mapping[str, Any]] | None = None,
) -> Path:
    r"""
    Renders and writes `<folder>/README.md` from the files of a trained model folder.

    Reads `config.json`, `results.json` (required), `training_args.json`, `baselines/results.json` and the
    `confusion_matrix_<task>.png` files when present; the widget shows `widget`'s answers or, when it is `None`,
    the model's pipeline answers on `card_data.widget_texts` (or `DEFAULT_WIDGET_TEXTS`) from
    `polyhead.serving.inference.predict_widget`
    (`[{"text", "output"}]`); lists the installed framework versions. A README without [`GENERATED_MARKER`] (a
    hand-edited card) is kept unless `overwrite=True`.

    Example:

    ```python
    >>> write_model_card("outputs/model", repo_id="org/tweets-multitask", revision="main")
    PosixPath('outputs/model/README.md')
    ```
    """
    folder = Path(folder)
    path = folder / README
    if path.is_file() and not overwrite and not is_generated_card(path.read_text(encoding="utf-8")):
        raise FileExistsError(f"{path} was edited by hand (no polyhead marker); pass overwrite=True to replace it.")
    results = run_folder.read_results(folder)
    if results is None:
        raise FileNotFoundError(f"{folder / RESULTS_FILE} is missing: evaluate the model before writing its card.")
    card_data = card_data or MultitaskCardData()
    if widget is None:
        widget = predict_widget(folder, card_data.widget_texts or list(DEFAULT_WIDGET_TEXTS))
    text = render_model_card(
        json.loads((folder / "config.json").read_text(encoding="utf-8")),
        results,
        run_folder.read_training_args(folder),
        repo_id=repo_id,
        revision=revision,
        card_data=card_data,
        baseline_results=run_folder.read_baseline_results(folder),
        widget=widget,
        images=run_folder.confusion_matrix_images(folder),
        versions=versions if versions is not None else installed_versions(),
    )
    path.write_text(text, encoding="utf-8")
    return path


__all__ = [
    "GENERATED_MARKER",
    "MultitaskCardData",
    "encoder_hub_id",
    "flatten_prediction",
    "installed_versions",
    "is_generated_card",
    "predict_widget",
    "render_model_card",
    "shown_answers",
    "write_model_card",
]
