# Copyright 2026 The polyhead authors. Licensed under the Apache License, Version 2.0.
"""A multitask text classifier: one shared encoder, one linear head per task, every task from one encoder pass.

This file is executed by Hub users through `trust_remote_code=True`: it imports only torch, transformers and its flat
siblings: the config, the task heads (`modeling_multitask_heads.py`) and the checks (`modeling_multitask_checks.py`).
"""

import inspect
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn
from transformers import AutoModel, PreTrainedModel
from transformers.utils import ModelOutput

from .configuration_multitask import MultitaskConfig
from .modeling_multitask_checks import (
    check_attention_output,
    check_input_shapes,
    check_loading_info,
    resolve_labels,
    resolve_tasks,
)
from .modeling_multitask_heads import MultitaskHeadsMixin, NativePooler, choice_logits, new_task_embeddings


# Never run: transformers fetches, caches and re-saves a model file's relative imports with it (4.51.3 copies only the
# direct ones from a local folder, so every Hub file the model's folder needs is named here).
if TYPE_CHECKING:
    from .configuration_multitask_checks import MULTI_LABEL  # noqa: F401
    from .multitask_base import MultitaskPipelineBase  # noqa: F401
    from .multitask_classification import MultitaskClassificationPipeline  # noqa: F401
    from .multitask_inputs import check_input  # noqa: F401
    from .multitask_ranking import rank  # noqa: F401
    from .multitask_zero_shot import ZeroShotMultitaskPipeline  # noqa: F401

_ENCODER_INPUTS = ("input_ids", "attention_mask", "token_type_ids", "position_ids", "inputs_embeds")


@dataclass
class MultitaskOutput(ModelOutput):
    """
    Output of [`MultitaskModel`].

    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*): sum of the per-task losses, when `labels` are given.
        logits (`dict[str, torch.FloatTensor]`): per task, logits of shape `(batch_size, num_labels)`; for a
            multiple-choice task `(batch_size, num_choices)`, a padding choice at the dtype's lowest value.
        task_losses (`dict[str, torch.FloatTensor]`, *optional*): the loss of every task that had labels.
        pooled_output (`torch.FloatTensor` of shape `(batch_size, hidden_size)`): the pooled encoder output.
        hidden_states (`tuple(torch.FloatTensor)`, *optional*): with `output_hidden_states=True` (or
            `config.output_hidden_states`), the encoder's: the embeddings' output, then each layer's, of shape
            `(rows, sequence_length, hidden_size)`. Rows: the input's (a multiple-choice input's real choices); with
            task embeddings, those of the first task's pass (as `pooled_output`).
        attentions (`tuple(torch.FloatTensor)`, *optional*): with `output_attentions=True` (or
            `config.output_attentions`), the encoder's attention weights, one `(rows, heads, sequence_length,
            sequence_length)` tensor per layer (the same rows); they need eager attention.
    """

    loss: torch.FloatTensor | None = None
    logits: dict[str, torch.FloatTensor] | None = None
    task_losses: dict[str, torch.FloatTensor] | None = None
    pooled_output: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


