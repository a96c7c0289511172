"""Scoring a multitask model on every task's split, and the files a run writes about it.

`evaluate_model` runs the model over every task's rows in one pass (a tqdm bar over batches), computes each task's
metrics with the local `evaluate` modules of `polyhead.evaluation.metrics`, and writes into `output_dir`:

- `results.json`, the stable schema that model cards and benchmarks read::

      {"tasks": {task: {metric: value}},            # METRIC_KEYS of the task's problem type
       "average": {metric: value, "primary": ...},  # macro average across tasks (metrics.macro_average)
       "primary_metrics": {task: metric name},
       "problem_types": {task: problem type},
       "majority_baseline": {task: {metric: value}},  # only when train labels were given
       "split": "test", "num_examples": {task: n}, "model": path or null,
       "capped": {task: {"scored": n, "split_rows": N}},  # only for splits cut by max_eval_samples (n < N rows)
       "held_out": {task: {"test" | "validation": {"from", "fraction", "seed", "rows", "stratified"}}},
                   # only for splits carved from the train rows (polyhead.data.carve_splits)
       "not_scored": [task, ...],  # only when some task had no split to score
       "comparison": {...},  # only from `--single_task_baselines --seeds N`: polyhead.evaluation.comparison
       "untuned_thresholds": {task: {metric: value}},  # multi-label tasks with tuned per-label thresholds:
                                                       # their scores at the task's single threshold
       "thresholds": {task: {"from": "model" | "evaluation", "threshold": t, "per_label": {label: t}}},
                   # only from `evaluate_saved_model`: the decision thresholds each multi-label task was scored at
                   # ("per_label" when they are the model's tuned ones; "evaluation": threshold= was given)
       "weights_sha256": hex digest or null}
                   # only from `evaluate_saved_model`: the fingerprint of the weights scored
                   # (polyhead.run_folder.weights_sha256; null for a Hub model whose cached files were not found):
                   # publishing refuses an evaluation of other weights than the folder's

- `classification_report_<task>.txt` (scikit-learn's per-label report), `confusion_matrix_<task>.png` (a
  row-normalised heatmap; above 30 labels the most-confused classes and confusions; per-label TP/FP/FN bars for
  multi-label tasks) and `confusion_matrix_<task>.csv` (the full counts). Report files of other tasks, left by an
  earlier evaluation into the same folder, are removed (with a warning): the reports are the `results.json`'s.
"""

import hashlib
import logging
import os
import sys
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase

from polyhead import choices, run_folder
from polyhead.decisions import decision_thresholds, logits_to_predictions
from polyhead.evaluation import metrics, plots
from polyhead.remote_code import MULTI_LABEL, MULTIPLE_CHOICE, SINGLE_LABEL, MultitaskModel
from polyhead.run_folder import check_model_source, check_model_weights, check_output_folder, model_loading
from polyhead.tasks import TaskSpec, is_saved_dataset


logger = logging.getLogger(__name__)
RESULTS_FILE = run_folder.RESULTS_FILE  # the run-folder contract lives in polyhead.run_folder
NOT_SCORED_HINT = "give each a test split, or hold one out of its train rows with test_size > 0 (e.g. --test_size 0.1)"
MAX_PLOTTED_TASKS = 20  # the model card's limit for per-task sections, too


def score_task(spec: Mapping[str, Any], logits: np.ndarray, references: np.ndarray) -> tuple[dict, np.ndarray]:
    r"""
    Metrics of one task from its logits, given its config entry (`{"labels", "problem_type", "threshold"}`).

    Example:

    ```python
    >>> spec = {"labels": ["neg", "pos"], "problem_type": "single_label_classification"}
    >>> score_task(spec, np.array([[2.0, 0.1], [0.3, 1.0]]), np.array([0, 0]))[0]["accuracy"]
    0.5
    ```
    """
    problem_type = spec["problem_type"]
    predictions = logits_to_predictions(problem_type, logits, decision_thresholds(spec))
    references = np.asarray(references).astype(np.int64)
    num_labels = len(spec["labels"]) if problem_type == SINGLE_LABEL else None
    return metrics.compute_task_metrics(problem_type, predictions, references, num_labels=num_labels), predictions


def majority_predictions(problem_type: str, train_labels: list, size: int, num_labels: int) -> np.ndarray:
    """What the majority-class baseline predicts `size` times: the most frequent train class (single-label), or each
    label's majority value in train (multi-label; usually all zeros)."""
    if problem_type == MULTI_LABEL:
        rate = np.asarray(train_labels, dtype=float).reshape(-1, num_labels).mean(axis=0)
        return np.tile((rate > 0.5).astype(np.int64), (size, 1))
    most_common = Counter(train_labels).most_common(1)[0][0]
    return np.full(size, int(most_common), dtype=np.int64)


_INPUT_COLUMNS = ("input_ids", "attention_mask", "token_type_ids")


