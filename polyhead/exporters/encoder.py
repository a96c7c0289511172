"""The shared encoder of a multitask model alone, as a standard transformers folder (no remote code), to fine-tune.

A multitask model's encoder has learned from every task it was trained on; tasknet/tasksource publish theirs as the
starting point for new fine-tuning ("recycling": IBM's model-recycling evaluation ranks such encoders by how much
they improve fine-tuning over their base). [`export_encoder`] writes it as the family's plain `AutoModel` checkpoint
(safetensors weights, config, tokenizer and a short card naming the tasks and their data), which
`AutoModel.from_pretrained(out)` and `AutoModelForSequenceClassification.from_pretrained(out, num_labels=k)` load
like any other encoder, in any tool. The heads are not exported (`scripts/export_task.py` exports one task with its
head). The benchmark `polyhead.benchmark.recycling` measures what the exported encoder buys on unseen tasks.

The encoder's pooler: polyhead pools by itself and drops the family's pooler, so only a model trained with
`pooling="native"` on a BERT-style encoder has a trained one (exported as the encoder's `pooler`); otherwise the
folder has none and `AutoModelForSequenceClassification` starts its pooler fresh, as it does its classifier.
"""

import copy
import dataclasses
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import transformers
from huggingface_hub import ModelCardData
from transformers import AutoModel, AutoTokenizer, PreTrainedTokenizerBase

from polyhead.encoders import hub_id_or_none
from polyhead.exporters.task_checkpoint import DEFAULT_CHECK_TEXTS, MAX_ABS_DIFF, _tokenizer_for
from polyhead.publishing.model_card import GENERATED_MARKER
from polyhead.remote_code import MultitaskModel
from polyhead.run_folder import (
    README_FILE,
    check_model_source,
    check_model_weights,
    read_results,
    read_training_args,
)
from polyhead.saving import atomic_folder, check_export_target, save_tokenizer


logger = logging.getLogger(__name__)


@dataclasses.dataclass
class EncoderExportResult:
    """What [`export_encoder`] wrote: the folder, the encoder class, the tasks it learned, and the largest difference
    between the exported encoder's hidden states and the multitask model's (measured by reloading the folder)."""

    folder: Path
    architecture: str
    tasks: list[str]
    max_abs_diff: float


def check_export_source(model_dir: str | os.PathLike) -> None:
    """Raises a `ValueError` naming the problem unless `model_dir` is a local polyhead multitask model folder whose
    weights files are complete (an empty or truncated one is named, not a bare safetensors error)."""
    check_model_source(model_dir, hub_ids=False)
    check_model_weights(model_dir)


def standard_encoder(model: MultitaskModel) -> torch.nn.Module:
    """A copy of `model.encoder` as the family's `AutoModel`, with the trained pooler where there is one (see the
    module docstring); the multitask model is left as it was."""
    encoder = copy.deepcopy(model.encoder)
    pooler = getattr(AutoModel.from_config(model.config.encoder), "pooler", None)
    if model.native_pooler is not None and isinstance(getattr(pooler, "dense", None), torch.nn.Linear):
        pooler.dense.load_state_dict(model.native_pooler.dense.state_dict())
        encoder.pooler = pooler.to(model.dtype)  # BERT's pooler is dense + tanh: the native pooling of BERT
    return encoder.eval()


def max_hidden_difference(
    expected: torch.nn.Module, folder: str | os.PathLike, tokenizer: PreTrainedTokenizerBase, texts: Sequence[str]
) -> float:
    """The largest |difference| between `expected`'s last hidden states and those of the encoder saved in `folder`."""
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()  # a folder without a pooler is expected here: no load report
    try:
        reloaded = AutoModel.from_pretrained(folder).eval()
    finally:
        transformers.logging.set_verbosity(verbosity)
    batch = tokenizer(list(texts), padding=True, truncation=True, return_tensors="pt")
    with torch.no_grad():
        before = expected(**batch).last_hidden_state
        after = reloaded(**batch).last_hidden_state
    return float((before - after).abs().max())