class MultitaskModel(MultitaskHeadsMixin, PreTrainedModel):
    r"""
    A shared transformer encoder with one classification head per task of `config.tasks`.

    `forward` runs the encoder once and every requested head on the same pooled vector, so N tasks cost about what
    one classifier costs. Single-label tasks use a softmax cross-entropy loss, multi-label tasks a sigmoid
    binary cross-entropy loss. Multiple-choice tasks take `(batch_size, num_choices, sequence_length)` inputs (each
    row a (context, choice) pair), score every pair with their one-output head and use a softmax cross-entropy
    over the choices. With `config.task_embeddings`, each task runs its own encoder pass (its vector in the input).

    Example:

    ```python
    >>> from transformers import BertConfig
    >>> config = MultitaskConfig(
    ...     encoder=BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
    ...                        intermediate_size=37),
    ...     tasks={"sentiment": {"labels": ["neg", "pos"]},
    ...            "topics": {"labels": ["a", "b", "c"], "problem_type": "multi_label_classification"}},
    ... )
    >>> model = MultitaskModel(config)
    >>> out = model(input_ids=torch.tensor([[2, 5, 7, 3]]))
    >>> {task: tuple(logits.shape) for task, logits in out.logits.items()}
    {'sentiment': (1, 2), 'topics': (1, 3)}
    ```
    """

    config_class = MultitaskConfig
    config: MultitaskConfig
    base_model_prefix = "multitask"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    _supports_attention_backend = True

    def __init__(self, config: MultitaskConfig, encoder: PreTrainedModel | None = None):
        if config.encoder is None or not config.tasks:
            raise ValueError("MultitaskModel needs a MultitaskConfig with an encoder config and at least one task.")
        super().__init__(config)
        # `encoder`: an already built (e.g. pretrained) encoder, so that no random one is built just to be replaced.
        if encoder is None:  # in the heads' dtype, the one `from_pretrained(dtype=...)` sets as default meanwhile:
            # `from_config` would take the nested encoder config's saved dtype (float32) and mismatch the heads.
            # `attn_implementation="eager"` asked for the model reaches the encoder (the attention every encoder has,
            # the one that returns attention weights); otherwise the encoder picks its own.
            eager = {"attn_implementation": "eager"} if self.config._attn_implementation == "eager" else {}
            encoder = AutoModel.from_config(config.encoder, **eager).to(torch.get_default_dtype())
        self.encoder = encoder
        _drop_unused_pooler(self.encoder)
        # pooling="native": the family's dense + activation on the first token, shared by every head (exportable).
        self.native_pooler = NativePooler(config) if config.pooling == "native" else None
        self.dropout = nn.Dropout(config.classifier_dropout)
        sizes = config.num_labels_per_task  # a task sharing another's head (`shared_heads`) has none of its own
        self.heads = nn.ModuleDict(
            {name: nn.Linear(config.hidden_size, size) for name, size in sizes.items() if config.head_of(name) == name}
        )
        self.task_embeddings = new_task_embeddings(self.encoder, config.task_names) if config.task_embeddings else None
        self._encoder_inputs = _accepted_inputs(self.encoder)
        self.post_init()

    @classmethod
    def from_encoder_pretrained(
        cls,
        encoder_name_or_path: str | os.PathLike,
        tasks: dict,
        *,
        pooling: str = "mean",
        classifier_dropout: float = 0.1,
        shared_heads: dict | None = None,
        task_embeddings: bool = False,
        task_embedding_dropout: float = 0.1,
        **encoder_kwargs,
    ) -> "MultitaskModel":
        r"""
        Starts a multitask model from a pretrained encoder (a Hub id or a local folder) and fresh task heads.

        Args:
            encoder_name_or_path: anything `AutoModel.from_pretrained` accepts.
            tasks: the `tasks` mapping of [`MultitaskConfig`].
            pooling, classifier_dropout, shared_heads, task_embeddings, task_embedding_dropout: options of
                [`MultitaskConfig`].
            encoder_kwargs: passed to `AutoModel.from_pretrained` (`revision`, `token`, `attn_implementation`...).

        Example:

        ```python
        >>> model = MultitaskModel.from_encoder_pretrained(
        ...     "sentence-transformers/all-MiniLM-L6-v2", tasks={"sentiment": {"labels": ["neg", "pos"]}})
        ```
        """
        encoder = AutoModel.from_pretrained(encoder_name_or_path, **encoder_kwargs)
        pretrained_pooler = getattr(getattr(encoder, "pooler", None), "dense", None)  # read before it is dropped
        options = {"shared_heads": shared_heads, "task_embeddings": task_embeddings}
        options.update(task_embedding_dropout=task_embedding_dropout, pooling=pooling)
        config = MultitaskConfig(encoder=encoder.config, tasks=tasks, classifier_dropout=classifier_dropout, **options)
        model = cls(config, encoder=encoder).to(encoder.dtype)  # heads in the encoder's dtype (`dtype=` in kwargs)
        if model.native_pooler is not None and isinstance(pretrained_pooler, nn.Linear):
            # As BertForSequenceClassification does: the checkpoint's pooler rather than a random layer.
            model.native_pooler.dense.load_state_dict(pretrained_pooler.state_dict())
        return model

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        """`PreTrainedModel.from_pretrained` that refuses a checkpoint whose weights disagree with its config.

        transformers would silently give a task missing from the weights a random head (and drop weights of a task
        missing from the config): for a multitask model that is silent damage, so both raise a `ValueError`. A head
        of another size than its labels (a hand-edited config) raises the same error: transformers is asked to load
        past the mismatch only so that its loading info reaches the check.
        """
        output_loading_info = kwargs.pop("output_loading_info", False)
        kwargs.setdefault("ignore_mismatched_sizes", True)
        try:
            model, info = super().from_pretrained(*args, output_loading_info=True, **kwargs)
        except Exception as error:
            if type(error).__name__ != "SafetensorError":  # safetensors' own error names no file
                raise
            source = args[0] if args else kwargs.get("pretrained_model_name_or_path")
            raise OSError(f"Cannot read the weights (model.safetensors) of {source}: {error}.") from error
        check_loading_info(info, model.config.task_names)
        return (model, info) if output_loading_info else model

    @property
    def task_names(self) -> list[str]:
        return self.config.task_names

    def get_encoder(self) -> PreTrainedModel:
        return self.encoder

    def get_input_embeddings(self) -> nn.Module:
        return self.encoder.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.encoder.set_input_embeddings(value)

    def resize_token_embeddings(self, *args, **kwargs) -> nn.Embedding:
        """Resizes the encoder's token embeddings (after adding tokens to the tokenizer) and records the new
        vocabulary size in `config.encoder`, so that the saved model loads back."""
        embeddings = self.encoder.resize_token_embeddings(*args, **kwargs)
        self.config.encoder.vocab_size = self.encoder.config.vocab_size
        return embeddings

    def pool(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        """`cls`: the first token; `mean`: the mean over real (unmasked) tokens; `native`: the family's transform of
        the first token."""
        if self.native_pooler is not None:
            return self.native_pooler(hidden_states[:, 0])
        if self.config.pooling == "cls":
            return hidden_states[:, 0]
        if attention_mask is None:
            return hidden_states.mean(dim=1)
        mask = attention_mask.unsqueeze(-1).to(hidden_states.dtype)
        return (hidden_states * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)

    def encode(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        task: str | None = None,
        **kwargs,
    ) -> torch.Tensor:
        """The pooled encoder output `(batch_size, hidden_size)` that every head reads (before dropout); with task
        embeddings, `task` names the vector added to the first token's input embedding (`None`: no vector)."""
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
        inputs.update(position_ids=position_ids, inputs_embeds=inputs_embeds)
        return self._encode(inputs, task, **kwargs)[0]

    def _encode(self, inputs: dict, task: str | None, **kwargs) -> tuple[torch.Tensor, ModelOutput | tuple]:
        # (pooled output, the encoder's whole output): `encode`, and `forward`, which may return hidden states.
        if task is not None and self.task_embeddings is not None:
            embeds = self.embed_task(task, inputs.get("input_ids"), inputs.get("inputs_embeds"))
            inputs = {**inputs, "input_ids": None, "inputs_embeds": embeds}
        encoder_inputs = {k: v for k, v in inputs.items() if v is not None and k in self._encoder_inputs}
        output = self.encoder(**encoder_inputs, **kwargs)
        return self.pool(output[0], inputs.get("attention_mask")), output

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        task: str | list[str] | None = None,
        labels: torch.Tensor | dict[str, torch.Tensor] | None = None,
        return_dict: bool | None = None,
        choice_mask: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        **kwargs,
    ) -> MultitaskOutput | tuple:
        r"""
        task (`str` or `list[str]`, *optional*):
            The task(s) whose heads run; when `None`, every task of the input's kind (multiple-choice or not). The
            encoder runs once either way (once per task with `config.task_embeddings`).
        labels (`torch.Tensor` or `dict[str, torch.Tensor]`, *optional*):
            Class ids of shape `(batch_size,)` for a single-label task or multi-hot `(batch_size, num_labels)` for a
            multi-label task. A tensor needs exactly one task; a dict maps task names to labels. Rows whose label is
            -100 are ignored, so one batch can mix texts labelled for different tasks. Multiple-choice: the index of
            the right choice, shape `(batch_size,)`.
        choice_mask (`torch.Tensor` of shape `(batch_size, num_choices)`, *optional*):
            Multiple-choice inputs only: which choices are real (a row with fewer choices is padded; padding choices
            are not encoded). All real when `None`.
        output_hidden_states, output_attentions, return_dict (`bool`, *optional*):
            As in transformers' models, defaulting to the config's: the encoder's hidden states and attention weights
            in the output (see [`MultitaskOutput`]; attention weights need `attn_implementation="eager"`), and a
            tuple instead of a [`MultitaskOutput`] when `return_dict` is `False`.
        """
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
        inputs.update(position_ids=position_ids, inputs_embeds=inputs_embeds)
        choices = check_input_shapes(inputs, choice_mask)
        tasks = resolve_tasks(self.config, task, choices)
        if choices:  # (batch, choices, length) -> the real choices' pairs (pairs, length), encoded as one batch
            shape = (input_ids if input_ids is not None else inputs_embeds).shape[:2]
            choice_mask = torch.ones(shape, dtype=torch.bool) if choice_mask is None else choice_mask.bool()
            choice_mask = choice_mask.to(self.device)
            inputs = {key: value[choice_mask] for key, value in inputs.items() if value is not None}
        labels = resolve_labels(self.config, labels, tasks, choice_mask if choices else None)
        wanted = self._requested_outputs(output_hidden_states, output_attentions)
        embedded = self.task_embeddings is not None  # one pass per task, each with its task's vector
        logits, pooled, encoded = {}, None, None
        for group in [[name] for name in tasks] if embedded else [tasks]:
            vector = group[0] if embedded else None
            if wanted:  # the encoder's hidden states or attention weights too
                group_pooled, group_encoded = self._encode(inputs, vector, **wanted, **kwargs)
            else:  # through `encode`, which polyhead's compiled serving replaces on the model
                group_pooled, group_encoded = self.encode(**inputs, task=vector, **kwargs), None
            if pooled is None:  # the first pass's pooled output (and hidden states) are returned
                pooled, encoded = group_pooled, group_encoded
            logits.update(self._split(self.head_logits(self.dropout(group_pooled), group), group))
        if choices:
            logits = {name: choice_logits(scores, choice_mask) for name, scores in logits.items()}
        task_losses = {name: self.task_loss(name, logits[name], target) for name, target in labels.items()}
        loss = torch.stack(list(task_losses.values())).sum() if task_losses else None
        extra = {key: getattr(encoded, key) for key in ("hidden_states", "attentions") if wanted.get(f"output_{key}")}
        output = MultitaskOutput(
            loss=loss, logits=logits, task_losses=task_losses or None, pooled_output=pooled, **extra
        )
        return_dict = self.config.return_dict if return_dict is None else return_dict
        return output if return_dict else output.to_tuple()

    def _requested_outputs(self, hidden_states: bool | None, attentions: bool | None) -> dict[str, bool]:
        # What the encoder is asked for beyond its last hidden state (the call's choice, else the config's).
        hidden_states = self.config.output_hidden_states if hidden_states is None else hidden_states
        attentions = self.config.output_attentions if attentions is None else attentions
        if attentions:
            check_attention_output(self.encoder.config._attn_implementation)
        wanted = {"output_hidden_states": True} if hidden_states else {}
        wanted.update({"output_attentions": True} if attentions else {})
        return {**wanted, "return_dict": True} if wanted else {}


