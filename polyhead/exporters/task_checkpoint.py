"""One task of a multitask model as a standard `XxxForSequenceClassification` checkpoint (no remote code).

The Hub widget, Inference Providers, text-embeddings-inference and transformers.js run exactly one standard
sequence-classification head with `id2label`. [`export_task`] writes such a folder for one task: the shared encoder's
weights, the family's own head transform (the model's `pooling="native"` layer) and the task's head as the output
projection, so its logits equal the multitask model's for that task (checked on sample texts before anything is
written). Only models trained with `pooling="native"` export: no standard head pools by mean or by the bare first
token. [`publish_exported_task`] uploads such a folder in one commit.

A multi-label task's decision thresholds have no place in a standard checkpoint (the `text-classification` pipeline
returns the top label unless asked for every score): they are written to `config.json` as `polyhead_thresholds`
(`{label: threshold}`, an attribute transformers keeps but ignores), and the card states them and shows how to get
polyhead's answers. A sentence-pair task's card shows the pipeline called on a `{"text", "text_pair"}` pair.
"""

import copy
import dataclasses
import inspect
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import HfApi, ModelCardData
from transformers import AutoModelForSequenceClassification, AutoTokenizer, PreTrainedTokenizerBase

from polyhead.decisions import decision_thresholds
from polyhead.encoders import default_max_length, hub_id_or_none
from polyhead.publishing.model_card import (
    GENERATED_MARKER,
    METRIC_INFO,
    check_hub_id,
    code_span,
    markdown_table,
)
from polyhead.publishing.upload import (
    PublishError,
    PublishResult,
    check_repo_id,
    keeps_remote_readme,
    remote_readme,
    resolve_repo_id,
    select_upload_files,
    upload_staged,
)
from polyhead.remote_code import MULTI_LABEL, MULTIPLE_CHOICE, NATIVE_POOLING_ACTIVATIONS, MultitaskModel
from polyhead.run_folder import README_FILE, check_model_source, model_loading, read_results
from polyhead.saving import atomic_folder, check_export_target, save_tokenizer


logger = logging.getLogger(__name__)

# Per encoder family: where the standard sequence-classification model keeps the dense layer of its head transform
# and its output projection (what `native_pooler.dense` and `heads[task]` become).
HEAD_MODULES = {
    "bert": ("bert.pooler.dense", "classifier"),
    "distilbert": ("pre_classifier", "classifier"),
    "roberta": ("classifier.dense", "classifier.out_proj"),
    "xlm-roberta": ("classifier.dense", "classifier.out_proj"),
    "electra": ("classifier.dense", "classifier.out_proj"),
    "deberta": ("pooler.dense", "classifier"),
    "deberta-v2": ("pooler.dense", "classifier"),
}
DEFAULT_CHECK_TEXTS = (
    "what a great day",
    "I did not like this at all, and I will not come back.",
    "The results were announced this morning",
)
# The usage example of a sentence-pair task (NLI): the Hub widget sends one text, which such a task never sees.
PAIR_EXAMPLE = {"text": "A man is playing a guitar.", "text_pair": "A man is making music."}
MAX_ABS_DIFF = 1e-5
# The exported config's record of a multi-label task's decision thresholds, `{label: threshold}`: transformers keeps
# unknown config attributes through save and load but uses them nowhere, so users read it (`model.config`).
THRESHOLDS_ATTRIBUTE = "polyhead_thresholds"


@dataclasses.dataclass
class TaskExportResult:
    """What [`export_task`] wrote: the folder, the standard class, and the largest logit difference measured."""

    folder: Path
    architecture: str
    max_abs_diff: float


def check_exportable(model: MultitaskModel, task: str) -> None:
    """Raises a `ValueError` (or `KeyError` for an unknown task) when `task` of `model` cannot be exported exactly."""
    config = model.config
    if config.task(task)["problem_type"] == MULTIPLE_CHOICE or config.task_embeddings:
        raise ValueError(
            f"Task {task!r} cannot be exported as a standard sequence-classification checkpoint: multiple-choice "
            "tasks and models with task embeddings have no XxxForSequenceClassification equivalent."
        )
    if config.pooling != "native":
        raise ValueError(
            f"Task {task!r} cannot be exported as a standard sequence-classification checkpoint: the model pools "
            f"with pooling={config.pooling!r}, which no XxxForSequenceClassification head computes. Train the model "
            "with pooling='native' (scripts/train.py --pooling native), the encoder family's own head transform."
        )
    model_type = config.encoder.model_type
    if model_type not in HEAD_MODULES or model_type not in NATIVE_POOLING_ACTIVATIONS:
        raise ValueError(f"Cannot export {model_type!r} encoders: known families are {', '.join(HEAD_MODULES)}.")
    width = getattr(config.encoder, "pooler_hidden_size", config.hidden_size)
    if width != config.hidden_size:
        raise ValueError(f"Cannot export: pooler_hidden_size={width} differs from hidden_size={config.hidden_size}.")


