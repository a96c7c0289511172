# Copyright 2026 The polyhead authors. Licensed under the Apache License, Version 2.0.
"""The `multitask-classification` pipeline: every task's labels for every text, from one encoder pass.

Executed by Hub users through `trust_remote_code=True` (a flat copy sits next to the weights): it imports only torch,
transformers and its flat siblings, and reads the task list from `model.config.tasks`. It also registers the
`multitask-zero-shot-classification` pipeline (`multitask_zero_shot.py`). Design and measurements:
docs/design-hub-files.md.
"""

import types
from collections.abc import Sequence
from typing import Any

import torch
from transformers import AutoModel, Pipeline
from transformers.pipelines import PIPELINE_REGISTRY

from .multitask_base import OUTPUT_KEY, MultitaskPipelineBase
from .multitask_inputs import (
    check_bool,
    check_input,
    check_max_length,
    check_positive_int,
    check_tasks,
    check_thresholds,
    check_truncation,
    choice_pairs,
    is_choice_input,
    kind_tasks,
    text_length,
)
from .multitask_ranking import Layout, as_dicts, collection_paused, layout_of, rank
from .multitask_zero_shot import ZERO_SHOT_TASK, ZeroShotMultitaskPipeline


PIPELINE_TASK = "multitask-classification"
_CHOICE_BATCH = 32  # (context, choice) pairs per encoder pass when no batch_size is given


