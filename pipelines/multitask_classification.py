# Copyright 2026 The polyhead authors. Licensed under the Apache License, Version 2.0.
"""The `multitask-classification` pipeline: every task's labels for every text, from one encoder pass.

This file is executed by Hub users through `trust_remote_code=True` (a flat copy sits next to the weights): it imports
only torch and transformers, and reads the task list from `model.config.tasks`.
"""

import threading
import types
from typing import Any

import torch
from transformers import AutoModel, AutoTokenizer, Pipeline
from transformers.pipelines import PIPELINE_REGISTRY


PIPELINE_TASK = "multitask-classification"
MULTI_LABEL = "multi_label_classification"
_OUTPUT_PREFIX = "logits."


class MultitaskClassificationPipeline(Pipeline):
    r"""
    Classifies texts for every task of a multitask model at once.

    Returns, for each text, `{task: [{"label": str, "score": float}, ...]}`:
    - single-label tasks: labels sorted by score, the `top_k` best (default 1, `None` for all);
    - multi-label tasks: every label whose sigmoid score is at least the task's threshold (from the config, or
      `threshold=` per call: a float for every multi-label task or a `{task: float}` dict), sorted by score.

    Call parameters: `tasks` (a task name or a list; default all), `top_k`, `threshold`, `truncation` (default
    `True`), `max_length`, `batch_size`, and `sort_by_length` (default `True`: a list is run in batches of similar
    length to waste less compute on padding; results come back in input order; a generator streams in order).

    Example:

    ```python
    >>> from transformers import pipeline
    >>> classifier = pipeline("multitask-classification", model="org/multitask-model", trust_remote_code=True)
    >>> classifier("I love this phone", tasks=["sentiment"])
    {'sentiment': [{'label': 'positive', 'score': 0.98}]}
    ```
    """

    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = False
    _load_tokenizer = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.tokenizer is None and self.model.config.name_or_path:
            # transformers < 4.54 loads no tokenizer for a custom config without `tokenizer_class`: use the model's.
            self.tokenizer = AutoTokenizer.from_pretrained(self.model.config.name_or_path)
        if self.tokenizer is None:
            raise ValueError("The multitask-classification pipeline needs a tokenizer: pass tokenizer=...")
        # A fast tokenizer keeps its truncation settings in shared state: calls with different `max_length` from
        # several threads must not interleave.
        self._tokenizer_lock = threading.Lock()
        if self._batch_size is not None:
            _check_positive_int("batch_size", self._batch_size)

    def __call__(self, inputs: str | list[str], **kwargs) -> dict[str, list[dict]] | list[dict[str, list[dict]]]:
        sort_by_length = kwargs.pop("sort_by_length", True)
        if kwargs.get("batch_size") is not None:
            _check_positive_int("batch_size", kwargs["batch_size"])
        if isinstance(inputs, str):
            _check_text(inputs, None)
            return super().__call__(inputs, **kwargs)
        if isinstance(inputs, types.GeneratorType):  # streamed lazily, checked text by text
            return super().__call__((_check_text(text, None) for text in inputs), **kwargs)
        if isinstance(inputs, tuple):
            inputs = list(inputs)
        if not isinstance(inputs, list):
            raise TypeError(f"Expected a string or a list of strings, got {type(inputs).__name__}.")
        if not inputs:
            return []
        for position, text in enumerate(inputs):
            _check_text(text, position)
        batch_size = kwargs.pop("batch_size", None) or self._batch_size or 1
        kwargs.pop("num_workers", None)  # the list path tokenizes in-process: no DataLoader workers
        if batch_size > 1 and self.tokenizer.pad_token is None:
            return super().__call__(inputs, batch_size=batch_size, **kwargs)
        return self._run_list(inputs, batch_size, sort_by_length and batch_size > 1, kwargs)

    def _run_list(self, inputs: list[str], batch_size: int, sort_by_length: bool, kwargs: dict) -> list[dict]:
        # Faster than the generic per-item path (tokenize one text, DataLoader, pad, split rows): one tokenizer call
        # and one forward per batch, softmax/sigmoid per batch. Batches of similar length waste less on padding.
        preprocess, forward, postprocess = self._sanitize_parameters(**kwargs)
        preprocess = {**self._preprocess_params, **preprocess}
        forward = {**self._forward_params, **forward}
        postprocess = {**self._postprocess_params, **postprocess}
        order = sorted(range(len(inputs)), key=lambda i: len(inputs[i])) if sort_by_length else range(len(inputs))
        order = list(order)
        results: list[dict | None] = [None] * len(inputs)
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            model_inputs = self._tokenize([inputs[i] for i in chunk], **preprocess)
            outputs = self.forward(model_inputs, **forward)
            for index, result in zip(chunk, self._postprocess_batch(outputs, **postprocess)):
                results[index] = result
        return results

    def _tokenize(self, texts: str | list[str], truncation: bool = True, max_length: int | None = None) -> dict:
        max_length = max_length or self._default_max_length()
        padding = not isinstance(texts, str) and len(texts) > 1
        with self._tokenizer_lock:
            return self.tokenizer(
                texts, return_tensors="pt", truncation=truncation, max_length=max_length, padding=padding
            )

    def get_inference_context(self):
        # inference_mode skips autograd's version counters and view tracking that no_grad keeps: a few % at batch 1
        # on CPU. Outputs only become Python floats, so inference tensors never reach autograd.
        return torch.inference_mode

    def _sanitize_parameters(self, tasks=None, top_k="", threshold=None, truncation=None, max_length=None, **kwargs):
        if kwargs:
            raise TypeError(f"Unknown argument(s) {sorted(kwargs)} for the multitask-classification pipeline.")
        preprocess, forward, postprocess = {}, {}, {}
        if truncation is not None:
            preprocess["truncation"] = truncation
        if max_length is not None:
            _check_positive_int("max_length", max_length)
            limit = self._position_limit()
            if limit is not None and max_length > limit:
                raise ValueError(
                    f"max_length={max_length} is more than this model's encoder accepts ({limit} tokens): "
                    f"use max_length <= {limit}."
                )
            preprocess["max_length"] = max_length
        if tasks is not None:
            forward["tasks"] = postprocess["tasks"] = self._check_tasks(tasks)
        if top_k != "":
            if top_k is not None and (not isinstance(top_k, int) or top_k < 1):
                raise ValueError(f"top_k must be a positive integer or None (all labels), got {top_k!r}.")
            postprocess["top_k"] = top_k
        if threshold is not None:
            postprocess["thresholds"] = self._check_thresholds(threshold)
        return preprocess, forward, postprocess

    def preprocess(self, inputs: str, truncation: bool = True, max_length: int | None = None) -> dict:
        return self._tokenize(inputs, truncation=truncation, max_length=max_length)

    def _position_limit(self) -> int | None:
        """The longest input the encoder's position table allows (None: no absolute positions)."""
        encoder = self.model.config.encoder
        positions = getattr(encoder, "max_position_embeddings", None)
        if positions is None or getattr(encoder, "position_biased_input", True) is False:
            return None  # DeBERTa-v3: relative positions only
        if encoder.model_type in ("roberta", "xlm-roberta", "camembert"):
            positions -= (encoder.pad_token_id or 0) + 1  # RoBERTa positions start after the padding index
        return positions

    def _default_max_length(self) -> int | None:
        # Tokenizers built without `model_max_length` report ~1e30: cap at what the encoder's positions allow, so a
        # long text is truncated instead of failing deep inside the embedding layer.
        limit = self._position_limit()
        return self.tokenizer.model_max_length if limit is None else min(self.tokenizer.model_max_length, limit)

    def _forward(self, model_inputs: dict, tasks: list[str] | None = None) -> dict[str, torch.Tensor]:
        # A flat dict of tensors: the pipeline's batching splits it row by row (nested dicts break batch_size > 1).
        logits = self.model(**model_inputs, task=tasks).logits
        return {_OUTPUT_PREFIX + task: value for task, value in logits.items()}

    def postprocess(
        self,
        model_outputs: dict,
        tasks: list[str] | None = None,
        top_k: int | None = 1,
        thresholds: dict[str, float] | None = None,
    ) -> dict[str, list[dict[str, Any]]]:
        return self._postprocess_batch(model_outputs, tasks, top_k, thresholds)[0]

    def _postprocess_batch(
        self,
        model_outputs: dict,
        tasks: list[str] | None = None,
        top_k: int | None = 1,
        thresholds: dict[str, float] | None = None,
    ) -> list[dict[str, list[dict[str, Any]]]]:
        # One softmax/sigmoid and one `tolist()` per task for the whole batch, then plain Python per row.
        specs = self.model.config.tasks
        tasks = tasks or list(specs)
        rows = [{} for _ in range(len(model_outputs[_OUTPUT_PREFIX + tasks[0]]))]
        for task in tasks:
            logits = model_outputs[_OUTPUT_PREFIX + task].float()
            labels, multi_label = specs[task]["labels"], specs[task]["problem_type"] == MULTI_LABEL
            threshold = (thresholds or {}).get(task, specs[task]["threshold"]) if multi_label else None
            scores = (torch.sigmoid(logits) if multi_label else torch.softmax(logits, dim=-1)).tolist()
            for row, row_scores in zip(rows, scores):
                row[task] = _select(labels, row_scores, threshold, None if multi_label else top_k)
        return rows

    def _check_tasks(self, tasks: str | list[str]) -> list[str]:
        tasks = [tasks] if isinstance(tasks, str) else list(tasks)
        known = list(self.model.config.tasks)
        unknown = [task for task in tasks if task not in known]
        if unknown or not tasks:
            raise ValueError(f"Unknown task(s) {unknown or tasks}: this model has tasks {known}.")
        return tasks

    def _check_thresholds(self, threshold: float | dict[str, float]) -> dict[str, float]:
        specs = self.model.config.tasks
        multi_label = [task for task, spec in specs.items() if spec["problem_type"] == MULTI_LABEL]
        if not isinstance(threshold, dict):
            threshold = dict.fromkeys(multi_label, threshold)
        wrong = [task for task in threshold if task not in multi_label]
        if wrong:
            raise ValueError(f"threshold given for {wrong}, which are not multi-label tasks ({multi_label}).")
        for task, value in threshold.items():
            if not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ValueError(f"threshold for task {task!r} must be a number in [0, 1], got {value!r}.")
        return {task: float(value) for task, value in threshold.items()}


