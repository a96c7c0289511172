# Copyright 2026 The polyhead authors. Licensed under the Apache License, Version 2.0.
"""A multitask text classifier: one shared encoder, one linear head per task, every task from one encoder pass.

This file is executed by Hub users through `trust_remote_code=True`: it imports only torch, transformers and its flat
sibling `configuration_multitask.py`.
"""

import inspect
import operator
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.nn import functional as F
from transformers import AutoModel, PreTrainedModel
from transformers.activations import ACT2FN
from transformers.utils import ModelOutput

from .configuration_multitask import MULTI_LABEL, SINGLE_LABEL, MultitaskConfig, normalize_task


if TYPE_CHECKING:  # never run: transformers fetches, caches and re-saves a model file's relative imports with it
    from .multitask_classification import MultitaskClassificationPipeline  # noqa: F401
    from .multitask_ranking import rank  # noqa: F401

PIPELINE_FILE = "multitask_classification.py"
_VERSION = operator.attrgetter("_version")  # a tensor's in-place update counter
_ENCODER_INPUTS = ("input_ids", "attention_mask", "token_type_ids", "position_ids", "inputs_embeds")


@dataclass
class MultitaskOutput(ModelOutput):
    """
    Output of [`MultitaskModel`].

    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*): sum of the per-task losses, when `labels` are given.
        logits (`dict[str, torch.FloatTensor]`): per task, logits of shape `(batch_size, num_labels)`.
        task_losses (`dict[str, torch.FloatTensor]`, *optional*): the loss of every task that had labels.
        pooled_output (`torch.FloatTensor` of shape `(batch_size, hidden_size)`): the pooled encoder output.
    """

    loss: torch.FloatTensor | None = None
    logits: dict[str, torch.FloatTensor] | None = None
    task_losses: dict[str, torch.FloatTensor] | None = None
    pooled_output: torch.FloatTensor | None = None