def standard_model(model: MultitaskModel, task: str) -> torch.nn.Module:
    """The `XxxForSequenceClassification` model computing `task` of `model` (same weights, no remote code)."""
    check_exportable(model, task)
    spec = model.config.task(task)
    config = model.config.encoder.__class__.from_dict(model.config.encoder.to_dict())
    config.id2label = model.config.task_id2label(task)
    config.label2id = model.config.task_label2id(task)
    config.problem_type = spec["problem_type"]
    if spec["problem_type"] == MULTI_LABEL:  # the pipeline does not apply them: recorded for the user
        setattr(config, THRESHOLDS_ATTRIBUTE, label_thresholds(spec))
    standard = AutoModelForSequenceClassification.from_config(config).to(model.dtype).eval()
    result = standard.base_model.load_state_dict(model.encoder.state_dict(), strict=False)
    missing = [key for key in result.missing_keys if not key.startswith("pooler.")]
    if missing or result.unexpected_keys:
        raise ValueError(f"Encoder weights do not fit {type(standard).__name__}: {missing or result.unexpected_keys}")
    dense_name, output_name = HEAD_MODULES[config.model_type]
    dense, output = standard.get_submodule(dense_name), standard.get_submodule(output_name)
    head = model.heads[model.config.head_of(task)]  # a task sharing a head (shared_heads) exports that head
    with torch.no_grad():
        dense.weight.copy_(model.native_pooler.dense.weight)
        dense.bias.copy_(model.native_pooler.dense.bias)
        output.weight.copy_(head.weight)
        output.bias.copy_(head.bias)
    return standard


def label_thresholds(spec: dict[str, Any]) -> dict[str, float]:
    """A multi-label task's decision threshold of each label, `{label: threshold}`: its tuned per-label thresholds,
    else its threshold for every label (the rule of `polyhead.decisions`: a label is predicted at or above it)."""
    return dict(zip(spec["labels"], decision_thresholds(spec), strict=True))