def _accepted_inputs(encoder: nn.Module) -> frozenset[str]:
    # DistilBERT has no token_type_ids, some encoders no position_ids: pass each encoder only what it accepts.
    parameters = inspect.signature(encoder.forward).parameters
    return frozenset(name for name in _ENCODER_INPUTS if name in parameters)


def _drop_unused_pooler(encoder: nn.Module) -> None:
    # BERT/RoBERTa poolers are never used (we pool ourselves): dropping them saves weights and keeps DDP happy.
    if getattr(encoder, "pooler", None) is not None:
        encoder.pooler = None


# Flat beside the pipeline file (a Hub repo or its cached copy), `save_pretrained` copies this file and its relative
# imports (see TYPE_CHECKING above) and writes `auto_map`; the source tree's folders come from `save_model_folder`.
# transformers finds a Hub repo's pipeline only when given the repo's name: registering it here lets
# `pipeline("multitask-classification", model=<this model object>)` work too (polyhead's own registration stays).
if Path(__file__).with_name("multitask_classification.py").is_file():
    from .multitask_classification import register_pipeline

    MultitaskConfig.register_for_auto_class()
    MultitaskModel.register_for_auto_class("AutoModel")
    register_pipeline(replace=False)

__all__ = ["MultitaskModel", "MultitaskOutput", "NativePooler"]