def _select(
    labels: list[str], scores: list[float], threshold: float | None, top_k: int | None
) -> list[dict[str, Any]]:
    """Labels sorted by score: those at or above `threshold` (multi-label) or the `top_k` best (single-label)."""
    chosen = list(zip(labels, scores))
    if threshold is not None:
        chosen = [(label, score) for label, score in chosen if score >= threshold]
    chosen.sort(key=lambda pair: pair[1], reverse=True)
    if top_k is not None:
        chosen = chosen[:top_k]
    return [{"label": label, "score": score} for label, score in chosen]


def _check_positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")


def _check_text(text: Any, position: int | None) -> str:
    where = "" if position is None else f" at position {position}"
    if not isinstance(text, str):
        raise TypeError(f"Expected text{where} to be a string, got {type(text).__name__}: {text!r:.60}.")
    if not text.strip():
        raise ValueError(f"Text{where} is empty: the multitask-classification pipeline needs non-empty strings.")
    return text


def register_pipeline() -> None:
    """Registers `multitask-classification` with transformers' pipeline registry (idempotent)."""
    current = PIPELINE_REGISTRY.supported_tasks.get(PIPELINE_TASK)
    if current is not None and current["impl"] is MultitaskClassificationPipeline:
        return
    PIPELINE_REGISTRY.register_pipeline(
        PIPELINE_TASK, pipeline_class=MultitaskClassificationPipeline, pt_model=AutoModel, type="text"
    )


__all__ = ["MultitaskClassificationPipeline", "register_pipeline"]