class MultitaskModel(PreTrainedModel):
    r"""
    A shared transformer encoder with one classification head per task of `config.tasks`.

    `forward` runs the encoder once and every requested head on the same pooled vector, so N tasks cost about what
    one classifier costs. Single-label tasks use a softmax cross-entropy loss, multi-label tasks a sigmoid
    binary cross-entropy loss.

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
            encoder = AutoModel.from_config(config.encoder).to(torch.get_default_dtype())
        self.encoder = encoder
        _drop_unused_pooler(self.encoder)
        # pooling="native": the family's dense + activation on the first token, shared by every head (exportable).
        self.native_pooler = NativePooler(config) if config.pooling == "native" else None
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.heads = nn.ModuleDict(
            {name: nn.Linear(config.hidden_size, size) for name, size in config.num_labels_per_task.items()}
        )
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
        **encoder_kwargs,
    ) -> "MultitaskModel":
        r"""
        Starts a multitask model from a pretrained encoder (a Hub id or a local folder) and fresh task heads.

        Args:
            encoder_name_or_path: anything `AutoModel.from_pretrained` accepts.
            tasks: the `tasks` mapping of [`MultitaskConfig`].
            pooling, classifier_dropout: head options of [`MultitaskConfig`].
            encoder_kwargs: passed to `AutoModel.from_pretrained` (`revision`, `token`, `attn_implementation`...).

        Example:

        ```python
        >>> model = MultitaskModel.from_encoder_pretrained(
        ...     "sentence-transformers/all-MiniLM-L6-v2", tasks={"sentiment": {"labels": ["neg", "pos"]}})
        ```
        """
        encoder = AutoModel.from_pretrained(encoder_name_or_path, **encoder_kwargs)
        pretrained_pooler = getattr(getattr(encoder, "pooler", None), "dense", None)  # read before it is dropped
        config = MultitaskConfig(
            encoder=encoder.config, tasks=tasks, pooling=pooling, classifier_dropout=classifier_dropout
        )
        model = cls(config, encoder=encoder).to(encoder.dtype)  # heads in the encoder's dtype (`dtype=` in kwargs)
        if model.native_pooler is not None and isinstance(pretrained_pooler, nn.Linear):
            # As BertForSequenceClassification does: the checkpoint's pooler rather than a random layer.
            model.native_pooler.dense.load_state_dict(pretrained_pooler.state_dict())
        return model

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        """`PreTrainedModel.from_pretrained` that refuses a checkpoint whose weights disagree with its config.

        transformers would silently give a task missing from the weights a random head (and drop weights of a task
        missing from the config): for a multitask model that is silent damage, so both raise a `ValueError`.
        """
        output_loading_info = kwargs.pop("output_loading_info", False)
        try:
            model, info = super().from_pretrained(*args, output_loading_info=True, **kwargs)
        except Exception as error:
            if type(error).__name__ != "SafetensorError":  # safetensors' own error names no file
                raise
            source = args[0] if args else kwargs.get("pretrained_model_name_or_path")
            raise OSError(f"Cannot read the weights (model.safetensors) of {source}: {error}.") from error
        missing = sorted(info.get("missing_keys") or ())
        orphans = sorted(key for key in info.get("unexpected_keys") or () if key.startswith("heads."))
        mismatched = sorted(
            str(item[0] if isinstance(item, (tuple, list)) else item) for item in info.get("mismatched_keys") or ()
        )
        problems = []
        if missing:
            problems.append(f"no weights for {_summarize(missing)} (in the config but not in the checkpoint)")
        if orphans:
            problems.append(f"weights for {_summarize(orphans)} whose tasks are not in config.tasks")
        if mismatched:
            problems.append(f"weights of the wrong shape for {_summarize(mismatched)}")
        if problems:
            tasks = model.config.task_names
            raise ValueError(f"config.json and the weights disagree: {'; '.join(problems)}. Config tasks: {tasks}.")
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

    def add_task(
        self,
        name: str,
        labels: list[str],
        problem_type: str = SINGLE_LABEL,
        threshold: float | None = None,
    ) -> None:
        """Adds a freshly initialised head for a new task; the encoder and the other heads are untouched."""
        if name in self.config.tasks:
            raise ValueError(f"Task {name!r} already exists; remove_task({name!r}) first to replace it.")
        spec = {"labels": labels, "problem_type": problem_type}
        if threshold is not None:
            spec["threshold"] = threshold
        spec = normalize_task(name, spec)
        head = nn.Linear(self.config.hidden_size, len(spec["labels"]))
        head.to(device=self.device, dtype=self.dtype)
        self._init_weights(head)
        self.heads[name] = head
        self.config.tasks = {**self.config.tasks, name: spec}

    def remove_task(self, name: str) -> None:
        """Drops one task head (and its config entry); the others are untouched."""
        self.config.task(name)
        if len(self.config.tasks) == 1:
            raise ValueError(f"Cannot remove {name!r}: a multitask model needs at least one task.")
        del self.heads[name]
        self.config.tasks = {task: spec for task, spec in self.config.tasks.items() if task != name}

    def freeze_encoder(self, freeze: bool = True) -> None:
        """Freezes (or unfreezes) the shared encoder (and the shared native pooler) so that training only updates the
        heads."""
        for module in (self.encoder, self.native_pooler):
            if module is not None:
                module.requires_grad_(not freeze)

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
        **kwargs,
    ) -> torch.Tensor:
        """The pooled encoder output `(batch_size, hidden_size)` that every head reads (before dropout)."""
        inputs = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "token_type_ids": token_type_ids,
            "position_ids": position_ids,
            "inputs_embeds": inputs_embeds,
        }
        encoder_inputs = {k: v for k, v in inputs.items() if v is not None and k in self._encoder_inputs}
        hidden_states = self.encoder(**encoder_inputs, **kwargs)[0]
        return self.pool(hidden_states, attention_mask)

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
        **kwargs,
    ) -> MultitaskOutput | tuple:
        r"""
        task (`str` or `list[str]`, *optional*):
            The task(s) whose heads run; all tasks when `None`. The encoder runs once either way.
        labels (`torch.Tensor` or `dict[str, torch.Tensor]`, *optional*):
            Class ids of shape `(batch_size,)` for a single-label task or multi-hot `(batch_size, num_labels)` for a
            multi-label task. A tensor needs exactly one task; a dict maps task names to labels. Rows whose label is
            -100 are ignored, so one batch can mix texts labelled for different tasks.
        """
        tasks = self._resolve_tasks(task)
        labels = self._resolve_labels(labels, tasks)
        pooled = self.encode(input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds, **kwargs)
        features = self.dropout(pooled)
        fused = self.head_logits(features, tasks)
        if len(tasks) == 1:
            logits = {tasks[0]: fused}
        else:
            specs = self.config.tasks  # read once: config attribute reads are slow (transformers' __getattribute__)
            sizes = [len(specs[name]["labels"]) for name in tasks]
            logits = dict(zip(tasks, torch.split(fused, sizes, dim=-1)))
        task_losses = {name: self.task_loss(name, logits[name], target) for name, target in labels.items()}
        loss = torch.stack(list(task_losses.values())).sum() if task_losses else None
        output = MultitaskOutput(loss=loss, logits=logits, task_losses=task_losses or None, pooled_output=pooled)
        return output if return_dict is not False else output.to_tuple()

    def head_logits(self, features: torch.Tensor, tasks: list[str] | None = None) -> torch.Tensor:
        """Every requested head as ONE matmul: logits of shape `(batch_size, sum of their label counts)`, the tasks'
        columns side by side in `tasks` order (all tasks by default).

        The heads stay one `nn.Linear` each in `self.heads` (the checkpoint format); outside autograd their weights
        are concatenated once and cached until a parameter changes, so hundreds of heads cost about what one does
        (measured in docs/design-hub-files.md). A caller running many batches without changing weights in between can
        take [`fused_head_weights`] once and apply `F.linear` itself (checking the cache reads every head's version).
        """
        tasks = self.config.task_names if tasks is None else tasks
        if len(tasks) == 1:
            return self.heads[tasks[0]](features)
        fused = self.fused_head_weights(tuple(tasks))
        if fused is None:  # a head that is not a plain nn.Linear (quantized, wrapped by an adapter...): one call each
            return torch.cat([self.heads[name](features) for name in tasks], dim=-1)
        return F.linear(features, *fused)

    def fused_head_weights(self, tasks: tuple[str, ...]) -> tuple[torch.Tensor, torch.Tensor] | None:
        """`(weight, bias)` of the tasks' heads concatenated in `tasks` order (cached outside autograd, see
        [`head_logits`]), or None when a head is not a plain `nn.Linear`."""
        # The ModuleDict's own dict (`self.heads[name]` is a Python call per task); an unknown task: the same KeyError.
        heads = self.heads._modules
        modules = [heads[name] for name in tasks]
        cache = self.__dict__.get("_fused_cache")
        if torch.is_grad_enabled() or cache is None or cache["modules"] != modules:
            if any(type(h) is not nn.Linear for h in modules):  # (a cached list holds only nn.Linear heads)
                return None
        if torch.is_grad_enabled():  # training: concatenate per call so gradients reach every head
            return torch.cat([h.weight for h in modules]), torch.cat([h.bias for h in modules])
        # Valid while the same head modules (by identity) hold parameters at the same versions (in-place updates such
        # as optimizer steps bump them; writes through `.data` do not) and storage (`.to()` moves it); never saved.
        if (
            cache is None
            or cache["modules"] != modules
            or cache["params"][0].data_ptr() != cache["pointer"]
            or list(map(_VERSION, cache["params"])) != cache["versions"]
        ):
            params = [p for h in modules for p in (h.weight, h.bias)]
            weight = torch.cat([h.weight.detach() for h in modules])
            bias = torch.cat([h.bias.detach() for h in modules])
            cache = {"modules": modules, "params": params, "weight": weight, "bias": bias}
            cache.update(pointer=params[0].data_ptr(), versions=list(map(_VERSION, params)))
            self.__dict__["_fused_cache"] = cache
        return cache["weight"], cache["bias"]

    def task_loss(
        self, task: str, logits: torch.Tensor, labels: torch.Tensor, class_weights: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Cross-entropy (single-label) or BCE-with-logits (multi-label), ignoring rows labelled -100.

        `class_weights` (one per label) weight the cross-entropy's classes, or are the BCE's `pos_weight`.
        """
        multi_label = self.config.tasks[task]["problem_type"] == MULTI_LABEL
        keep = (labels != -100).all(dim=-1) if multi_label else labels != -100
        if not keep.any():
            return logits.sum() * 0.0  # keeps the graph connected when no row has this task's labels
        if class_weights is not None:
            class_weights = torch.as_tensor(class_weights, dtype=logits.dtype, device=logits.device)
        if multi_label:
            return F.binary_cross_entropy_with_logits(
                logits[keep], labels[keep].to(logits.dtype), pos_weight=class_weights
            )
        return F.cross_entropy(logits[keep], labels[keep].long(), weight=class_weights)

    def _resolve_tasks(self, task: str | list[str] | None) -> list[str]:
        if task is None:
            return self.config.task_names
        tasks = [task] if isinstance(task, str) else list(task)
        if not tasks:
            raise ValueError(f"task is empty: name some of this model's tasks {self.config.task_names} (None: all).")
        unknown = [name for name in tasks if name not in self.config.tasks]
        if unknown:
            raise ValueError(f"Unknown task(s) {unknown}: this model has tasks {self.config.task_names}.")
        return tasks

    def _resolve_labels(self, labels, tasks: list[str]) -> dict[str, torch.Tensor]:
        if labels is None:
            return {}
        if not isinstance(labels, dict):
            if len(tasks) != 1:
                raise ValueError(
                    f"labels is a single tensor but {len(tasks)} tasks run: pass task='name' or labels={{task: ...}}."
                )
            labels = {tasks[0]: labels}
        missing = [name for name in labels if name not in tasks]
        if missing:
            raise ValueError(f"labels given for task(s) {missing} that do not run; running tasks: {tasks}.")
        for name, target in labels.items():
            self._check_labels(name, target)
        return labels

    def _check_labels(self, task: str, labels: torch.Tensor) -> None:
        spec = self.config.tasks[task]
        num_labels = len(spec["labels"])
        if spec["problem_type"] == MULTI_LABEL:
            if labels.dim() != 2 or labels.shape[-1] != num_labels:
                raise ValueError(
                    f"Task {task!r} is multi-label: labels must be multi-hot of shape (batch_size, {num_labels}), "
                    f"got shape {tuple(labels.shape)}."
                )
            bad = (labels != 0) & (labels != 1) & (labels != -100)
        else:
            if labels.dim() != 1 or labels.is_floating_point():
                raise ValueError(
                    f"Task {task!r} is single-label: labels must be integer class ids of shape (batch_size,), "
                    f"got {labels.dtype} of shape {tuple(labels.shape)}."
                )
            bad = ((labels < 0) | (labels >= num_labels)) & (labels != -100)
        if bad.any():
            raise ValueError(
                f"Task {task!r}: label values {sorted(set(labels[bad].tolist()))[:10]} are outside its "
                f"{num_labels} labels {spec['labels']}."
            )