@torch.no_grad()
def predict_all_logits(
    model: MultitaskModel,
    tasks: Mapping[str, datasets.Dataset],
    tokenizer: PreTrainedTokenizerBase,
    batch_size: int = 32,
    progress: bool = True,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    r"""
    Every task's `(logits, labels)` from ONE pass over the rows of all `tasks` (`{task: tokenized Dataset with
    labels}`): identical inputs (tasks sharing texts) are encoded once, batches of similar length mix tasks, and then
    each task's head scores its own rows. Hundreds of small tasks cost what their rows cost, not a DataLoader each.
    The pooled vector of every distinct input (hidden size floats each) is kept until the heads have run. A model
    without `encode`/`head_logits` (`OnnxMultitaskModel`) keeps the tasks' logits of every distinct input instead.

    Example:

    ```python
    >>> logits, labels = predict_all_logits(model, {"emotion": encoded["test"]}, tokenizer)["emotion"]
    ```
    """
    model.eval()
    choice_tasks, _ = choices.split_tasks(list(tasks), model)  # their own batches of (context, choice) pairs
    results = {task: choices.predict_logits(model, tasks[task], tokenizer, task, batch_size) for task in choice_tasks}
    tasks = {task: dataset for task, dataset in tasks.items() if task not in choice_tasks}
    if getattr(model, "task_embeddings", None) is not None and len(tasks) > 1:  # one pass per task, with its vector
        for task, dataset in tasks.items():
            results.update(predict_all_logits(model, {task: dataset}, tokenizer, batch_size, progress))
        return results
    if not tasks:
        return results
    columns = {task: _plain_columns(dataset) for task, dataset in tasks.items()}
    inputs, rows = _distinct_inputs(columns)
    names = list(tasks)
    features = _encode_all(model, tokenizer, inputs, batch_size, progress, f"Evaluating {len(tasks)} task(s)", names)
    sizes = [len(model.config.task(task)["labels"]) for task in names]
    ends = np.cumsum(sizes).tolist()
    for task, size, end in zip(names, sizes, ends):
        picked = features[rows[task].to(features.device)]
        logits = model.head_logits(picked, [task]) if _has_heads(model) else picked[:, end - size : end]
        logits = logits.float().cpu().numpy()
        multi_label = model.config.task(task)["problem_type"] == MULTI_LABEL
        labels = np.asarray(columns[task]["labels"], dtype=np.float32 if multi_label else np.int64)
        results[task] = (logits, labels)
    return results


def _plain_columns(dataset: datasets.Dataset) -> dict[str, list]:
    """Every column of a dataset as Python lists, in one read (a read per column costs ~0.2 ms, per task)."""
    shown = dataset.format.get("columns")  # None or every column: all of them, as Python objects
    if dataset.format.get("type") is not None or (shown is not None and set(shown) != set(dataset.column_names)):
        dataset = dataset.with_format(None)
    return dataset[:]


def _distinct_inputs(tasks: Mapping[str, dict[str, list]]) -> tuple[list[dict], dict[str, torch.Tensor]]:
    """The distinct tokenized inputs of all tasks' rows (`{task: columns}`), and for each task where each of its rows
    is among them."""
    position, inputs, rows = {}, [], {}
    for task, columns in tasks.items():
        names = [name for name in _INPUT_COLUMNS if name in columns]
        found = []
        for values in zip(*(columns[name] for name in names)):
            key = (tuple(names), *map(tuple, values))
            if key not in position:
                position[key] = len(inputs)
                inputs.append(dict(zip(names, values)))
            found.append(position[key])
        rows[task] = torch.tensor(found, dtype=torch.long)
    return inputs, rows


def _has_heads(model) -> bool:
    return hasattr(model, "encode") and hasattr(model, "head_logits")


def _encode_all(
    model, tokenizer, inputs: list[dict], batch_size: int, progress: bool, desc: str, tasks: list[str]
) -> torch.Tensor:
    """The pooled encoder output of every input (in input order), run in batches of similar length; for a model
    without `encode` (an ONNX graph), the `tasks`' logits side by side."""
    order = sorted(range(len(inputs)), key=lambda i: len(inputs[i]["input_ids"]))
    width = model.config.hidden_size if _has_heads(model) else sum(len(model.config.task(t)["labels"]) for t in tasks)
    features = torch.zeros(len(inputs), width, dtype=model.dtype, device=model.device)
    for start in tqdm(range(0, len(order), batch_size), desc=desc, disable=not progress, leave=False):
        chunk = order[start : start + batch_size]
        batch = tokenizer.pad([inputs[i] for i in chunk], return_tensors="pt").to(model.device)
        if _has_heads(model):
            embedded = getattr(model, "task_embeddings", None) is not None  # then `tasks` is one task
            values = model.encode(**batch, task=tasks[0]) if embedded else model.encode(**batch)
        else:
            logits = model(**batch, task=tasks).logits
            values = torch.cat([logits[task] for task in tasks], dim=-1)
        features[torch.tensor(chunk, device=model.device)] = values
    return features


def predict_logits(
    model: MultitaskModel,
    dataset: datasets.Dataset,
    tokenizer: PreTrainedTokenizerBase,
    task: str,
    batch_size: int = 32,
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Runs one task's head over a tokenized dataset; returns `(logits, labels)` as numpy arrays (see
    [`predict_all_logits`] for several tasks at once)."""
    return predict_all_logits(model, {task: dataset}, tokenizer, batch_size, progress)[task]


def evaluate_model(
    model: MultitaskModel,
    tokenizer: PreTrainedTokenizerBase,
    tasks: Mapping[str, datasets.Dataset],
    split: str = "test",
    batch_size: int = 32,
    output_dir: str | os.PathLike | None = None,
    train_labels: Mapping[str, list] | None = None,
    model_path: str | None = None,
    progress: bool | None = None,
    split_rows: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    r"""
    Scores `model` on each task's tokenized split and (with `output_dir`) writes `results.json`, a classification
    report and a confusion-matrix PNG per task (see the module docstring for the schema).

    Args:
        model: the multitask model; its config gives each task's labels, problem type and threshold.
        tokenizer: pads the batches.
        tasks: `{task: tokenized Dataset with labels}` (from `polyhead.data.tokenize_task_data`).
        split: recorded in the results.
        batch_size: evaluation batch size.
        output_dir: where the files go; nothing is written when `None`.
        train_labels: `{task: train label ids}`; adds the majority-class baseline of each task.
        model_path: recorded in the results.
        progress: show a tqdm bar per task (default: when stderr is a terminal, so a redirected log stays plain).
        split_rows: `{task: rows in the full split}`; a task scored on fewer rows (a `max_eval_samples` cap) is
            listed under `"capped"` in the results.

    Example:

    ```python
    >>> results = evaluate_model(model, tokenizer, {"emotion": encoded["test"]}, output_dir="outputs/eval")
    >>> results["tasks"]["emotion"]["f1_macro"], results["average"]["primary"]
    ```
    """
    results, outputs = score_model(
        model, tokenizer, tasks, split, batch_size, train_labels, model_path, progress, split_rows
    )
    if output_dir is not None:
        write_evaluation(model, results, outputs, output_dir, split)
    return results


def score_model(
    model: MultitaskModel,
    tokenizer: PreTrainedTokenizerBase,
    tasks: Mapping[str, datasets.Dataset],
    split: str = "test",
    batch_size: int = 32,
    train_labels: Mapping[str, list] | None = None,
    model_path: str | None = None,
    progress: bool | None = None,
    split_rows: Mapping[str, int] | None = None,
) -> tuple[dict[str, Any], dict[str, tuple[np.ndarray, np.ndarray]]]:
    """[`evaluate_model`] without writing: returns the results dict and `{task: (predictions, references)}`, what
    [`write_evaluation`] writes."""
    results: dict[str, Any] = {"tasks": {}, "num_examples": {}, "split": split, "model": model_path}
    progress = sys.stderr.isatty() if progress is None else progress
    outputs = {}
    predicted = predict_all_logits(model, tasks, tokenizer, batch_size, progress)  # one pass over every task's rows
    for task, dataset in tasks.items():
        spec = model.config.task(task)
        logits, references = predicted[task]
        results["tasks"][task], predictions = score_task(spec, logits, references)
        if spec.get("thresholds"):  # tuned per-label thresholds: also the scores at the task's single threshold
            untuned = {key: value for key, value in spec.items() if key != "thresholds"}
            results.setdefault("untuned_thresholds", {})[task] = score_task(untuned, logits, references)[0]
        results["num_examples"][task] = len(dataset)
        outputs[task] = (predictions, references.astype(np.int64))
    _add_summary(results, model, train_labels or {}, outputs)
    capped = {
        task: {"scored": scored, "split_rows": int(split_rows[task])}
        for task, scored in results["num_examples"].items()
        if split_rows and task in split_rows and scored < split_rows[task]
    }
    if capped:
        results["capped"] = capped
    return results, outputs


def write_evaluation(
    model: MultitaskModel,
    results: Mapping[str, Any],
    outputs: Mapping[str, tuple],
    output_dir: str | os.PathLike,
    split: str,
) -> None:
    """Writes what [`score_model`] returned: `results.json` and each task's reports (see the module docstring). Report
    files that this evaluation does not rewrite (other tasks', an earlier evaluation's into the same folder) are
    removed: they would read as this evaluation's."""
    remove_stale_reports(model, outputs, output_dir)
    write_results(results, output_dir)
    write_reports(model, outputs, output_dir, split)


def remove_stale_reports(model: MultitaskModel, outputs: Mapping[str, tuple], output_dir: str | os.PathLike) -> list:
    """Removes the report files in `output_dir` (`polyhead.run_folder.REPORT_PATTERNS`) that [`write_reports`] will not
    rewrite for `outputs`; returns their names (a warning names them too)."""
    folder = Path(output_dir)
    if not folder.is_dir():
        return []
    tasks, plot = _reported_tasks(model, outputs)
    kept = {run_folder.classification_report_file(task) for task in tasks}
    kept |= {run_folder.confusion_matrix_counts(task) for task in tasks}
    kept |= {run_folder.confusion_matrix_image(task) for task in tasks} if plot else set()
    stale = sorted(
        {path.name for pattern in run_folder.REPORT_PATTERNS for path in folder.glob(pattern) if path.is_file()} - kept
    )
    for name in stale:
        (folder / name).unlink()
    if stale:
        logger.warning(
            f"{folder}: removed the reports of an earlier evaluation that this one does not rewrite: {stale} (the "
            f"folder's reports are its {RESULTS_FILE}'s); write each evaluation to its own folder to keep both."
        )
    return stale


def _reported_tasks(model: MultitaskModel, outputs: Mapping[str, tuple]) -> tuple[list[str], bool]:
    """The tasks that get report files (not multiple-choice ones: no fixed labels, accuracy in results.json only),
    and whether their confusion-matrix PNGs are drawn (not above `MAX_PLOTTED_TASKS` tasks)."""
    tasks = [task for task in outputs if model.config.task(task)["problem_type"] != MULTIPLE_CHOICE]
    return tasks, len(outputs) <= MAX_PLOTTED_TASKS


def _add_summary(results: dict, model: MultitaskModel, train_labels: Mapping[str, list], outputs: dict) -> None:
    problem_types = {task: model.config.task(task)["problem_type"] for task in results["tasks"]}
    results["average"] = metrics.macro_average(results["tasks"], problem_types)
    results["primary_metrics"] = {task: metrics.primary_metric(p) for task, p in problem_types.items()}
    results["problem_types"] = problem_types
    baselines = {}
    for task, labels in train_labels.items():
        if task not in outputs:
            continue
        references = outputs[task][1]
        spec = model.config.task(task)
        guess = majority_predictions(spec["problem_type"], labels, len(references), len(spec["labels"]))
        num_labels = len(spec["labels"]) if spec["problem_type"] == SINGLE_LABEL else None
        baselines[task] = metrics.compute_task_metrics(spec["problem_type"], guess, references, num_labels)
    if baselines:
        results["majority_baseline"] = baselines


def evaluate_saved_model(
    model_dir: str | os.PathLike,
    tasks: Any,
    split: str = "test",
    output_dir: str | os.PathLike | None = None,
    batch_size: int = 32,
    max_length: int | None = None,
    max_samples: int | None = None,
) -> dict[str, Any]:
    r"""
    Scores a saved model folder (loaded with `trust_remote_code=True`) on a split of any of its tasks, next to the
    majority-class baseline of each task's train split (when the task has one).

    Args:
        model_dir: the model folder.
        tasks: anything `polyhead.tasks.load_task_specs` reads; task names must be model tasks. Labels and problem
            types come from the model's config, so a label outside the model's label map is an error.
        split: the split role: `"test"`, `"eval"` (or `"validation"`: the spec's eval split) or `"train"`.
        output_dir: where files go (default `<model_dir>/eval-<split>`).
        batch_size: evaluation batch size (>= 1).
        max_length: truncation; default: the length the model was trained at, as the pipeline runs it
            (`polyhead.encoders.default_max_length`; for older folders their `training_args.json`). Checked against
            the encoder's position table.
        max_samples: seeded subsample of each task's split (recorded under `"capped"` in the results).

    Example:

    ```python
    >>> results = evaluate_saved_model("outputs/demo-model", ["topic=data/bbc"], split="test")
    ```
    """
    from transformers import AutoModel, AutoTokenizer

    from polyhead.data import DEFAULT_SPLIT_SEED, ROLES, load_task_data, tokenize_task_data
    from polyhead.encoders import check_max_length, check_positive_int, default_max_length
    from polyhead.tasks import load_task_specs

    role = {"validation": "eval"}.get(split, split)
    if role not in ROLES:
        raise ValueError(f"Unknown split {split!r}: choose test, validation (or eval) or train.")
    check_positive_int("batch_size", batch_size)
    if max_samples is not None:
        check_positive_int("max_samples", max_samples)
    specs = load_task_specs(tasks)
    check_model_source(model_dir)
    output_dir = output_dir or run_folder.evaluation_dir(model_dir, split)
    check_output_folder(output_dir)
    if run_folder.is_multitask_folder(output_dir):  # its results.json and reports are the training run's
        raise ValueError(
            f"output_dir {str(output_dir)!r} is a model folder: the evaluation would replace its {RESULTS_FILE} and "
            "reports (which its model card shows). Leave output_dir out "
            f"({run_folder.evaluation_dir(model_dir, split)}) or give another folder."
        )
    if Path(model_dir).is_dir():
        check_model_weights(model_dir)  # an empty or truncated weights file is named, not a bare safetensors error
    with model_loading(model_dir):
        model = AutoModel.from_pretrained(model_dir, trust_remote_code=True).eval()
    fingerprint = scored_weights_sha256(model_dir)
    unknown = [spec.name for spec in specs if spec.name not in model.config.tasks]
    if unknown:
        raise ValueError(
            f"Task(s) {unknown} are not tasks of the model in {model_dir}; its tasks are {model.config.task_names}. "
            "Name each task as the model does (name=folder, or `name:` in a tasks file)."
        )
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if max_length is None:  # as the pipeline; a folder saved before that held the trained length keeps its record
        max_length = trained_max_length(model_dir) or default_max_length(tokenizer, model.config.encoder)
    max_length = check_max_length(max_length, model.config.encoder, f"the encoder of {model_dir}", tokenizer)
    # Held-out splits are carved as the training run carved them (its fractions and seed), so the rows scored here
    # are the rows it held out.
    recorded = (run_folder.read_training_args(model_dir) or {}).get("data") or {}
    recorded_tasks = {task.get("name"): task for task in recorded.get("tasks") or [] if isinstance(task, dict)}
    specs = [fit_spec_to_model(spec, model, role, recorded_tasks.get(spec.name)) for spec in specs]
    for spec in specs:
        spec.max_eval_samples = max_samples or spec.max_eval_samples
        if role == "train":
            spec.max_train_samples = max_samples or spec.max_train_samples
        for key in ("validation_size", "test_size"):
            if getattr(spec, key) is None:
                setattr(spec, key, recorded_tasks.get(spec.name, {}).get(key, recorded.get(key)))
    split_seed = recorded.get("split_seed", DEFAULT_SPLIT_SEED)
    # The train split too (when there is one): its labels give the majority-class baseline.
    roles = list(dict.fromkeys([role, "train"]))
    # Stratified or not as the run carved them: alone here, a task that shared its source there would be stratified.
    carved = (run_folder.read_results(model_dir) or {}).get("held_out") or {}
    stratified = {
        name: any(entry.get("stratified") for entry in roles_carved.values() if isinstance(entry, dict))
        for name, roles_carved in carved.items()
        if isinstance(roles_carved, dict)
    }
    data = load_task_data(specs, roles=roles, require_train=False, split_seed=split_seed, stratified=stratified)
    missing = [name for name, task in data.items() if role not in task.splits]
    if missing:
        raise ValueError(f"Task(s) {missing} have no {split!r} split to evaluate.")
    encoded = {name: tokenize_task_data(task, tokenizer, max_length)[role] for name, task in data.items()}
    train_labels = {name: task.label_ids("train") for name, task in data.items() if "train" in task.splits}
    split_rows = {name: task.split_rows[role] for name, task in data.items()}
    results = evaluate_model(
        model, tokenizer, encoded, split, batch_size, output_dir, train_labels, str(model_dir), split_rows=split_rows
    )
    held_out = {name: task.held_out for name, task in data.items() if task.held_out}
    if held_out:
        results["held_out"] = held_out
    results["max_length"] = max_length  # the truncation actually used (trained length by default)
    given = {spec.name for spec in specs if spec.threshold is not None}
    thresholds = {name: thresholds_used(model.config.task(name), name in given) for name in results["tasks"]}
    thresholds = {name: used for name, used in thresholds.items() if used is not None}
    if thresholds:
        results["thresholds"] = thresholds
    results[run_folder.WEIGHTS_SHA256] = fingerprint  # which weights these scores are of: checked by publishing
    write_results(results, output_dir)
    return results


def scored_weights_sha256(model_dir: str | os.PathLike) -> str | None:
    """[`polyhead.run_folder.weights_sha256`] of the model `evaluate_saved_model` loaded: of the folder, or of a Hub
    model id, of the cached snapshot `from_pretrained` resolved (`None`, with a warning, when it cannot be found:
    publishing then cannot check the evaluation, and says so)."""
    if Path(model_dir).is_dir():
        return run_folder.weights_sha256(model_dir)
    from huggingface_hub import try_to_load_from_cache

    try:
        config = try_to_load_from_cache(str(model_dir), "config.json")
        fingerprint = run_folder.weights_sha256(Path(config).parent) if isinstance(config, str) else None
    except (OSError, ValueError) as error:  # ValueError: huggingface_hub's HFValidationError
        logger.warning("The weights of %s could not be fingerprinted (%s).", model_dir, error)
        return None
    if fingerprint is None:
        logger.warning(
            "No weights of %s were found in the Hub cache: %s records no %s, so publishing cannot check that this "
            "evaluation is of the model published.",
            model_dir,
            RESULTS_FILE,
            run_folder.WEIGHTS_SHA256,
        )
    return fingerprint


def thresholds_used(spec: Mapping[str, Any], given: bool = False) -> dict[str, Any] | None:
    r"""
    The decision thresholds a multi-label task is scored at (`spec`: its config entry), as `results.json` records
    them: `{"from": "evaluation" (a threshold= given, `given`) or "model", "threshold": the task's threshold,
    "per_label": {label: threshold}}` (`per_label` only for tuned per-label thresholds). `None` for other tasks.

    Example:

    ```python
    >>> thresholds_used({"labels": ["a", "b"], "problem_type": "multi_label_classification", "threshold": 0.3})
    {'from': 'model', 'threshold': 0.3}
    ```
    """
    if spec["problem_type"] != MULTI_LABEL:
        return None
    task_threshold = decision_thresholds({**spec, "thresholds": None})[0]  # the fallback of tuned ones
    used = {"from": "evaluation" if given else "model", "threshold": float(task_threshold)}
    if spec.get("thresholds"):
        used["per_label"] = dict(zip(spec["labels"], map(float, decision_thresholds(spec))))
    return used


def fit_spec_to_model(spec, model: MultitaskModel, role: str, recorded: Mapping[str, Any] | None):
    r"""
    A task spec as evaluation reads it against the model's head: the model's labels and problem type (a
    multiple-choice head reads the `choices` column by default), its pair input checked as training checks it, a
    `threshold` given for a multi-label task applied to this evaluation as one threshold for every label, in place of
    the model's (tuned ones included; the model's config in memory, nothing is saved), and a lone data file that is
    not the training run's train data (`recorded`: its entry of the run's `training_args.json`, see
    [`run_train_files`]) scored whole as the split `role` asks for: only the run's own train data has the held-out
    rows that carving reproduces.
    """
    import dataclasses

    from polyhead.tasks import check_pair_input

    head = model.config.task(spec.name)
    if spec.problem_type is not None and spec.problem_type != head["problem_type"]:
        raise ValueError(
            f"Task {spec.name!r}: problem_type={spec.problem_type} but the model's head is {head['problem_type']}: "
            "drop problem_type= (evaluation reads it from the model)."
        )
    check_pair_input(spec.name, spec.text_pair_column, head)
    spec = dataclasses.replace(spec, labels=head["labels"], problem_type=head["problem_type"])
    if spec.threshold is not None:  # given: applied, also when it equals the model's (its tuned ones are not used)
        if head["problem_type"] != MULTI_LABEL:
            raise ValueError(f"Task {spec.name!r}: threshold= applies to multi-label tasks; this one is not.")
        scored = {key: value for key, value in head.items() if key != "thresholds"}  # one threshold for every label
        model.config.tasks[spec.name] = {**scored, "threshold": float(spec.threshold)}
        tuned = "its tuned per-label thresholds" if head.get("thresholds") else "its threshold"
        logger.info(f"Task {spec.name!r}: scored at threshold {spec.threshold} for every label, in place of {tuned}")
    files = spec.split_files()
    if role != "train" and list(files) == [spec.train_split]:
        paths = files[spec.train_split]
        given = ", ".join(paths)
        run_files, mismatch = run_train_files(spec.name, paths, recorded)
        if mismatch:
            split = spec.test_split if role == "test" else spec.eval_split
            spec = dataclasses.replace(spec, data_files={split: paths})
            logger.warning(f"Task {spec.name!r}: {given} is scored whole as its {split!r} split: {mismatch}.")
        else:  # carved as the run carved it: only the roles its data had no split for
            spec = _carve_as_the_run(spec, role, given, run_files, recorded)
    return spec


def _carve_as_the_run(spec, role: str, given: str, run_files: dict[str, list[str]], recorded: Mapping[str, Any]):
    """`spec` (a lone train file that is the run's train data) holding out no rows for a role (test, validation) that
    the run read from a split of its own: it carved none, its train rows were all train rows. Scoring such a role
    is refused, naming the run's split."""
    import dataclasses

    from polyhead.data import split_names

    keys = {"train_split": "train", "eval_split": "validation", "test_split": "test"}
    names = {key: recorded.get(key, default) for key, default in keys.items()}
    run_splits = split_names(TaskSpec(spec.name, data_files=run_files, **names), run_files)
    for each, size in (("test", "test_size"), ("eval", "validation_size")):
        if run_splits[each] not in run_files:
            continue
        if each == role:
            raise ValueError(
                f"Task {spec.name!r}: {given} is the training run's train data, and the run held none of its rows out "
                f"as its {run_splits[each]!r} split (it read that from {', '.join(run_files[run_splits[each]])}): "
                "score that split instead."
            )
        spec = dataclasses.replace(spec, **{size: 0})
    return spec


def train_data_record(spec: TaskSpec) -> dict[str, Any]:
    r"""
    What a training run records of a task's data beside its spec in `training_args.json` (`data.tasks`), so that an
    evaluation recognises the run's train data however it is spelled then ([`run_train_files`]):

    - `resolved_data_files`: `{split: [absolute paths, links resolved]}` of the local files the task reads: its
      `data_files`, or the files `datasets` reads of a `dataset` folder; `None` for a Hub dataset, a saved dataset or
      data in memory;
    - `train_sha256`: the SHA-256 of each of its train files, in order (the same data copied or moved elsewhere);
    - `local_dataset`: whether its `dataset` was a local folder (`data/spam` also reads as a Hub id: the model card
      must not link it to the Hub).

    Example:

    ```python
    >>> train_data_record(TaskSpec("a", data_files="data/a.jsonl"))["resolved_data_files"]
    {'train': ['/home/me/project/data/a.jsonl']}
    ```
    """
    files = resolved_data_files(spec)
    train = (files or {}).get(spec.train_split)
    return {
        "resolved_data_files": files,
        "train_sha256": [_sha256(path) for path in train] if train else None,
        "local_dataset": isinstance(spec.dataset, (str, os.PathLike)) and Path(spec.dataset).is_dir(),
    }


def task_records(specs: Iterable[TaskSpec]) -> list[dict[str, Any]]:
    """`data.tasks` of a run's `training_args.json` (training and distillation): each task's spec and
    [`train_data_record`]."""
    return [{**spec.to_dict(), **train_data_record(spec)} for spec in specs]


def resolved_data_files(spec: TaskSpec) -> dict[str, list[str]] | None:
    """`{split: [absolute paths, links resolved]}` of the local files a task reads (relative paths from the working
    directory): its `data_files`, or what `datasets` finds in a `dataset` folder (`datasets.load_dataset(folder)`);
    `None` for a Hub dataset, a saved dataset or data in memory."""
    if spec.data_files is not None:
        return {split: [os.path.realpath(path) for path in paths] for split, paths in spec.split_files().items()}
    folder = spec.dataset
    if not isinstance(folder, (str, os.PathLike)) or not Path(folder).is_dir() or is_saved_dataset(folder):
        return None
    from datasets.data_files import DataFilesDict, get_data_patterns

    folder = os.path.realpath(folder)
    try:
        found = DataFilesDict.from_patterns(get_data_patterns(folder), base_path=folder)
    except FileNotFoundError:  # no data file datasets recognises (EmptyDatasetError)
        return None
    return {str(split): [os.path.realpath(path) for path in paths] for split, paths in found.items()}


def run_train_files(
    task: str, paths: list[str], recorded: Mapping[str, Any] | None
) -> tuple[dict[str, list[str]] | None, str | None]:
    r"""
    Whether the files `paths` (a task's lone train split at evaluation) are the training run's train data of `task`
    (`recorded`: its entry of the run's `training_args.json` `data.tasks`): `(the run's data files {split: [absolute
    paths]}, None)` when they are, and carving them as the run did gives the rows it held out; else `(None, why not)`,
    for a warning.

    The same data however spelled: a run records the absolute paths of its data and their SHA-256
    ([`train_data_record`]), so a relative path, `dataset: folder` at training against `name=folder` here, or a copy
    elsewhere are recognised. A run recorded before that kept its paths as given, relative to a working directory it
    did not record: they are resolved from this working directory, then from each folder above `paths` (a warning
    names a match found so).
    """
    if recorded is None:
        return None, (
            f"the model folder records no train data for task {task!r} ({run_folder.TRAINING_ARGS_FILE}); if this "
            "is that data, its rows include trained ones: score a test file the training run did not read"
        )
    mine = [os.path.realpath(path) for path in paths]
    train_split = recorded.get("train_split") or "train"
    spelled = recorded.get("data_files") if recorded.get("data_files") is not None else recorded.get("dataset")
    if isinstance(spelled, Mapping) and train_split in spelled:  # named in messages: the train files as recorded
        spelled = spelled[train_split]
    if "resolved_data_files" in recorded:  # absolute paths and checksums: no guessing
        files = recorded.get("resolved_data_files") or {}
        sums = recorded.get("train_sha256")
        same_content = bool(sums) and len(sums) == len(mine) and [_sha256(path) for path in mine] == sums
        if files.get(train_split) == mine and sums and not same_content:
            logger.warning(
                f"Task {task!r}: {', '.join(mine)} changed since the training run read it (its SHA-256 is not the one "
                f"in {run_folder.TRAINING_ARGS_FILE}): the rows carved from it are not exactly the rows the run held "
                "out and may include rows it trained on; score a test file the run did not read."
            )
        if files.get(train_split) == mine or same_content:
            return files, None
        return None, (
            f"neither its path nor its content is the training run's train data "
            f"({files.get(train_split) or spelled!r} in {run_folder.TRAINING_ARGS_FILE})"
        )
    relative = _relative_paths(spelled)
    for base in [None, *_folders_above(paths)] if relative else [None]:
        files = _recorded_files(recorded, base, mine)
        if files and files.get(train_split) == mine:
            if base is not None:
                logger.warning(
                    f"Task {task!r}: {', '.join(mine)} is taken for the training run's train data, recorded as "
                    f"{spelled!r} relative to a working directory the run did not record (found from {base}): the "
                    "rows it held out are carved and scored. If it is other data, give it as a test split (a tasks "
                    "file with data_files: {test: FILE}) to score it whole."
                )
            return files, None
    where = " relative to a working directory the run did not record" if relative else ""
    return None, (
        f"it does not match the training run's train data, recorded as {spelled!r}{where} in "
        f"{run_folder.TRAINING_ARGS_FILE}. If it is that data, scoring it whole scores rows the model trained on: "
        "evaluate from the training's working directory with the recorded path, so the rows the run held out are "
        "carved"
    )


def _recorded_files(recorded: Mapping[str, Any], base: str | None, mine: list[str]) -> dict[str, list[str]] | None:
    """The absolute data files (`{split: [paths]}`) of a run's recorded task (paths as given), its relative paths
    taken from `base` (default: the working directory). A recorded `dataset` folder is only searched when it holds
    `mine` (the files it is compared with): the folders above them may be large."""

    def rebase(value):
        if isinstance(value, str):
            return value if base is None or os.path.isabs(value) else os.path.join(base, value)
        if isinstance(value, Mapping):
            return {key: rebase(item) for key, item in value.items()}
        return [rebase(item) for item in value] if isinstance(value, list) else value

    try:
        spec = TaskSpec(
            name=recorded.get("name"),
            data_files=rebase(recorded.get("data_files")),
            dataset=rebase(recorded.get("dataset")),
            train_split=recorded.get("train_split") or "train",
        )
    except (ValueError, TypeError):  # a record this version does not read: not matched
        return None
    if spec.dataset is not None:
        folder = Path(os.path.realpath(spec.dataset)) if isinstance(spec.dataset, (str, os.PathLike)) else None
        if folder is None or not all(folder in Path(path).parents for path in mine):
            return None
    return resolved_data_files(spec)


def _relative_paths(value) -> bool:
    """Whether a recorded `data_files` or `dataset` value holds a relative path."""
    if isinstance(value, Mapping):
        return any(_relative_paths(item) for item in value.values())
    if isinstance(value, list):
        return any(_relative_paths(item) for item in value)
    return isinstance(value, str) and not os.path.isabs(value)


def _folders_above(paths: list[str]) -> list[str]:
    """The folders above each of `paths`, as given and with links resolved, nearest first."""
    folders = []
    for path in paths:
        for resolved in (os.path.abspath(path), os.path.realpath(path)):
            folders += [str(folder) for folder in Path(resolved).parents]
    return list(dict.fromkeys(folders))


def _sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def trained_max_length(model_dir: str | os.PathLike, revision: str | None = None) -> int | None:
    """The `max_length` a model folder (or Hub model id) was trained with (its `training_args.json`), or `None` if
    not recorded."""
    info = run_folder.read_training_args(model_dir, revision)
    return ((info or {}).get("model") or {}).get("max_length")


def write_results(results: Mapping[str, Any], output_dir: str | os.PathLike, name: str = RESULTS_FILE) -> Path:
    """Writes a results dict as indented JSON ([`polyhead.run_folder.write_results`])."""
    return run_folder.write_results(results, output_dir, name)


def write_reports(model: MultitaskModel, outputs: Mapping[str, tuple], output_dir: str | os.PathLike, split: str):
    """Writes `classification_report_<task>.txt`, `confusion_matrix_<task>.png` and the full counts in
    `confusion_matrix_<task>.csv` for each task (no PNGs above `MAX_PLOTTED_TASKS` tasks: hundreds of plots take
    minutes and no card shows them)."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    tasks, plot = _reported_tasks(model, outputs)
    for task in tasks:
        predictions, references = outputs[task]
        spec = model.config.task(task)
        report = metrics.classification_report_text(spec["problem_type"], predictions, references, spec["labels"])
        (output_dir / run_folder.classification_report_file(task)).write_text(report, encoding="utf-8")
        if plot:
            plots.plot_confusion_matrix(
                spec["problem_type"],
                predictions,
                references,
                spec["labels"],
                title=f"{task} ({split})",
                path=output_dir / run_folder.confusion_matrix_image(task),
            )
        metrics.write_confusion_matrix_csv(
            spec["problem_type"],
            predictions,
            references,
            spec["labels"],
            output_dir / run_folder.confusion_matrix_counts(task),
        )


def format_results_table(results: Mapping[str, Any]) -> str:
    r"""
    A plain-text table: task, accuracy (or exact match), macro F1, primary metric, and the majority baseline.

    Example:

    ```python
    >>> print(format_results_table(results))
    ```
    """
    baselines = results.get("majority_baseline", {})
    header = f"{'task':<16}{'n':>7}{'accuracy':>10}{'macro F1':>10}{'majority acc':>14}{'majority F1':>13}"
    lines = [header, "-" * len(header)]
    for task, values in results.get("tasks", {}).items():
        base = baselines.get(task, {})
        cells = (_accuracy(values), values.get("f1_macro"), _accuracy(base), base.get("f1_macro"))
        lines.append(
            f"{task:<16}{results.get('num_examples', {}).get(task, 0):>7}"
            + "".join(_cell(value, width) for value, width in zip(cells, (10, 10, 14, 13)) if base or width == 10)
        )
    average = results.get("average") or {}
    if results.get("tasks"):
        lines.append(f"{'average':<16}{'':>7}{_cell(average.get('accuracy'), 10)}{_cell(average.get('f1_macro'), 10)}")
    if results.get("not_scored"):
        lines.append(f"not scored (no test or validation split): {', '.join(results['not_scored'])}.")
        lines.append(f"To score them, {NOT_SCORED_HINT}.")
    return "\n".join(lines)


def _accuracy(values: Mapping[str, float]) -> float | None:
    return values.get("accuracy", values.get("exact_match"))


def format_comparison_table(results: Mapping[str, Any], baseline_results: Mapping[str, Any]) -> str:
    r"""
    A plain-text table of the multitask model vs the single-task baselines on each task's primary metric (macro F1,
    or micro F1 for multi-label tasks), with the difference and the mean over tasks.

    Example:

    ```python
    >>> print(format_comparison_table(results["multitask"], results["baselines"]))
    ```
    """
    primary = results.get("primary_metrics", {})
    header = f"{'task':<16}{'metric':>10}{'multitask':>11}{'single-task':>13}{'difference':>12}"
    lines = [header, "-" * len(header)]
    ours_all, theirs_all = [], []
    for task, values in results["tasks"].items():
        metric = primary.get(task) or ("f1_micro" if "f1_micro" in values else "f1_macro")
        ours, theirs = values.get(metric), baseline_results.get("tasks", {}).get(task, {}).get(metric)
        if ours is None or theirs is None:
            lines.append(f"{task:<16}{metric:>10}{_cell(ours, 11)}{_cell(theirs, 13)}{'-':>12}")
            continue
        ours_all.append(ours)
        theirs_all.append(theirs)
        lines.append(f"{task:<16}{metric:>10}{ours:>11.3f}{theirs:>13.3f}{ours - theirs:>+12.3f}")
    if ours_all:
        ours, theirs = sum(ours_all) / len(ours_all), sum(theirs_all) / len(theirs_all)
        lines.append(f"{'average':<16}{'primary':>10}{ours:>11.3f}{theirs:>13.3f}{ours - theirs:>+12.3f}")
    return "\n".join(lines)


def _cell(value: float | None, width: int) -> str:
    return f"{value:>{width}.3f}" if value is not None else f"{'-':>{width}}"


__all__ = [
    "RESULTS_FILE",
    "evaluate_model",
    "evaluate_saved_model",
    "format_comparison_table",
    "format_results_table",
    "majority_predictions",
    "predict_all_logits",
    "predict_logits",
    "remove_stale_reports",
    "resolved_data_files",
    "run_train_files",
    "score_model",
    "score_task",
    "thresholds_used",
    "task_records",
    "train_data_record",
    "trained_max_length",
    "write_evaluation",
    "write_reports",
    "write_results",
]
