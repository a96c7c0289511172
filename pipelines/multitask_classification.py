# Copyright 2026 The polyhead authors. Licensed under the Apache License, Version 2.0.
"""The `multitask-classification` pipeline (every task's labels for every text, from one encoder pass) and the
`multitask-zero-shot-classification` pipeline (transformers' zero-shot classification through the model's NLI task).

Executed by Hub users through `trust_remote_code=True` (a flat copy sits next to the weights): it imports only torch
and transformers, and reads the task list from `model.config.tasks`. Design and measurements: docs/design-hub-files.md.
"""

import threading
import types
from collections.abc import Iterator
from typing import Any

import torch
from transformers import AutoModel, AutoTokenizer, Pipeline
from transformers.pipelines import PIPELINE_REGISTRY

from .multitask_ranking import MULTI_LABEL, MULTIPLE_CHOICE, Layout, as_dicts, collection_paused, layout_of, rank


PIPELINE_TASK = "multitask-classification"
ZERO_SHOT_TASK = "multitask-zero-shot-classification"
_OUTPUT_KEY = "logits"  # `_forward` returns one tensor: every requested head's logits side by side
_ENTAILMENT, _NOT_ENTAILMENT = "entailment", ("contradiction", "not_entailment")
_CHOICE_BATCH = 32  # (context, choice) pairs per encoder pass when no batch_size is given
_RANKED_ROWS = 256  # rows of a list whose heads and ranking run together (bounded memory at hundreds of heads)
# Position ids start after the padding index in these families: a copy of polyhead.encoders' rule (pinned by a test).
_PADDING_OFFSET_FAMILIES = frozenset(
    "roberta xlm-roberta xlm-roberta-xl camembert roberta-prelayernorm data2vec-text longformer mpnet".split()
)


