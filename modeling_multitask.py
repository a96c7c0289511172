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
        logits (`dict[str, torch.FloatTensor]`): per task, logits of shape `(batch_size, num_labels)`; for a
            multiple-choice task `(batch_size, num_choices)`, a padding choice at the dtype's lowest value.
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
            encoder = AutoModel.from_config(config.encoder).to(torch.get_default_dtype())
        self.encoder = encoder
        _drop_unused_pooler(self.encoder)
        # pooling="native": the family's dense + activation on the first token, shared by every head (exportable).
        self.native_pooler = NativePooler(config) if config.pooling == "native" else None
        self.dropout = nn.Dropout(config.classifier_dropout)
        sizes = config.num_labels_per_task  # a task sharing another's head (`shared_heads`) has none of its own
        self.heads = nn.ModuleDict(
            {name: nn.Linear(config.hidden_size, size) for name, size in sizes.items() if config.head_of(name) == name}
        )
        self.task_embeddings = _task_embeddings(config, config.task_names) if config.task_embeddings else None
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
        vector = None if self.task_embeddings is None else _task_embeddings(self.config, [name])  # checks the name
        head = nn.Linear(self.config.hidden_size, len(spec["labels"]))
        head.to(device=self.device, dtype=self.dtype)
        self._init_weights(head)
        self.heads[name] = head
        if vector is not None:
            self.task_embeddings.update(vector.to(device=self.device, dtype=self.dtype))
        self.config.tasks = {**self.config.tasks, name: spec}

    def remove_task(self, name: str) -> None:
        """Drops one task head (and its config entry); the others are untouched."""
        self.config.task(name)
        if len(self.config.tasks) == 1:
            raise ValueError(f"Cannot remove {name!r}: a multitask model needs at least one task.")
        if any(name in members for members in (self.config.shared_heads or {}).values()):
            raise ValueError(f"Cannot remove {name!r}: it shares a head (config.shared_heads).")
        del self.heads[name]
        if self.task_embeddings is not None:
            del self.task_embeddings[name]
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
        task: str | None = None,
        **kwargs,
    ) -> torch.Tensor:
        """The pooled encoder output `(batch_size, hidden_size)` that every head reads (before dropout); with task
        embeddings, `task` names the vector added to the first token's input embedding (`None`: no vector)."""
        if task is not None and self.task_embeddings is not None:
            inputs_embeds = self.embed_task(task, input_ids, inputs_embeds)
            input_ids = None
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

    def embed_task(
        self, task: str, input_ids: torch.LongTensor | None, inputs_embeds: torch.FloatTensor | None
    ) -> torch.Tensor:
        """The input embeddings with `task`'s vector added to the first token (dropped for a row with probability
        `task_embedding_dropout` in training): one task-specific CLS, same length, positions and mask."""
        if task not in self.task_embeddings:
            raise ValueError(f"No task embedding for {task!r}: this model has tasks {self.config.task_names}.")
        embeds = self.encoder.get_input_embeddings()(input_ids) if inputs_embeds is None else inputs_embeds
        vector = self.task_embeddings[task].to(embeds.dtype).expand(len(embeds), 1, -1)
        if self.training and self.config.task_embedding_dropout > 0:
            keep = torch.rand(len(embeds), 1, 1, device=embeds.device) >= self.config.task_embedding_dropout
            vector = vector * keep.to(embeds.dtype)
        return torch.cat([embeds[:, :1] + vector, embeds[:, 1:]], dim=1)

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
        """
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
        inputs.update(position_ids=position_ids, inputs_embeds=inputs_embeds)
        given = input_ids if input_ids is not None else inputs_embeds
        choices = given is not None and given.dim() == (3 if input_ids is not None else 4)
        tasks = self._resolve_tasks(task, choices)
        if choices:  # (batch, choices, length) -> the real choices' pairs (pairs, length), encoded as one batch
            shape = given.shape[:2]
            choice_mask = torch.ones(shape, dtype=torch.bool) if choice_mask is None else choice_mask.bool()
            choice_mask = choice_mask.to(self.device)
            inputs = {key: value[choice_mask] for key, value in inputs.items() if value is not None}
        labels = self._resolve_labels(labels, tasks, choice_mask if choices else None)
        embedded = self.task_embeddings is not None  # one pass per task, each with its task's vector
        logits, pooled = {}, None
        for group in [[name] for name in tasks] if embedded else [tasks]:
            group_pooled = self.encode(**inputs, task=group[0] if embedded else None, **kwargs)
            pooled = group_pooled if pooled is None else pooled
            logits.update(self._split(self.head_logits(self.dropout(group_pooled), group), group))
        if choices:
            logits = {name: _choice_logits(scores, choice_mask) for name, scores in logits.items()}
        task_losses = {name: self.task_loss(name, logits[name], target) for name, target in labels.items()}
        loss = torch.stack(list(task_losses.values())).sum() if task_losses else None
        output = MultitaskOutput(loss=loss, logits=logits, task_losses=task_losses or None, pooled_output=pooled)
        return output if return_dict is not False else output.to_tuple()

    def _split(self, fused: torch.Tensor, tasks: list[str]) -> dict[str, torch.Tensor]:
        if len(tasks) == 1:
            return {tasks[0]: fused}
        specs = self.config.tasks  # read once: config attribute reads are slow (transformers' __getattribute__)
        return dict(zip(tasks, torch.split(fused, [len(specs[name]["labels"]) for name in tasks], dim=-1)))

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
            return self.heads[self.config.head_of(tasks[0])](features)
        fused = self.fused_head_weights(tuple(tasks))
        if fused is None:  # a head that is not a plain nn.Linear (quantized, wrapped by an adapter...): one call each
            return torch.cat([self.heads[self.config.head_of(name)](features) for name in tasks], dim=-1)
        return F.linear(features, *fused)

    def fused_head_weights(self, tasks: tuple[str, ...]) -> tuple[torch.Tensor, torch.Tensor] | None:
        """`(weight, bias)` of the tasks' heads concatenated in `tasks` order (cached outside autograd, see
        [`head_logits`]), or None when a head is not a plain `nn.Linear`."""
        # The ModuleDict's own dict (`self.heads[name]` is a Python call per task); an unknown task: the same KeyError.
        heads, shared = self.heads._modules, self.config.shared_heads
        modules = [heads[self.config.head_of(name) if shared else name] for name in tasks]
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

    def _resolve_tasks(self, task: str | list[str] | None, choices: bool = False) -> list[str]:
        kind = "multiple-choice inputs (batch, choices, length)" if choices else "inputs (batch, length)"
        if task is None:
            tasks = self.config.tasks_of_kind(choices)
            if not tasks:
                raise ValueError(f"This model has no task for {kind}: its tasks are {self.config.task_names}.")
            return tasks
        tasks = [task] if isinstance(task, str) else list(task)
        if not tasks:
            raise ValueError(f"task is empty: name some of this model's tasks {self.config.task_names} (None: all).")
        unknown = [name for name in tasks if name not in self.config.tasks]
        if unknown:
            raise ValueError(f"Unknown task(s) {unknown}: this model has tasks {self.config.task_names}.")
        wrong = self.config.tasks_of_kind(not choices, tasks)
        if wrong:
            raise ValueError(
                f"Task(s) {wrong} do not take {kind}: multiple-choice tasks take (batch, choices, length) pairs, the "
                f"others (batch, length)."
            )
        return tasks

    def _resolve_labels(self, labels, tasks: list[str], choice_mask: torch.Tensor | None = None):
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
            self._check_labels(name, target, choice_mask)
        return labels

    def _check_labels(self, task: str, labels: torch.Tensor, choice_mask: torch.Tensor | None = None) -> None:
        spec = self.config.tasks[task]
        num_labels = len(spec["labels"])
        if choice_mask is not None:  # multiple choice: the index of a real choice
            real = choice_mask.sum(dim=-1).to(labels.device)
            bad = ((labels < 0) | (labels >= real)) & (labels != -100)
            if labels.dim() != 1 or labels.is_floating_point() or bad.any():
                raise ValueError(
                    f"Task {task!r} is multiple-choice: labels must be the index of the right choice, shape "
                    f"(batch_size,), below each row's choice count {real.tolist()[:10]}; got {labels.tolist()[:10]}."
                )
            return
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


def _choice_logits(scores: torch.Tensor, choice_mask: torch.Tensor) -> torch.Tensor:
    # The real choices' scores (pairs, 1) at their places in (batch, choices); padding: the lowest value (softmax ~0).
    full = scores.new_full(choice_mask.shape, torch.finfo(scores.dtype).min)
    return full.masked_scatter(choice_mask, scores.squeeze(-1))


def _task_embeddings(config: MultitaskConfig, tasks: list[str]) -> nn.ParameterDict:
    shadowing = [name for name in tasks if hasattr(nn.ParameterDict, name)]  # e.g. `get`: a key would replace it
    if shadowing:
        raise ValueError(f"Task name(s) {shadowing} are nn.ParameterDict attributes: rename them for task_embeddings.")
    # Zeros: a fresh task starts as the encoder without one (a pretrained encoder's first steps are not disturbed).
    return nn.ParameterDict({name: nn.Parameter(torch.zeros(config.hidden_size)) for name in tasks})


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