def export_encoder(
    model_dir: str | os.PathLike, out_dir: str | os.PathLike, texts: Sequence[str] | None = None
) -> EncoderExportResult:
    r"""
    Writes the shared encoder of the multitask model folder `model_dir` to `out_dir` as a standard transformers folder:
    the family's `AutoModel` weights (safetensors) and config, the model's tokenizer, and a `README.md` card naming
    the tasks it was trained on, their data and their scores. The folder is written atomically (a failure leaves no
    `out_dir`) and is checked before it is moved into place: reloaded with `AutoModel.from_pretrained`, its hidden
    states must equal the multitask model's on `texts` (default: a few sentences) to 1e-5.

    Args:
        model_dir: a multitask model folder (`<output_dir>/model` of scripts/train.py).
        out_dir: a new or empty folder.
        texts (`list[str]`, *optional*): the texts the reloaded encoder is compared on.

    Raises:
        `ValueError`: `model_dir` is not a polyhead multitask model folder, its weights file is empty or truncated,
            `out_dir` lies inside it, or the reloaded encoder differs;
        `FileExistsError`: `out_dir` exists and is not empty;
        `OSError`: the weights do not load (e.g. the folder has none).

    Example:

    ```python
    >>> export_encoder("outputs/run/model", "outputs/encoder").tasks
    ['emotion', 'hate', 'offensive']
    >>> AutoModelForSequenceClassification.from_pretrained("outputs/encoder", num_labels=2)
    ```
    """
    check_export_source(model_dir)
    check_export_target(out_dir, source=model_dir)
    model = MultitaskModel.from_pretrained(model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    encoder = standard_encoder(model)
    max_length = getattr(tokenizer, "model_max_length", None)
    tokenizer = _tokenizer_for(encoder, tokenizer)  # without the inputs the encoder does not take (DistilBERT's types)
    with atomic_folder(out_dir) as tmp:
        encoder.save_pretrained(tmp)
        save_tokenizer(tokenizer, tmp, max_length)
        card = render_encoder_card(model, read_training_args(model_dir), read_results(model_dir))
        (tmp / README_FILE).write_text(card, encoding="utf-8")
        difference = max_hidden_difference(encoder, tmp, tokenizer, texts or DEFAULT_CHECK_TEXTS)
        if not difference <= MAX_ABS_DIFF:
            raise ValueError(f"Encoder export refused: the reloaded encoder differs by {difference:.2e}.")
    logger.info(
        "Exported the encoder of %s to %s (max |hidden state difference| %.1e).", model_dir, out_dir, difference
    )
    return EncoderExportResult(Path(out_dir), type(encoder).__name__, list(model.config.tasks), difference)


def _data_source(spec: dict[str, Any]) -> str:
    # The training run's record of a task's data: a Hub dataset id, or the train file it was read from.
    if spec.get("dataset"):
        config = f" ({spec['dataset_config']})" if spec.get("dataset_config") else ""
        return f"`{spec['dataset']}`{config}"
    files = spec.get("data_files")
    train = files.get(spec.get("train_split") or "train") if isinstance(files, dict) else files
    if isinstance(train, list):
        train = train[0] if train else None
    return f"`{Path(train).parent.name}/{Path(train).name}`" if train else "-"


def _task_rows(model: MultitaskModel, info: dict[str, Any], results: dict[str, Any]) -> list[str]:
    specs = {spec.get("name"): spec for spec in (info.get("data") or {}).get("tasks") or [] if isinstance(spec, dict)}
    examples = info.get("num_train_examples") or {}
    scores, primary = results.get("tasks") or {}, results.get("primary_metrics") or {}
    rows = []
    for name, task in model.config.tasks.items():
        metric = primary.get(name)
        value = (scores.get(name) or {}).get(metric) if metric else None
        score = f"{metric} {100 * value:.1f}" if value is not None else "-"
        problem = task["problem_type"].replace("_classification", "").replace("_", "-")
        cells = [f"`{name}`", problem, str(len(task["labels"])), str(examples.get(name, "-"))]
        rows.append("| " + " | ".join([*cells, _data_source(specs.get(name, {})), score]) + " |")
    return rows


def render_encoder_card(
    model: MultitaskModel, training_args: dict[str, Any] | None, results: dict[str, Any] | None
) -> str:
    """The exported encoder's `README.md`: metadata, the tasks it was trained on (data, train examples, scores of the
    multitask model) and how to fine-tune it."""
    info, results = training_args or {}, results or {}
    recorded = info.get("model") or {}
    base_model = recorded.get("base_model") or hub_id_or_none(recorded.get("encoder_name_or_path"))
    data = ModelCardData(
        library_name="transformers",
        pipeline_tag="feature-extraction",
        base_model=base_model,
        tags=["polyhead", "multitask", "recycled-encoder"],
    )
    split = results.get("split", "test")
    base = f"[{base_model}](https://huggingface.co/{base_model})" if base_model else "a pretrained encoder"
    table = "\n".join(
        [
            f"| task | problem type | labels | train examples | data | multitask model's {split} score |",
            "|---|---|---|---|---|---|",
            *_task_rows(model, info, results),
        ]
    )
    snippet = json.dumps("<this folder or repo>")
    body = f"""
{GENERATED_MARKER}

# Multitask encoder ({len(model.config.tasks)} tasks)

The shared encoder of a polyhead multitask model, exported alone as a standard `{model.config.encoder.model_type}`
checkpoint: a starting point for fine-tuning on new tasks. It started from {base} and was trained on these tasks
(one head each, not included here):

{table}

## Fine-tune it

```python
from transformers import AutoModelForSequenceClassification, AutoTokenizer

model = AutoModelForSequenceClassification.from_pretrained({snippet}, num_labels=2)
tokenizer = AutoTokenizer.from_pretrained({snippet})
```
"""
    return f"---\n{data.to_yaml()}\n---\n{body}"


__all__ = [
    "EncoderExportResult",
    "check_export_source",
    "check_export_target",
    "export_encoder",
    "max_hidden_difference",
    "render_encoder_card",
    "standard_encoder",
]
