"""Answers of a saved model folder: the one inference helper behind the model card's widget and the demo.

The Hub does not run custom code in widgets, so a card's widget examples carry precomputed answers; they come from
[`predict_widget`] here, as do the demo's printed answers ([`pipeline_answers`]). Rendering a card
(`polyhead.publishing.model_card.render_model_card`) never loads a model.
"""

import os
from collections.abc import Sequence
from typing import Any

import torch
from transformers import AutoTokenizer, Pipeline, pipeline

from polyhead.remote_code import MULTIPLE_CHOICE, PIPELINE_TASK, MultitaskModel
from polyhead.run_folder import check_model_weights


def load_pipeline(
    folder: str | os.PathLike, trust_remote_code: bool = False, compile: bool = False, dtype: str | None = None
) -> Pipeline:
    r"""
    The `multitask-classification` pipeline of a saved model folder, offline: with this package's code, or with
    `trust_remote_code=True` the folder's own remote code (as a Hub user loads it). The weights are checked first, so
    an empty or truncated file is named.

    `dtype`: `"float32"` (the default without `compile`), `"bfloat16"` or `"auto"` (bfloat16 where the CPU multiplies
    it faster than float32, `polyhead.serving.compiled.faster_bf16`; the default with `compile`); `compile=True`: the
    compiled serving path (`polyhead.serving.compiled.compile_model`: torch.compile, padded to shape buckets; eager
    with a warning where it cannot run).

    Example:

    ```python
    >>> classifier = load_pipeline("outputs/model")
    >>> classifier("what a match")["topic"][0]["label"]
    ```
    """
    check_model_weights(folder)
    if trust_remote_code:
        classifier = pipeline(PIPELINE_TASK, model=str(folder), trust_remote_code=True)
    else:
        model = MultitaskModel.from_pretrained(folder).eval()
        classifier = pipeline(PIPELINE_TASK, model=model, tokenizer=AutoTokenizer.from_pretrained(folder))
    if compile or dtype not in (None, "float32"):
        from polyhead.serving.compiled import compile_model, resolve_dtype

        dtype = "auto" if dtype is None else dtype
        if compile:
            compile_model(classifier.model, dtype)
        else:
            classifier.model.to(getattr(torch, resolve_dtype(dtype)))
    return classifier


def pipeline_answers(
    folder: str | os.PathLike, texts: Sequence[str], trust_remote_code: bool = False
) -> list[dict[str, Any]]:
    """The pipeline's default answers (`{task: [{"label", "score"}]}`) on each of `texts`, see [`load_pipeline`]."""
    return load_pipeline(folder, trust_remote_code)(list(texts))


def widget_examples(texts: Sequence[str], answers: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The model card's widget entries, `[{"text", "output"}]`, from texts and their answers."""
    return [{"text": text, "output": output} for text, output in zip(texts, answers)]


def predict_widget(folder: str | os.PathLike, texts: Sequence[str]) -> list[dict[str, Any]]:
    """The pipeline's default answers on `texts` for the model in `folder` (local code, no Hub call), as widget
    entries `[{"text", "output"}]`; none for a model whose tasks are all multiple-choice (no task answers a text)."""
    classifier = load_pipeline(folder)
    if all(spec["problem_type"] == MULTIPLE_CHOICE for spec in classifier.model.config.tasks.values()):
        return []
    return widget_examples(texts, classifier(list(texts)))


__all__ = ["load_pipeline", "pipeline_answers", "predict_widget", "widget_examples"]
