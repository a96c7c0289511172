# Copyright 2026 The polyhead authors. Licensed under the Apache License, Version 2.0.
"""The `multitask-zero-shot-classification` pipeline: transformers' zero-shot classification through the model's NLI
task (the `multitask-classification` pipeline hands it calls with `candidate_labels`).

A Hub file (run through `trust_remote_code=True`): it imports only torch, transformers and its flat siblings.
"""

from typing import Any

import torch

from .multitask_base import OUTPUT_KEY, MultitaskPipelineBase
from .multitask_inputs import (
    check_bool,
    check_candidate_labels,
    check_hypothesis_template,
    check_max_length,
    check_positive_int,
    check_tasks,
    check_text,
)
from .multitask_ranking import MULTI_LABEL


ZERO_SHOT_TASK = "multitask-zero-shot-classification"
_ENTAILMENT, _NOT_ENTAILMENT = "entailment", ("contradiction", "not_entailment")


class ZeroShotMultitaskPipeline(MultitaskPipelineBase):
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
        **unknown,
    ) -> dict[str, Any] | list[dict[str, Any]]:
        # One forward per text (all its hypotheses), or with `batch_size` that many pairs per forward across texts
        # (of similar length, as for lists).
        if unknown:  # e.g. top_k or tasks beside candidate_labels: Python's own TypeError names no fix
            raise TypeError(
                f"Unknown argument(s) {sorted(unknown)} for zero-shot classification (a call with candidate_labels), "
                "which ranks every candidate label: its parameters are hypothesis_template, multi_label, nli_task, "
                "truncation, max_length and batch_size."
            )
        if batch_size is not None:
            check_positive_int("batch_size", batch_size)
        if max_length is not None:
            check_max_length(self.model.config.encoder, max_length, self.tokenizer)
        multi_label = check_bool("multi_label", multi_label, False)
        truncation = check_bool("truncation", truncation, True)
        task, entailment, contradiction = self._nli_task(nli_task)
        candidate_labels = check_candidate_labels(candidate_labels)
        hypothesis_template = check_hypothesis_template(hypothesis_template)
        batch_size = batch_size or self._batch_size
        hypotheses = [hypothesis_template.format(label) for label in candidate_labels]
        if not isinstance(inputs, (str, list, tuple)):
            raise TypeError(
                "Zero-shot classification takes a text or a list of texts (each is paired with every hypothesis), "
                f"got {type(inputs).__name__}: {inputs!r:.60}."
            )
        texts = [inputs] if isinstance(inputs, str) else list(inputs)
        for position, text in enumerate(texts):
            check_text(text, None if isinstance(inputs, str) else position)
        if not texts:
            return []
        order = sorted(range(len(texts)), key=lambda i: len(texts[i])) if batch_size else range(len(texts))
        pairs = [{"text": texts[i], "text_pair": hypothesis} for i in order for hypothesis in hypotheses]
        if truncation:  # as transformers' zero-shot pipeline: cut the text only, never the label's hypothesis
            self._check_room_for_hypotheses(hypotheses, max_length or self._default_max_length())
        strategy = "only_first" if truncation else False
        groups = self._grouped_batches(pairs, batch_size or len(hypotheses), strategy, max_length)
        logits = [self.forward(batch, tasks=[task])[OUTPUT_KEY].float() for _, batches in groups for batch in batches]
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

    # Pipeline's hooks: `__call__` above pairs and batches every text's hypotheses itself, through `forward`.
    def _sanitize_parameters(self, **kwargs):
        if kwargs:
            raise TypeError(
                f"Unknown argument(s) {sorted(kwargs)} for the {ZERO_SHOT_TASK} pipeline: pass them per call."
            )
        return {}, {}, {}

    def preprocess(self, inputs: dict, truncation: bool = True, max_length: int | None = None) -> dict:
        return self._collate(self._tokenize_rows([inputs], "only_first" if truncation else False, max_length))

    def _forward(self, model_inputs: dict, tasks: list[str]) -> dict[str, torch.Tensor]:
        return {OUTPUT_KEY: self.run_heads(model_inputs, tasks)}

    def postprocess(self, model_outputs: dict) -> dict:
        return model_outputs

    def _check_room_for_hypotheses(self, hypotheses: list[str], max_length: int | None) -> None:
        """Refuses a hypothesis that leaves no token of the text within `max_length` (only the text is cut)."""
        if max_length is None:
            return
        room = max_length - self.tokenizer.num_special_tokens_to_add(pair=True) - 1  # at least one text token
        with self._tokenizer_lock:
            lengths = [len(ids) for ids in self.tokenizer(hypotheses, add_special_tokens=False)["input_ids"]]
        too_long = [(hypothesis, n) for hypothesis, n in zip(hypotheses, lengths) if n > room]
        if too_long:
            hypothesis, n = too_long[0]
            raise ValueError(
                f"The hypothesis {hypothesis!r} takes {n} tokens, more than max_length={max_length} leaves beside "
                f"the text ({room}): shorten hypothesis_template or the candidate label, or raise max_length."
            )

    def _nli_task(self, name: str | None) -> tuple[str, int, int]:
        """`(task, entailment id, contradiction id)` of the NLI task zero-shot classification runs through."""
        specs = self.model.config.tasks
        found = {task: ids for task, ids in ((t, _entailment_ids(spec)) for t, spec in specs.items()) if ids}
        rule = (
            "a single-label task whose labels include 'entailment' plus 'contradiction'/'neutral' or "
            "'not_entailment' (case-insensitive)"
        )
        if name is not None:
            if not isinstance(name, str):
                raise ValueError(
                    f"nli_task must be a task name (this model's NLI tasks: {list(found)}), got {name!r}."
                )
            check_tasks(specs, name)
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


def _entailment_ids(spec: dict) -> tuple[int, int] | None:
    """`(entailment id, contradiction id)` of an NLI task (contradiction, else not_entailment, else neutral)."""
    labels = [label.lower() for label in spec["labels"]]
    if spec["problem_type"] == MULTI_LABEL or _ENTAILMENT not in labels:
        return None
    for other in (*_NOT_ENTAILMENT, "neutral"):
        if other in labels:
            return labels.index(_ENTAILMENT), labels.index(other)
    return None


__all__ = ["ZERO_SHOT_TASK", "ZeroShotMultitaskPipeline"]