class NativePooler(nn.Module):
    """`pooling="native"`: dense + activation on the first token, as the encoder family's own sequence-classification
    head computes it before its output projection (BERT pooler, RoBERTa/ELECTRA classification head, DistilBERT
    pre_classifier, DeBERTa ContextPooler)."""

    def __init__(self, config: MultitaskConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.activation = ACT2FN[config.native_pooling_activation()]

    def forward(self, first_token: torch.Tensor) -> torch.Tensor:
        return self.activation(self.dense(first_token))


def _summarize(keys: list[str], limit: int = 6) -> str:
    return str(keys[:limit])[:-1] + (f", ... {len(keys) - limit} more]" if len(keys) > limit else "]")


def _accepted_inputs(encoder: nn.Module) -> frozenset[str]:
    # DistilBERT has no token_type_ids, some encoders no position_ids: pass each encoder only what it accepts.
    parameters = inspect.signature(encoder.forward).parameters
    return frozenset(name for name in _ENCODER_INPUTS if name in parameters)


def _drop_unused_pooler(encoder: nn.Module) -> None:
    # BERT/RoBERTa poolers are never used (we pool ourselves): dropping them saves weights and keeps DDP happy.
    if getattr(encoder, "pooler", None) is not None:
        encoder.pooler = None


# Flat beside the pipeline file (a Hub repo or its cached copy), `save_pretrained` copies this file and its relative
# imports, the pipeline file included (see TYPE_CHECKING above), and writes `auto_map`, on every transformers release.
# The source tree keeps the pipeline in `pipelines/`: polyhead writes its folders with `save_model_folder`.
if Path(__file__).with_name(PIPELINE_FILE).is_file():
    MultitaskConfig.register_for_auto_class()
    MultitaskModel.register_for_auto_class("AutoModel")

__all__ = ["MultitaskModel", "MultitaskOutput", "NativePooler"]
