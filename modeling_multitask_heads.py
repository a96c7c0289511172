# Copyright 2026 The polyhead authors. Licensed under the Apache License, Version 2.0.
"""The task heads of a multitask model: one linear layer per task, run as one matmul, added, removed or trained alone
(encoder frozen), with their losses; and what surrounds them: the native pooler, task embeddings, choice logits.

A Hub file (run through `trust_remote_code=True`): it imports only torch, transformers and its flat sibling
`configuration_multitask_checks.py`; `modeling_multitask.py` imports it.
"""

import operator

import torch
from torch import nn
from torch.nn import functional as F
from transformers.activations import ACT2FN

from .configuration_multitask_checks import MULTI_LABEL, SINGLE_LABEL, normalize_task


_VERSION = operator.attrgetter("_version")  # a tensor's in-place update counter


class MultitaskHeadsMixin:
    """The heads' methods of [`MultitaskModel`] (which holds `config`, `encoder`, `native_pooler`, `heads` and
    `task_embeddings`)."""

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
        vector = None if self.task_embeddings is None else new_task_embeddings(self.encoder, [name])  # checks the name
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

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """transformers' weight-init hook, also how `add_task` starts a head: a linear layer outside the encoder (a
        head, the native pooler's) starts with normal(0, the encoder's `initializer_range`) weights and a zero bias,
        on every release (4.51's default hook did nothing, leaving PyTorch's init). The encoder's modules are left
        alone: transformers hands them to the encoder's own hook (5.x), or has initialised them or loads them (4.x)."""
        if isinstance(module, nn.Linear) and not any(module is layer for layer in self.encoder.modules()):
            # `nn.init` looked up at the call: inside from_pretrained, transformers 5 swaps in versions that skip
            # loaded weights.
            std = getattr(self.config.encoder, "initializer_range", None) or 0.02
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)

    def freeze_encoder(self, freeze: bool = True) -> None:
        """Freezes (or unfreezes) the shared encoder (and the shared native pooler) so that training only updates the
        heads."""
        for module in (self.encoder, self.native_pooler):
            if module is not None:
                module.requires_grad_(not freeze)

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
        self,
        task: str,
        logits: torch.Tensor,
        labels: torch.Tensor,
        class_weights: torch.Tensor | None = None,
        label_smoothing: float = 0.0,
    ) -> torch.Tensor:
        """Cross-entropy (single-label) or BCE-with-logits (multi-label), ignoring rows labelled -100.

        `class_weights` (one per label) weight the cross-entropy's classes, or are the BCE's `pos_weight`.
        `label_smoothing` (eps): a multi-label target becomes `y (1 - eps) + eps / 2`; a single-label loss
        `(1 - eps) CE + eps U`, U the mean of `-log p` over the real classes (a multiple-choice row's padding
        excluded), unweighted; without class weights or padding this is `F.cross_entropy(..., label_smoothing=eps)`.
        """
        multi_label = self.config.tasks[task]["problem_type"] == MULTI_LABEL
        keep = (labels != -100).all(dim=-1) if multi_label else labels != -100
        if not keep.any():
            return logits.sum() * 0.0  # keeps the graph connected when no row has this task's labels
        if class_weights is not None:
            class_weights = torch.as_tensor(class_weights, dtype=logits.dtype, device=logits.device)
        logits, labels = logits[keep], labels[keep]
        if multi_label:
            targets = labels.to(logits.dtype) * (1.0 - label_smoothing) + label_smoothing / 2
            return F.binary_cross_entropy_with_logits(logits, targets, pos_weight=class_weights)
        loss = F.cross_entropy(logits, labels.long(), weight=class_weights)
        if not label_smoothing:
            return loss
        real = logits > torch.finfo(logits.dtype).min  # `choice_logits` pads missing choices with the lowest value
        log_p = logits.log_softmax(dim=-1).masked_fill(~real, 0.0)
        uniform = (-log_p.sum(dim=-1) / real.sum(dim=-1)).mean()
        return (1.0 - label_smoothing) * loss + label_smoothing * uniform

    def _split(self, fused: torch.Tensor, tasks: list[str]) -> dict[str, torch.Tensor]:
        if len(tasks) == 1:
            return {tasks[0]: fused}
        specs = self.config.tasks  # read once: config attribute reads are slow (transformers' __getattribute__)
        return dict(zip(tasks, torch.split(fused, [len(specs[name]["labels"]) for name in tasks], dim=-1)))


class NativePooler(nn.Module):
    """`pooling="native"`: dense + activation on the first token, as the encoder family's own sequence-classification
    head computes it before its output projection (BERT pooler, RoBERTa/ELECTRA classification head, DistilBERT
    pre_classifier, DeBERTa ContextPooler)."""

    def __init__(self, config):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.activation = ACT2FN[config.native_pooling_activation()]

    def forward(self, first_token: torch.Tensor) -> torch.Tensor:
        return self.activation(self.dense(first_token))


def choice_logits(scores: torch.Tensor, choice_mask: torch.Tensor) -> torch.Tensor:
    # The real choices' scores (pairs, 1) at their places in (batch, choices); padding: the lowest value (softmax ~0).
    full = scores.new_full(choice_mask.shape, torch.finfo(scores.dtype).min)
    return full.masked_scatter(choice_mask, scores.squeeze(-1))


def new_task_embeddings(encoder: nn.Module, tasks: list[str]) -> nn.ParameterDict:
    """One learned vector per task (`config.task_embeddings`), zeros to start, as wide as the `encoder`'s input
    embeddings that it is added to (ELECTRA's `embedding_size` is below its `hidden_size`)."""
    shadowing = [name for name in tasks if hasattr(nn.ParameterDict, name)]  # e.g. `get`: a key would replace it
    if shadowing:
        raise ValueError(f"Task name(s) {shadowing} are nn.ParameterDict attributes: rename them for task_embeddings.")
    # Zeros: a fresh task starts as the encoder without one (a pretrained encoder's first steps are not disturbed).
    width = encoder.get_input_embeddings().embedding_dim
    return nn.ParameterDict({name: nn.Parameter(torch.zeros(width)) for name in tasks})


__all__ = ["MultitaskHeadsMixin", "NativePooler", "choice_logits", "new_task_embeddings"]