class MultitaskClassificationPipeline(MultitaskPipelineBase):
    r"""
    Classifies texts for every task of a multitask model at once.

    Returns, for each text, `{task: [{"label": str, "score": float}, ...]}`:
    - single-label tasks: labels sorted by score, the `top_k` best (default 1, `None` for all);
    - multi-label tasks: every label whose sigmoid score is at least the task's threshold (from the config, or
      `threshold=` per call: a float for every multi-label task or a `{task: float}` dict), sorted by score.

    Call parameters: `tasks` (a task name or a list; default all), `top_k`, `threshold`, `truncation` (default
    `True`, "longest_first": the longer text of a pair is cut; `False`, or a tokenizer strategy, "only_first",
    "only_second", "longest_first" or "do_not_truncate", passed on to the tokenizer with `max_length`, as in
    transformers), `max_length` (default: the length the model was trained at, its tokenizer's `model_max_length`),
    `batch_size`, and `sort_by_length` (default `True`: a list is run in batches of similar length to waste less
    compute on padding; results come back in input order; a generator streams in order).

    An input is a string or, as for transformers' text-classification pipeline, a sentence pair
    `{"text": a, "text_pair": b}` (a list may mix both). With `candidate_labels=[...]` the call is answered by
    [`ZeroShotMultitaskPipeline`] on the same model. A multiple-choice input `{"text": context, "question"?: ...,
    "choices": [...]}` is answered by the model's multiple-choice tasks, `{task: [{"label": choice, "score": p}]}`
    (all choices best first, or the `top_k` best; `batch_size` then counts (context, choice) pairs); the other
    inputs by the other tasks. With task embeddings (`config.task_embeddings`), each task takes its own pass.

    Example:

    ```python
    >>> from transformers import pipeline
    >>> classifier = pipeline("multitask-classification", model="org/multitask-model", trust_remote_code=True)
    >>> classifier("I love this phone", tasks=["sentiment"])
    {'sentiment': [{'label': 'positive', 'score': 0.98}]}
    ```
    """

    def __call__(self, inputs: str | dict | list, **kwargs) -> dict[str, list[dict]] | list[dict[str, list[dict]]]:
        sort_by_length = check_bool("sort_by_length", kwargs.pop("sort_by_length", True), True)
        if kwargs.get("batch_size") is not None:
            check_positive_int("batch_size", kwargs["batch_size"])
        if isinstance(inputs, torch.utils.data.Dataset):  # e.g. KeyDataset(dataset, "text"): streamed, as transformers
            dataset = inputs
            iterable = isinstance(dataset, torch.utils.data.IterableDataset)
            inputs = (item for item in dataset) if iterable else (dataset[i] for i in range(len(dataset)))
        elif isinstance(inputs, Sequence) and not isinstance(inputs, (str, list, tuple)):  # e.g. a datasets Column
            inputs = list(inputs)
        if "candidate_labels" in kwargs:
            return self._zero_shot_pipeline()(inputs, **kwargs)
        listed = [inputs] if isinstance(inputs, dict) else inputs if isinstance(inputs, (list, tuple)) else []
        if any(map(is_choice_input, listed)):
            return self._call_with_choices(inputs, kwargs)
        if kwargs.get("tasks") is not None:  # a multiple-choice task needs choices
            kind_tasks(
                self.model.config.tasks, check_tasks(self.model.config.tasks, kwargs["tasks"]), False, strict=True
            )
        if isinstance(inputs, (str, dict)):
            check_input(inputs, None)
            return super().__call__(inputs, **kwargs)
        if isinstance(inputs, types.GeneratorType):  # streamed lazily, checked text by text
            return super().__call__((check_input(item, None, choices=False) for item in inputs), **kwargs)
        if isinstance(inputs, tuple):
            inputs = list(inputs)
        if not isinstance(inputs, list):
            raise TypeError(
                f"Expected a string, a list of strings, a generator or a torch Dataset of them (e.g. KeyDataset), "
                f"got {type(inputs).__name__} (a sentence pair is a {{'text': ..., 'text_pair': ...}} dict)."
            )
        if not inputs:
            return []
        for position, item in enumerate(inputs):
            check_input(item, position)
        batch_size = kwargs.pop("batch_size", None) or self._batch_size or 1
        kwargs.pop("num_workers", None)  # the list path tokenizes in-process: no DataLoader workers
        if batch_size > 1 and self.tokenizer.pad_token is None:
            return super().__call__(inputs, batch_size=batch_size, **kwargs)
        return self._run_list(inputs, batch_size, sort_by_length and batch_size > 1, kwargs)

    def _call_with_choices(self, inputs: dict | list, kwargs: dict) -> dict | list[dict]:
        # Multiple-choice items: every (context, choice) pair of the call flattened into batches of `batch_size`
        # pairs, one encoder pass each (per task with task embeddings); any other items go through the list path.
        items = [inputs] if isinstance(inputs, dict) else list(inputs)
        for position, item in enumerate(items):
            check_input(item, None if isinstance(inputs, dict) else position)
        batch_size = kwargs.pop("batch_size", None) or self._batch_size or _CHOICE_BATCH
        kwargs.pop("num_workers", None)
        preprocess, forward, postprocess = self._sanitize_parameters(**kwargs)
        chosen = [i for i, item in enumerate(items) if is_choice_input(item)]
        others = [i for i in range(len(items)) if i not in set(chosen)]
        results: list = [None] * len(items)
        if others:
            tasks = kind_tasks(self.model.config.tasks, forward.get("tasks"), False)
            answers = self([items[i] for i in others], **{**kwargs, "tasks": tasks, "batch_size": batch_size})
            for i, answer in zip(others, answers):
                results[i] = answer
        tasks = kind_tasks(self.model.config.tasks, forward.get("tasks"), True)
        answers = self._score_choices(
            [items[i] for i in chosen], tasks, batch_size, postprocess.get("top_k"), **preprocess
        )
        for i, answer in zip(chosen, answers):
            results[i] = answer
        return results[0] if isinstance(inputs, dict) else results

    def _score_choices(
        self, items: list[dict], tasks: list[str], batch_size: int, top_k: int | None = None, **preprocess
    ) -> list[dict[str, list[dict]]]:
        pairs = [{"text": a, "text_pair": b} for item in items for a, b in choice_pairs(item)]
        groups = self._grouped_batches(pairs, batch_size, **preprocess)
        scores = torch.cat(
            [self.forward(batch, tasks=tasks)[OUTPUT_KEY] for _, batches in groups for batch in batches]
        )
        results, ends = [], torch.tensor([len(item["choices"]) for item in items]).cumsum(0).tolist()
        for item, end in zip(items, ends):
            n = len(item["choices"])
            probabilities = torch.softmax(scores[end - n : end].float(), dim=0)  # (choices, tasks)
            probabilities, order = probabilities.sort(dim=0, descending=True, stable=True)
            answer = {}
            for j, task in enumerate(tasks):
                ranked = zip(order[:top_k, j].tolist(), probabilities[:top_k, j].tolist())
                answer[task] = [{"label": item["choices"][i], "score": p} for i, p in ranked]
            results.append(answer)
        return results

    def _zero_shot_pipeline(self) -> Pipeline:
        # Zero-shot is its own pipeline class (as in transformers), built once on this model and tokenizer.
        if self.__dict__.get("_zero_shot") is None:
            self._zero_shot = ZeroShotMultitaskPipeline(
                model=self.model, tokenizer=self.tokenizer, device=self.device, batch_size=self._batch_size
            )
        return self._zero_shot

    # ---------------------------------------------------------------- the four pipeline hooks (one input at a time)

    def _sanitize_parameters(self, tasks=None, top_k="", threshold=None, truncation=None, max_length=None, **kwargs):
        if kwargs:
            raise TypeError(f"Unknown argument(s) {sorted(kwargs)} for the {PIPELINE_TASK} pipeline.")
        preprocess, forward, postprocess = {}, {}, {}
        if truncation is not None:
            preprocess["truncation"] = check_truncation(truncation)
        if max_length is not None:
            preprocess["max_length"] = check_max_length(self.model.config.encoder, max_length, self.tokenizer)
        if tasks is not None:
            forward["tasks"] = postprocess["tasks"] = check_tasks(self.model.config.tasks, tasks)
        if top_k != "":
            if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
                raise ValueError(f"top_k must be a positive integer or None (all labels), got {top_k!r}.")
            postprocess["top_k"] = top_k
        if threshold is not None:
            postprocess["thresholds"] = check_thresholds(self.model.config.tasks, threshold)
        return preprocess, forward, postprocess

    def preprocess(self, inputs: str | dict, truncation: bool = True, max_length: int | None = None) -> dict:
        return self._collate(self._tokenize_rows([inputs], truncation, max_length))

    def _tokenize_rows(
        self, items: list, truncation: bool | str = True, max_length: int | None = None
    ) -> list[dict[str, list[int]]]:
        # A strategy that cuts one text only cannot shorten an input whose other text (or, "only_second", a single
        # text) fills `max_length`: the Rust tokenizer raises "Truncation error: ..." naming no input, a Python one
        # logs and leaves the input uncut (past the encoder's positions it fails inside the model).
        if truncation not in ("only_first", "only_second"):
            return super()._tokenize_rows(items, truncation, max_length)
        max_length = max_length or self._default_max_length()
        try:
            rows = super()._tokenize_rows(items, truncation, max_length)
        except Exception:  # the tokenizers library raises a bare Exception
            problem = self._uncuttable(items, truncation, max_length)
            if problem is None:
                raise
            raise problem from None
        if any(len(row["input_ids"]) > max_length for row in rows):
            problem = self._uncuttable(items, truncation, max_length)
            if problem is not None:
                raise problem
        return rows

    def _uncuttable(self, items: list, truncation: str, max_length: int) -> ValueError | None:
        """The error naming the first of `items` that `truncation` ("only_first" or "only_second") cannot cut to
        `max_length` tokens; None when each one alone is cut."""
        with self._tokenizer_lock:
            for item in items:
                text, pair = (item["text"], item.get("text_pair")) if isinstance(item, dict) else (item, None)
                try:
                    ids = self.tokenizer(text, pair, truncation=truncation, max_length=max_length)["input_ids"]
                except Exception:
                    ids = None
                if ids is not None and len(ids) <= max_length:
                    continue
                keeps_first = pair is None or truncation == "only_second"
                size = len(self.tokenizer(text if keeps_first else pair, add_special_tokens=False)["input_ids"])
                size += self.tokenizer.num_special_tokens_to_add(pair=pair is not None)
                if pair is None:
                    what = f"the input {_start(text)} is one text of {size} tokens"
                else:
                    what = (
                        f"the {'first' if keeps_first else 'second'} text of the pair {{'text': {_start(text)}, "
                        f"'text_pair': {_start(pair)}}} takes {size} tokens"
                    )
                cut = "second text of a sentence pair" if truncation == "only_second" else "first text"
                other = "only_first" if truncation == "only_second" else "only_second"
                return ValueError(
                    f"truncation={truncation!r} cuts only the {cut}, and {what} with the special tokens: it cannot be "
                    f"cut to max_length={max_length} that way. Use truncation=True ('longest_first', which cuts the "
                    f"longer text), {other!r}, or a larger max_length."
                )
        return None

    def _forward(
        self, model_inputs: dict, tasks: list[str] | None = None, encode_only: bool = False
    ) -> dict[str, torch.Tensor]:
        # `encode_only`: the pooled output, for `_run_list` to head (see `run_heads`).
        tasks = tasks or kind_tasks(self.model.config.tasks, None, False)
        return {OUTPUT_KEY: self.run_heads(model_inputs, tasks, encode_only)}

    def postprocess(
        self,
        model_outputs: dict,
        tasks: list[str] | None = None,
        top_k: int | None = 1,
        thresholds: dict[str, float] | None = None,
    ) -> dict[str, list[dict[str, Any]]]:
        layout, groups = self._rank(model_outputs, tasks, top_k, thresholds)
        with collection_paused():
            return as_dicts(layout, groups, len(model_outputs[OUTPUT_KEY]))[0]

    # ------------------------------------------------------------------- the batched fast path of a list of inputs

    def _run_list(self, inputs: list, batch_size: int, sort_by_length: bool, kwargs: dict) -> list[dict]:
        # Bypasses the per-item path (tokenize one text, DataLoader, pad, split rows): rows go in groups of about
        # `_RANKED_ROWS` (whole batches), each tokenized in one call, one encoder pass per batch (of similar length),
        # then the heads (one matmul) and the ranking once per group (why: docs/design-hub-files.md).
        preprocess, forward, postprocess = self._sanitize_parameters(**kwargs)
        preprocess = {**self._preprocess_params, **preprocess}
        forward = {**self._forward_params, **forward}
        postprocess = {**self._postprocess_params, **postprocess}
        fused = self._fused_heads(forward.get("tasks"))
        forward["encode_only"] = fused is not None  # else the model code predates `head_logits`: logits per batch
        order = list(range(len(inputs)))
        if sort_by_length:
            order.sort(key=lambda i: text_length(inputs[i]))
        ranked = []  # per group of rows: the rows and their ranked labels (a few arrays)
        for start, batches in self._grouped_batches([inputs[i] for i in order], batch_size, **preprocess):
            outputs = torch.cat([self.forward(batch, **forward)[OUTPUT_KEY] for batch in batches])
            logits = self._apply_heads(outputs, fused) if fused is not None else outputs
            ranked.append((order[start : start + len(outputs)], self._rank({OUTPUT_KEY: logits}, **postprocess)))
        # Answers are built at the end: the collections that later forward passes trigger would walk them all.
        results: list[dict | None] = [None] * len(inputs)
        with collection_paused():
            for rows, (layout, groups) in ranked:
                for index, result in zip(rows, as_dicts(layout, groups, len(rows))):
                    results[index] = result
        return results

    def _fused_heads(self, tasks: list[str] | None) -> tuple | None:
        # The heads' concatenated weights, fetched once per list: no weight changes during a call.
        if not hasattr(self.model, "fused_head_weights") or not hasattr(self.model, "encode"):
            return None  # model code older than this pipeline
        if getattr(self.model, "task_embeddings", None) is not None:
            return None  # one pass per task: `_forward` heads each
        with torch.no_grad():
            return self.model.fused_head_weights(tuple(tasks or kind_tasks(self.model.config.tasks, None, False)))

    def _apply_heads(self, pooled: torch.Tensor, fused: tuple) -> torch.Tensor:
        # The heads run where their weights are (e.g. a GPU), the ranking on the CPU.
        weight, bias = fused
        with self.get_inference_context()():
            return torch.nn.functional.linear(pooled.to(weight.device), weight, bias).cpu()

    def _rank(
        self,
        model_outputs: dict,
        tasks: list[str] | None = None,
        top_k: int | None = 1,
        thresholds: dict[str, float] | None = None,
    ) -> tuple[Layout, list[tuple]]:
        # Cached layout per (config tasks object, tasks, per-call thresholds): rebuilt when the config's tasks change.
        specs = self.model.config.tasks
        tasks = tuple(tasks or kind_tasks(specs, None, False))
        key = (tasks, tuple(sorted((thresholds or {}).items())))
        cached = self.__dict__.get("_layout_cache")
        if cached is None or cached[0] is not specs or cached[1] != key:
            self._layout_cache = cached = (specs, key, layout_of(specs, tasks, thresholds))
        return cached[2], rank(model_outputs[OUTPUT_KEY], cached[2], top_k)


def _start(text: str, size: int = 40) -> str:
    """The text's start, quoted, for a message."""
    return repr(text if len(text) <= size else text[:size] + "...")


def register_pipeline(replace: bool = True) -> None:
    """Registers `multitask-classification` and `multitask-zero-shot-classification` with transformers' pipeline
    registry (idempotent); with `replace=False` (a loaded model's code registering its pipeline), a task already
    registered keeps its pipeline."""
    for task, impl in ((PIPELINE_TASK, MultitaskClassificationPipeline), (ZERO_SHOT_TASK, ZeroShotMultitaskPipeline)):
        current = PIPELINE_REGISTRY.supported_tasks.get(task)
        if current is None or (replace and current["impl"] is not impl):
            PIPELINE_REGISTRY.register_pipeline(task, pipeline_class=impl, pt_model=AutoModel, type="text")


__all__ = ["MultitaskClassificationPipeline", "ZeroShotMultitaskPipeline", "register_pipeline"]