class MultitaskClassificationPipeline(Pipeline):
    r"""
    Classifies texts for every task of a multitask model at once.

    Returns, for each text, `{task: [{"label": str, "score": float}, ...]}`:
    - single-label tasks: labels sorted by score, the `top_k` best (default 1, `None` for all);
    - multi-label tasks: every label whose sigmoid score is at least the task's threshold (from the config, or
      `threshold=` per call: a float for every multi-label task or a `{task: float}` dict), sorted by score.

    Call parameters: `tasks` (a task name or a list; default all), `top_k`, `threshold`, `truncation` (default
    `True`), `max_length` (default: the length the model was trained at, its tokenizer's `model_max_length`),
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
            raise ValueError(f"The {PIPELINE_TASK} pipeline needs a tokenizer: pass tokenizer=...")
        # A fast tokenizer keeps its truncation settings in shared state: calls from several threads must not
        # interleave.
        self._tokenizer_lock = threading.Lock()
        # transformers 4.x advises against `tokenizer.pad` after encoding; here `pad` only forms each batch of rows
        # encoded together, which is faster (docs/design-hub-files.md).
        getattr(self.tokenizer, "deprecation_warnings", {})["Asking-to-pad-a-fast-tokenizer"] = True
        if self._batch_size is not None:
            _check_positive_int("batch_size", self._batch_size)

    def __call__(self, inputs: str | dict | list, **kwargs) -> dict[str, list[dict]] | list[dict[str, list[dict]]]:
        sort_by_length = kwargs.pop("sort_by_length", True)
        if kwargs.get("batch_size") is not None:
            _check_positive_int("batch_size", kwargs["batch_size"])
        if "candidate_labels" in kwargs:
            return self._zero_shot_pipeline()(inputs, **kwargs)
        listed = [inputs] if isinstance(inputs, dict) else inputs if isinstance(inputs, (list, tuple)) else []
        if any(map(_is_choice_input, listed)):
            return self._call_with_choices(inputs, kwargs)
        if kwargs.get("tasks") is not None:  # a multiple-choice task needs choices
            _kind_tasks(self.model.config.tasks, self._check_tasks(kwargs["tasks"]), False, strict=True)
        if isinstance(inputs, (str, dict)):
            _check_input(inputs, None)
            return super().__call__(inputs, **kwargs)
        if isinstance(inputs, types.GeneratorType):  # streamed lazily, checked text by text
            return super().__call__((_check_input(item, None, choices=False) for item in inputs), **kwargs)
        if isinstance(inputs, tuple):
            inputs = list(inputs)
        if not isinstance(inputs, list):
            raise TypeError(
                f"Expected a string or a list of strings, got {type(inputs).__name__} (a sentence pair is a "
                "{'text': ..., 'text_pair': ...} dict)."
            )
        if not inputs:
            return []
        for position, item in enumerate(inputs):
            _check_input(item, position)
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
            _check_input(item, None if isinstance(inputs, dict) else position)
        batch_size = kwargs.pop("batch_size", None) or self._batch_size or _CHOICE_BATCH
        kwargs.pop("num_workers", None)
        preprocess, forward, postprocess = self._sanitize_parameters(**kwargs)
        chosen = [i for i, item in enumerate(items) if _is_choice_input(item)]
        others = [i for i in range(len(items)) if i not in set(chosen)]
        results: list = [None] * len(items)
        if others:
            tasks = _kind_tasks(self.model.config.tasks, forward.get("tasks"), False)
            answers = self([items[i] for i in others], **{**kwargs, "tasks": tasks, "batch_size": batch_size})
            for i, answer in zip(others, answers):
                results[i] = answer
        tasks = _kind_tasks(self.model.config.tasks, forward.get("tasks"), True)
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
            [self.forward(batch, tasks=tasks)[_OUTPUT_KEY] for _, batches in groups for batch in batches]
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

    def get_inference_context(self):
        # inference_mode skips autograd bookkeeping that no_grad keeps; outputs only become Python floats.
        return torch.inference_mode

    # ---------------------------------------------------------------- the four pipeline hooks (one input at a time)

    def _sanitize_parameters(self, tasks=None, top_k="", threshold=None, truncation=None, max_length=None, **kwargs):
        if kwargs:
            raise TypeError(f"Unknown argument(s) {sorted(kwargs)} for the {PIPELINE_TASK} pipeline.")
        preprocess, forward, postprocess = {}, {}, {}
        if truncation is not None:
            preprocess["truncation"] = truncation
        if max_length is not None:
            _check_positive_int("max_length", max_length)
            limit = position_limit(self.model.config.encoder)
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

    def preprocess(self, inputs: str | dict, truncation: bool = True, max_length: int | None = None) -> dict:
        return self._collate(self._tokenize_rows([inputs], truncation, max_length))

    def _forward(
        self, model_inputs: dict, tasks: list[str] | None = None, encode_only: bool = False
    ) -> dict[str, torch.Tensor]:
        # One tensor, every requested head side by side (nested dicts break batch_size > 1), the heads as one matmul
        # where the model offers it (`head_logits`); `encode_only`: the pooled output, for `_run_list` to head.
        tasks = tasks or _kind_tasks(self.model.config.tasks, None, False)
        if getattr(self.model, "task_embeddings", None) is not None:  # one pass per task, each with its vector
            encode = self.model.encode
            logits = [self.model.head_logits(encode(**model_inputs, task=task), [task]) for task in tasks]
            return {_OUTPUT_KEY: torch.cat(logits, dim=-1)}
        if hasattr(self.model, "head_logits") and hasattr(self.model, "encode"):
            pooled = self.model.encode(**model_inputs)
            return {_OUTPUT_KEY: pooled if encode_only else self.model.head_logits(pooled, tasks)}
        logits = self.model(**model_inputs, task=tasks).logits  # model code older than this pipeline
        return {_OUTPUT_KEY: torch.cat([logits[task] for task in tasks], dim=-1)}

    def postprocess(
        self,
        model_outputs: dict,
        tasks: list[str] | None = None,
        top_k: int | None = 1,
        thresholds: dict[str, float] | None = None,
    ) -> dict[str, list[dict[str, Any]]]:
        layout, groups = self._rank(model_outputs, tasks, top_k, thresholds)
        with collection_paused():
            return as_dicts(layout, groups, len(model_outputs[_OUTPUT_KEY]))[0]

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
        order = sorted(range(len(inputs)), key=lambda i: _length(inputs[i])) if sort_by_length else range(len(inputs))
        order = list(order)
        ranked = []  # per group of rows: the rows and their ranked labels (a few arrays)
        for start, batches in self._grouped_batches([inputs[i] for i in order], batch_size, **preprocess):
            outputs = torch.cat([self.forward(batch, **forward)[_OUTPUT_KEY] for batch in batches])
            logits = self._apply_heads(outputs, fused) if fused is not None else outputs
            ranked.append((order[start : start + len(outputs)], self._rank({_OUTPUT_KEY: logits}, **postprocess)))
        # Answers are built at the end: the collections that later forward passes trigger would walk them all.
        results: list[dict | None] = [None] * len(inputs)
        with collection_paused():
            for rows, (layout, groups) in ranked:
                for index, result in zip(rows, as_dicts(layout, groups, len(rows))):
                    results[index] = result
        return results

    def _grouped_batches(
        self, items: list, batch_size: int, truncation: bool = True, max_length: int | None = None
    ) -> Iterator[tuple[int, list[dict[str, torch.Tensor]]]]:
        """`(index of its first item, its padded batches)` per group of about `_RANKED_ROWS` items (whole batches of
        `batch_size`), each group tokenized in one call."""
        group_size = batch_size * -(-_RANKED_ROWS // batch_size)
        for start in range(0, len(items), group_size):
            encoded = self._tokenize_rows(items[start : start + group_size], truncation, max_length)
            yield start, [self._collate(encoded[i : i + batch_size]) for i in range(0, len(encoded), batch_size)]

    def _tokenize_rows(
        self, items: list, truncation: bool = True, max_length: int | None = None
    ) -> list[dict[str, list[int]]]:
        """Each item's token ids (and masks), unpadded, in input order: the texts in one tokenizer call, the
        `{"text", "text_pair"}` pairs in another (truncation "longest_first" keeps both texts)."""
        options = {"truncation": truncation, "max_length": max_length or self._default_max_length()}
        is_pair = [isinstance(item, dict) and "text_pair" in item for item in items]
        rows: list = [None] * len(items)
        with self._tokenizer_lock:
            for pairs in (False, True):
                positions = [i for i, flag in enumerate(is_pair) if flag is pairs]
                if not positions:
                    continue
                texts = [items[i]["text"] if isinstance(items[i], dict) else items[i] for i in positions]
                second = [items[i]["text_pair"] for i in positions] if pairs else None
                encoded = self.tokenizer(texts, second, **options)
                if not truncation:
                    _check_untruncated(encoded["input_ids"], position_limit(self.model.config.encoder))
                for j, i in enumerate(positions):
                    rows[i] = {key: values[j] for key, values in encoded.items()}
        return rows

    def _collate(self, rows: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        """One batch of tensors from unpadded rows (padded to the longest, as the tokenizer pads)."""
        if len(rows) == 1:
            return {key: torch.tensor([values]) for key, values in rows[0].items()}
        with self._tokenizer_lock:
            return self.tokenizer.pad(rows, return_tensors="pt")

    def _fused_heads(self, tasks: list[str] | None) -> tuple | None:
        # The heads' concatenated weights, fetched once per list: no weight changes during a call.
        if not hasattr(self.model, "fused_head_weights") or not hasattr(self.model, "encode"):
            return None  # model code older than this pipeline
        if getattr(self.model, "task_embeddings", None) is not None:
            return None  # one pass per task: `_forward` heads each
        with torch.no_grad():
            return self.model.fused_head_weights(tuple(tasks or _kind_tasks(self.model.config.tasks, None, False)))

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
        tasks = tuple(tasks or _kind_tasks(specs, None, False))
        key = (tasks, tuple(sorted((thresholds or {}).items())))
        cached = self.__dict__.get("_layout_cache")
        if cached is None or cached[0] is not specs or cached[1] != key:
            self._layout_cache = cached = (specs, key, layout_of(specs, tasks, thresholds))
        return cached[2], rank(model_outputs[_OUTPUT_KEY], cached[2], top_k)

    # ------------------------------------------------------------------------------------------------- checks

    def _default_max_length(self) -> int | None:
        # The tokenizer's model_max_length (the trained length, polyhead saves it there), capped by the encoder's
        # positions (a tokenizer without one reports ~1e30): polyhead.encoders.default_max_length's rule.
        limit = position_limit(self.model.config.encoder)
        return self.tokenizer.model_max_length if limit is None else min(self.tokenizer.model_max_length, limit)

    def _check_tasks(self, tasks: str | list[str]) -> list[str]:
        tasks = [tasks] if isinstance(tasks, str) else list(tasks)
        known = list(self.model.config.tasks)
        if not tasks:
            raise ValueError(f"tasks is empty: name some of this model's tasks {known}, or leave it out for all.")
        unknown = [task for task in tasks if task not in known]
        if unknown:
            raise ValueError(f"Unknown task(s) {unknown}: this model has tasks {known}.")
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


class ZeroShotMultitaskPipeline(MultitaskClassificationPipeline):
    r"""
    Zero-shot classification through the model's NLI task (a single-label task whose labels include `entailment`),
    answering `{"sequence", "labels", "scores"}` per text exactly as transformers' zero-shot-classification pipeline:
    each text is paired with `hypothesis_template.format(label)` for every candidate label. Single-label: softmax of
    the entailment logits across candidates; `multi_label=True` (or one candidate): softmax of entailment vs
    contradiction per candidate.

    Call parameters: `candidate_labels` (a list, or a comma-separated string), `hypothesis_template` (default
    `"This example is {}."`), `multi_label`, `nli_task` (needed when the model has several NLI tasks), `truncation`,
    `max_length`, `batch_size`. The `multitask-classification` pipeline hands calls with `candidate_labels` here;
    with polyhead installed, `pipeline("multitask-zero-shot-classification", model=...)` builds it directly.

    Example:

    ```python
    >>> from transformers import pipeline
    >>> classifier = pipeline("multitask-classification", model="org/multitask-model", trust_remote_code=True)
    >>> classifier("the match went to penalties", candidate_labels=["sport", "politics"])
    {'sequence': 'the match went to penalties', 'labels': ['sport', 'politics'], 'scores': [0.93, 0.07]}
    ```
    """

    def __call__(
        self,
        inputs: str | list[str],
        candidate_labels: str | list[str],
        hypothesis_template: str = "This example is {}.",
        multi_label: bool = False,
        nli_task: str | None = None,
        truncation: bool = True,
        max_length: int | None = None,
        batch_size: int | None = None,
    ) -> dict[str, Any] | list[dict[str, Any]]:
        # One forward per text (all its hypotheses), or with `batch_size` that many pairs per forward across texts
        # (of similar length, as for lists).
        if batch_size is not None:
            _check_positive_int("batch_size", batch_size)
        task, entailment, contradiction = self._nli_task(nli_task)
        if isinstance(candidate_labels, str):
            candidate_labels = [label.strip() for label in candidate_labels.split(",") if label.strip()]
        if not candidate_labels or not all(isinstance(label, str) and label for label in candidate_labels):
            raise ValueError(f"candidate_labels must be a non-empty list of label strings, got {candidate_labels!r}.")
        if hypothesis_template.format(candidate_labels[0]) == hypothesis_template:
            raise ValueError(
                f"hypothesis_template {hypothesis_template!r} has no '{{}}' where the candidate label should go."
            )
        batch_size = batch_size or self._batch_size
        hypotheses = [hypothesis_template.format(label) for label in candidate_labels]
        if not isinstance(inputs, (str, list, tuple)):
            raise TypeError(
                "Zero-shot classification takes a text or a list of texts (each is paired with every hypothesis), "
                f"got {type(inputs).__name__}: {inputs!r:.60}."
            )
        texts = [inputs] if isinstance(inputs, str) else list(inputs)
        for position, text in enumerate(texts):
            _check_text(text, None if isinstance(inputs, str) else position)
        if not texts:
            return []
        order = sorted(range(len(texts)), key=lambda i: len(texts[i])) if batch_size else range(len(texts))
        pairs = [{"text": texts[i], "text_pair": hypothesis} for i in order for hypothesis in hypotheses]
        groups = self._grouped_batches(pairs, batch_size or len(hypotheses), truncation, max_length)
        logits = [self.forward(batch, tasks=[task])[_OUTPUT_KEY].float() for _, batches in groups for batch in batches]
        logits = torch.cat(logits).view(len(texts), len(hypotheses), -1)  # (texts in `order`, candidates, labels)
        if multi_label or len(candidate_labels) == 1:
            scores = torch.softmax(logits[..., [contradiction, entailment]], dim=-1)[..., 1]
        else:
            scores = torch.softmax(logits[..., entailment], dim=-1)
        scores, ranks = torch.sort(scores, dim=-1, descending=True, stable=True)
        results: list = [None] * len(texts)
        for index, row_scores, row_ranks in zip(order, scores.tolist(), ranks.tolist()):
            labels = [candidate_labels[i] for i in row_ranks]
            results[index] = {"sequence": texts[index], "labels": labels, "scores": row_scores}
        return results[0] if isinstance(inputs, str) else results

    def _nli_task(self, name: str | None) -> tuple[str, int, int]:
        """`(task, entailment id, contradiction id)` of the NLI task zero-shot classification runs through."""
        specs = self.model.config.tasks
        found = {task: ids for task, ids in ((t, _entailment_ids(spec)) for t, spec in specs.items()) if ids}
        rule = (
            "a single-label task whose labels include 'entailment' plus 'contradiction'/'neutral' or "
            "'not_entailment' (case-insensitive)"
        )
        if name is not None:
            self._check_tasks(name)
            if name not in found:
                raise ValueError(
                    f"nli_task={name!r} cannot classify zero-shot: it needs {rule}; its labels are "
                    f"{specs[name]['labels']}."
                )
            return (name, *found[name])
        if not found:
            raise ValueError(
                f"Zero-shot classification (candidate_labels=...) needs an NLI task, {rule}; this model's tasks "
                f"{list(specs)} have none."
            )
        if len(found) > 1:
            raise ValueError(f"Several NLI tasks {list(found)}: choose one with nli_task=...")
        task = next(iter(found))
        return (task, *found[task])


def position_limit(encoder) -> int | None:
    """The most tokens one text may have for this encoder config (None: no absolute positions, e.g. DeBERTa-v3);
    the rule of `polyhead.encoders.position_limit`."""
    positions = getattr(encoder, "max_position_embeddings", None)
    if positions is None or getattr(encoder, "position_biased_input", True) is False:
        return None
    if encoder.model_type in _PADDING_OFFSET_FAMILIES:
        return positions - (encoder.pad_token_id or 0) - 1
    return positions


def _entailment_ids(spec: dict) -> tuple[int, int] | None:
    """`(entailment id, contradiction id)` of an NLI task (contradiction, else not_entailment, else neutral)."""
    labels = [label.lower() for label in spec["labels"]]
    if spec["problem_type"] == MULTI_LABEL or _ENTAILMENT not in labels:
        return None
    for other in (*_NOT_ENTAILMENT, "neutral"):
        if other in labels:
            return labels.index(_ENTAILMENT), labels.index(other)
    return None


def _check_positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")


def _check_untruncated(input_ids: list[list[int]], limit: int | None) -> None:
    # Past the position table the encoder fails deep inside (a shape mismatch in torch, an Add node in ONNX).
    longest = max(map(len, input_ids), default=0)
    if limit is not None and longest > limit:
        raise ValueError(
            f"An input has {longest} tokens with truncation=False, more than this model's encoder accepts ({limit} "
            "tokens): shorten it, or leave truncation on (the default) to cut it."
        )


def _check_text(text: Any, position: int | None, what: str = "text") -> str:
    where = "" if position is None else f" at position {position}"
    if not isinstance(text, str):
        raise TypeError(f"Expected {what}{where} to be a string, got {type(text).__name__}: {text!r:.60}.")
    if not text.strip():
        raise ValueError(
            f"{what.capitalize()}{where} is empty: the multitask-classification pipeline needs non-empty strings."
        )
    return text


def _is_choice_input(item: Any) -> bool:
    return isinstance(item, dict) and "choices" in item


def choice_pairs(item: dict) -> list[tuple[str, str]]:
    """The (context, choice) sentence pairs of a multiple-choice input: the context is the text, then the question
    after a space when there is one (training pairs its rows the same way: polyhead.data)."""
    context = f"{item['text']} {item['question']}" if item.get("question") else item["text"]
    return [(context, choice) for choice in item["choices"]]


def _kind_tasks(specs: dict, tasks: list[str] | None, choices: bool, strict: bool = False) -> list[str]:
    """The multiple-choice tasks (or the others) among `tasks` (default all); an error when none (or, `strict`, when
    another kind is among them)."""
    tasks = list(specs) if tasks is None else tasks
    found = [task for task in tasks if (specs[task]["problem_type"] == MULTIPLE_CHOICE) == choices]
    if not found or (strict and len(found) < len(tasks)):
        wrong = sorted(set(tasks) - set(found)) or tasks
        kind = "multiple-choice inputs ({'text', 'choices': [...]})" if choices else "texts or sentence pairs"
        fix = "" if choices else " (a multiple-choice task takes {'text': ..., 'choices': [...]} inputs)"
        raise ValueError(f"Task(s) {wrong} cannot answer {kind}{fix}; this model's tasks: {list(specs)}.")
    return found


def _check_choices(item: dict, where: str) -> dict:
    if not set(item) <= {"text", "question", "choices"} or not isinstance(item.get("text"), str):
        raise ValueError(f"A multiple-choice input{where} has keys 'text', 'choices' and optionally 'question'.")
    choices = item["choices"]
    valid = isinstance(choices, list) and all(isinstance(c, str) and c.strip() for c in choices)
    if not valid or len(choices) < 2 or len(set(choices)) < len(choices):
        raise ValueError(
            f"The choices of the multiple-choice input{where} must be a list of at least 2 distinct non-empty "
            f"strings, got {choices!r:.80}."
        )
    return item


def _check_input(item: Any, position: int | None, choices: bool = True) -> str | dict:
    """A non-empty string, or (as transformers' text-classification pipeline accepts) a `{"text": ...}` or
    `{"text": ..., "text_pair": ...}` dict of them, or a multiple-choice `{"text", "question"?, "choices"}`."""
    if not isinstance(item, dict):
        return _check_text(item, position)
    where = "" if position is None else f" at position {position}"
    if "choices" in item and not choices:
        raise ValueError("Multiple-choice inputs go in a list (or alone), not in a generator.")
    if "choices" in item:
        _check_text(item.get("text"), position, "'text'")
        if item.get("question") is not None:
            _check_text(item["question"], position, "'question'")
        return _check_choices(item, where)
    if "text" not in item or not set(item) <= {"text", "text_pair"}:
        raise ValueError(
            f"A dict input{where} must have the key 'text' and optionally 'text_pair' (a sentence pair), got keys "
            f"{sorted(map(str, item))}."
        )
    _check_text(item["text"], position, "'text'")
    if "text_pair" in item:
        _check_text(item["text_pair"], position, "'text_pair'")
    return item


def _length(item: str | dict) -> int:
    return len(item) if isinstance(item, str) else len(item["text"]) + len(item.get("text_pair") or "")


def register_pipeline() -> None:
    """Registers `multitask-classification` and `multitask-zero-shot-classification` with transformers' pipeline
    registry (idempotent)."""
    for task, impl in ((PIPELINE_TASK, MultitaskClassificationPipeline), (ZERO_SHOT_TASK, ZeroShotMultitaskPipeline)):
        current = PIPELINE_REGISTRY.supported_tasks.get(task)
        if current is None or current["impl"] is not impl:
            PIPELINE_REGISTRY.register_pipeline(task, pipeline_class=impl, pt_model=AutoModel, type="text")


__all__ = ["MultitaskClassificationPipeline", "ZeroShotMultitaskPipeline", "register_pipeline"]