def max_logit_difference(
    model: MultitaskModel,
    standard: torch.nn.Module,
    task: str,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    max_length: int | None = None,
) -> float:
    """The largest |difference| between the multitask model's logits for `task` and the standard model's, on `texts`
    cut at `max_length` tokens (default: the tokenizer's `model_max_length`)."""
    model.eval()
    standard.eval()
    batch = tokenizer(list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    accepted = inspect.signature(standard.forward).parameters
    with torch.no_grad():
        expected = model(**batch, task=task).logits[task]
        got = standard(**{k: v for k, v in batch.items() if k in accepted}).logits
    return float((expected - got).abs().max())


def export_task(
    model_or_path: MultitaskModel | str | os.PathLike,
    task: str,
    out_dir: str | os.PathLike,
    *,
    tokenizer: PreTrainedTokenizerBase | None = None,
    revision: str | None = None,
    base_model: str | None = None,
    texts: Sequence[str] | None = None,
    results: dict[str, Any] | None = None,
) -> TaskExportResult:
    r"""
    Writes `task` of a multitask model to `out_dir` as a standard `XxxForSequenceClassification` checkpoint that
    `AutoModelForSequenceClassification.from_pretrained(out_dir)` and `pipeline("text-classification", model=out_dir)`
    load without remote code: weights, config with the task's `id2label`/`label2id`/`problem_type` (and a multi-label
    task's thresholds as `polyhead_thresholds`), tokenizer (its `model_max_length` the length polyhead cuts texts
    at, so that the pipeline's `truncation=True` cuts there too) and a short model card (`pipeline_tag:
    text-classification`, `base_model` = the multitask repo, the task's metrics and decision rule, usage code that
    gives polyhead's answers).

    Before anything is written, the logits of both models are compared on `texts` (default: a few sentences): an
    export that differs by more than 1e-5 is refused. `out_dir` must be new or empty; it is written atomically.

    Args:
        model_or_path: a [`MultitaskModel`] (then pass `tokenizer`), a model folder or a Hub repo id.
        task (`str`): the task to export.
        out_dir: the folder to write.
        revision (`str`, *optional*): the Hub revision of `model_or_path`.
        base_model (`str`, *optional*): the multitask model's Hub id for the card (default: `model_or_path` when it
            is a Hub id).
        texts (`list[str]`, *optional*): texts to compare the two models on.
        results (`dict`, *optional*): the multitask model's `results.json` (default: read from `model_or_path`).

    Raises:
        `ValueError`: the model's pooling is not `"native"` (no standard head reproduces it), the encoder family is
            unknown, the logits differ, `base_model` is not a valid Hub repo id, or `out_dir` lies inside the model
            folder; `FileExistsError`: `out_dir` exists and is not empty; `KeyError`: unknown task.

    Example:

    ```python
    >>> export_task("outputs/run/model", "emotion", "outputs/emotion")
    TaskExportResult(folder=PosixPath('outputs/emotion'), architecture='BertForSequenceClassification', ...)
    ```
    """
    source = None if isinstance(model_or_path, MultitaskModel) else str(model_or_path)
    if revision is not None and (source is None or Path(source).is_dir()):  # it would be ignored
        raise ValueError(
            f"revision={revision!r} applies to a Hub repo id, and {source or 'the model given'} is not one: leave "
            "it out (a local folder holds one version)."
        )
    check_export_target(out_dir, source=source)  # new or empty, outside the source: export never replaces anything
    if base_model is not None:
        fix = "give the multitask model's Hub id, e.g. 'org/tweets-multitask', or leave it out"
        check_hub_id(base_model, "Base model", "model", fix)
    model = model_or_path
    if source is not None:
        check_model_source(source)
        with model_loading(source):
            model = MultitaskModel.from_pretrained(source, revision=revision)
    check_exportable(model, task)
    if tokenizer is None:
        if source is None:
            raise ValueError("export_task: pass the tokenizer with a MultitaskModel.")
        tokenizer = AutoTokenizer.from_pretrained(source, revision=revision, trust_remote_code=True)
    standard = standard_model(model, task)
    max_length = _polyhead_max_length(model, tokenizer, source, revision)
    difference = max_logit_difference(model, standard, task, tokenizer, texts or DEFAULT_CHECK_TEXTS, max_length)
    if not difference <= MAX_ABS_DIFF:
        raise ValueError(f"Export of task {task!r} refused: its logits differ by {difference:.2e} (> {MAX_ABS_DIFF}).")
    if results is None and source is not None:
        results = read_results(source, revision)
    base_model = base_model or (hub_id_or_none(source) if source and not Path(source).exists() else None)
    if base_model is None:
        logger.warning(
            "No Hub id for the multitask model: the card has no base_model (pass base_model=..., --base-model)."
        )
    tokenizer = _tokenizer_for(standard, tokenizer)
    with atomic_folder(out_dir) as tmp:
        standard.save_pretrained(tmp)
        save_tokenizer(tokenizer, tmp, max_length)  # where `truncation=True` cuts: where polyhead does
        card = render_task_card(model.config, task, type(standard).__name__, base_model, results, texts)
        (tmp / README_FILE).write_text(card, encoding="utf-8")
    logger.info("Exported task %r to %s (max |logit difference| %.1e).", task, out_dir, difference)
    return TaskExportResult(Path(out_dir), type(standard).__name__, difference)


def _tokenizer_for(standard: torch.nn.Module, tokenizer: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    # The pipeline passes every tokenizer output to the model: drop those it does not take (DistilBERT: token types).
    accepted = inspect.signature(standard.forward).parameters
    names = [name for name in tokenizer.model_input_names if name in accepted]
    if names != list(tokenizer.model_input_names):
        tokenizer = copy.deepcopy(tokenizer)  # the caller's tokenizer is left as it was
        tokenizer.model_input_names = names
        tokenizer.init_kwargs["model_input_names"] = names
    return tokenizer


def _polyhead_max_length(
    model: MultitaskModel, tokenizer: PreTrainedTokenizerBase, source: str | None, revision: str | None = None
) -> int:
    # The length polyhead runs the model at, saved as the exported tokenizer's `model_max_length` (what the standard
    # pipeline's `truncation=True` cuts at): a run's recorded trained length, else the tokenizer's capped by the
    # encoder's positions (a tokenizer saved without one reports ~1e30, and the standard pipeline would not cut).
    recorded = None
    if source is not None:  # a folder, or a Hub id's published training_args.json
        from polyhead.evaluation.scoring import trained_max_length  # here: scoring imports the plotting libraries

        recorded = trained_max_length(source, revision)
    return recorded or default_max_length(tokenizer, model.config.encoder)


def render_task_card(
    config: Any,
    task: str,
    architecture: str,
    base_model: str | None,
    results: dict[str, Any] | None,
    texts: Sequence[str] | None = None,
) -> str:
    """The exported folder's `README.md`: YAML metadata for the Hub widget, the labels, the task's decision rule
    (a multi-label task's thresholds), its metrics and usage code that gives polyhead's answers."""
    spec = config.task(task)
    texts = list(texts or DEFAULT_CHECK_TEXTS)
    pair = bool(spec.get("text_pair"))
    metrics = ((results or {}).get("tasks") or {}).get(task) or {}
    data = ModelCardData(
        library_name="transformers",
        pipeline_tag="text-classification",
        base_model=base_model,
        tags=[
            "text-classification",
            "polyhead",
            "multi-label" if spec["problem_type"] == MULTI_LABEL else "single-label",
        ],
        # What the Hub widget offers: one text, which a sentence-pair task never sees (no examples then).
        widget=None if pair else [{"text": text} for text in texts[:2]],
    )
    rows = [(METRIC_INFO.get(k, (k, None, k))[2], f"{float(v):.4f}") for k, v in metrics.items()]
    split = (results or {}).get("split", "test")
    metrics_text = markdown_table(("Metric", "Value"), rows) if rows else "No metrics were recorded for this task."
    source = f"[{base_model}](https://huggingface.co/{base_model})" if base_model else "a polyhead multitask model"
    inputs = (
        "\n- Input: a sentence pair (`text`, `text_pair`), as the task was trained. The Hub widget sends one text, so "
        "this card has no widget examples: call the pipeline on a pair (Usage)."
        if pair
        else ""
    )
    body = f"""
{GENERATED_MARKER}

# {task}

Task `{task}` of {source}, exported by polyhead as a standard `{architecture}` checkpoint: it loads without remote
code and gives the same logits as the multitask model for this task (checked to 1e-5 when exported).

- Problem type: `{spec["problem_type"]}`
- Labels: {", ".join(code_span(label) for label in spec["labels"])}{inputs}
{decisions_section(spec)}
## Metrics ({split} split, measured on the multitask model)

{metrics_text}

## Usage

```python
{usage_code(spec, texts[0])}
```
"""
    return f"---\n{data.to_yaml()}\n---\n{body}"


def decisions_section(spec: dict[str, Any]) -> str:
    """For a multi-label task, the `## Decisions` section: its thresholds (one, or a table of per-label ones), and
    how the standard pipeline's scores give polyhead's answers; empty for a single-label task (top-1 either way)."""
    if spec["problem_type"] != MULTI_LABEL:
        return ""
    thresholds = label_thresholds(spec)
    if len(set(thresholds.values())) == 1:
        rule = f"the task's threshold, **{next(iter(thresholds.values()))!r}** (the same for every label)."
    else:
        rows = [(code_span(label), repr(value)) for label, value in thresholds.items()]
        rule = "that label's own threshold:\n\n" + markdown_table(("Label", "Threshold"), rows)
    return f"""
## Decisions

Each label's score is the sigmoid of its logit, and polyhead predicts every label whose score is at least {rule}

The `text-classification` pipeline returns only the top label unless asked for every score: pass `top_k=None` and
keep the labels at or above their threshold, as in Usage below, to get the multitask model's answers. The thresholds
are also in `config.json` as `{THRESHOLDS_ATTRIBUTE}` (`{{label: threshold}}`, `model.config.{THRESHOLDS_ATTRIBUTE}`
once loaded), which transformers ignores.
"""


def usage_code(spec: dict[str, Any], text: str) -> str:
    """The card's usage code: the standard pipeline called on `text` (a sentence-pair task: on a `{"text",
    "text_pair"}` pair) so that it answers as polyhead does: truncated at the tokenizer's length as polyhead truncates
    (text-classification does not truncate unless asked); for a multi-label task, every score kept at or above its
    label's threshold (the actual numbers)."""
    example = json.dumps(PAIR_EXAMPLE if spec.get("text_pair") else text, ensure_ascii=False)
    lines = ["from transformers import pipeline", ""]
    if spec["problem_type"] != MULTI_LABEL:
        return "\n".join(
            [
                *lines,
                'classifier = pipeline("text-classification", model="<this repo>")',
                f"classifier({example}, truncation=True)  # cut at the trained length, as polyhead does",
            ]
        )
    thresholds = label_thresholds(spec)
    lines += [
        'classifier = pipeline("text-classification", model="<this repo>")',
        f"scores = classifier({example}, top_k=None, truncation=True)  # every label's score (here: a flat list)",
    ]
    if len(set(thresholds.values())) == 1:
        value = next(iter(thresholds.values()))
        lines.append(f'labels = [item for item in scores if item["score"] >= {value!r}]  # polyhead\'s answer')
    else:
        per_label = json.dumps(thresholds, ensure_ascii=False)  # a dict of strings and floats: a Python literal too
        lines += [
            f"thresholds = {per_label}  # also classifier.model.config.{THRESHOLDS_ATTRIBUTE}",
            'labels = [item for item in scores if item["score"] >= thresholds[item["label"]]]  # polyhead\'s answer',
        ]
    return "\n".join(lines)


def publish_exported_task(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    private: bool = False,
    branch: str = "main",
    commit_message: str | None = None,
    token: str | None = None,
    endpoint: str | None = None,
    overwrite_readme: bool = False,
) -> PublishResult:
    r"""
    Uploads a folder written by [`export_task`] to `repo_id` in one commit, after checking that it loads with
    `AutoModelForSequenceClassification` and no remote code. A hand-edited `README.md` on the branch (no polyhead
    marker) is kept, as publishing keeps one (`PublishResult.readme == "kept-remote"`), unless `overwrite_readme`.

    Example:

    ```python
    >>> publish_exported_task("outputs/emotion", "org/tweets-emotion").commit_url
    ```
    """
    folder = Path(folder)
    check_repo_id(repo_id)
    config = (
        json.loads((folder / "config.json").read_text(encoding="utf-8")) if (folder / "config.json").is_file() else {}
    )
    if not config or "auto_map" in config:
        raise PublishError(
            f"{folder} is not a folder written by export_task (a standard checkpoint). Nothing was published."
        )
    try:
        AutoModelForSequenceClassification.from_pretrained(folder)
        AutoTokenizer.from_pretrained(folder)
    except (OSError, ValueError) as error:
        raise PublishError(f"{folder} does not load: {error}. Nothing was published.") from error
    api = HfApi(endpoint=endpoint, token=token)
    repo_id = resolve_repo_id(api, repo_id, dry_run=False)
    with tempfile.TemporaryDirectory(prefix="polyhead-publish-") as tmp:
        staging = Path(tmp) / "upload"  # beside the download cache of the branch's README
        staging.mkdir()
        for name in select_upload_files(folder):
            shutil.copy2(folder / name, staging / name)
        readme = "generated"
        remote = remote_readme(api, repo_id, branch, str(Path(tmp) / "cache"))
        if keeps_remote_readme(remote, overwrite_readme):
            (staging / README_FILE).unlink(missing_ok=True)
            readme = "kept-remote"
        files = select_upload_files(staging)
        message = commit_message or "Upload exported task"
        oid, url, removed = upload_staged(api, staging, repo_id, branch, private, message)
    return PublishResult(
        repo_id=repo_id,
        branch=branch,
        files=files,
        readme=readme,
        removed=removed,
        commit_oid=oid,
        commit_url=url,
    )


__all__ = [
    "DEFAULT_CHECK_TEXTS",
    "HEAD_MODULES",
    "THRESHOLDS_ATTRIBUTE",
    "TaskExportResult",
    "check_exportable",
    "export_task",
    "label_thresholds",
    "max_logit_difference",
    "publish_exported_task",
    "read_results",
    "render_task_card",
    "standard_model",
]
