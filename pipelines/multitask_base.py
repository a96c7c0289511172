# Copyright 2026 The polyhead authors. Licensed under the Apache License, Version 2.0.
"""What the multitask pipelines share: the tokenizer, inputs tokenized and padded into batches, and one encoder pass
through the requested heads.

A Hub file (run through `trust_remote_code=True`): it imports only torch, transformers and its flat siblings.
"""

import threading
from collections.abc import Iterator

import torch
from transformers import AutoTokenizer, Pipeline

from .multitask_inputs import check_positive_int, check_tokenizer, check_untruncated, position_limit


OUTPUT_KEY = "logits"  # `_forward` returns one tensor: every requested head's logits side by side
_RANKED_ROWS = 256  # rows of a list whose heads and ranking run together (bounded memory at hundreds of heads)


def check_dtype_applied(model, dtype) -> None:
    """Refuses a pipeline `dtype` that its model does not run in: transformers applies it when it loads the model by
    name, and silently not to a model object (nor to an ONNX graph, which runs in its exported precision)."""
    if dtype is None or dtype == "auto":
        return
    wanted = getattr(torch, dtype, None) if isinstance(dtype, str) else dtype
    actual = getattr(model, "dtype", None)
    if isinstance(wanted, torch.dtype) and actual is not None and actual != wanted:
        fix = (
            "an ONNX graph runs in its exported precision: serve onnx/model_quantized.onnx for int8, or the torch "
            "model for other dtypes"
            if getattr(model, "session", None) is not None
            else f"a model object keeps its own: convert it first (model.to({wanted})), or give its folder or Hub id"
        )
        raise ValueError(f"dtype={wanted} is not the model's: it runs in {actual}; {fix}.")


class MultitaskPipelineBase(Pipeline):
    """The base of [`MultitaskClassificationPipeline`] and [`ZeroShotMultitaskPipeline`] (not a pipeline itself)."""

    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = False
    _load_tokenizer = True

    def __init__(self, *args, **kwargs):
        wanted = kwargs.get("dtype", kwargs.get("torch_dtype"))  # transformers 5 / 4.x name it differently
        super().__init__(*args, **kwargs)
        check_dtype_applied(self.model, wanted)
        if self.tokenizer is None and self.model.config.name_or_path:
            # transformers < 4.54 loads no tokenizer for a custom config without `tokenizer_class`: use the model's
            # (its config names the class, see polyhead.saving.leave_tokenizer_class_to_config).
            config = self.model.config
            self.tokenizer = AutoTokenizer.from_pretrained(config.name_or_path, config=config)
        if self.tokenizer is None:
            raise ValueError(f"The {type(self).__name__} needs a tokenizer: pass tokenizer=...")
        encoder = getattr(self.model.config, "encoder", None)
        check_tokenizer(self.tokenizer, getattr(encoder, "vocab_size", None), self.model.config.name_or_path)
        # A fast tokenizer keeps its truncation settings in shared state: calls from several threads must not
        # interleave.
        self._tokenizer_lock = threading.Lock()
        # transformers 4.x advises against `tokenizer.pad` after encoding; here `pad` only forms each batch of rows
        # encoded together, which is faster (docs/design-hub-files.md).
        getattr(self.tokenizer, "deprecation_warnings", {})["Asking-to-pad-a-fast-tokenizer"] = True
        if self._batch_size is not None:
            check_positive_int("batch_size", self._batch_size)

    def get_inference_context(self):
        # inference_mode skips autograd bookkeeping that no_grad keeps; outputs only become Python floats.
        return torch.inference_mode

    def run_heads(self, model_inputs: dict, tasks: list[str], encode_only: bool = False) -> torch.Tensor:
        """One batch through the encoder and the `tasks`' heads: their logits side by side in one tensor (nested
        dicts break batch_size > 1), the heads as one matmul where the model offers it (`head_logits`);
        `encode_only`: the pooled output, for the caller to head."""
        if getattr(self.model, "task_embeddings", None) is not None:  # one pass per task, each with its vector
            encode = self.model.encode
            return torch.cat([self.model.head_logits(encode(**model_inputs, task=task), [task]) for task in tasks], -1)
        if hasattr(self.model, "head_logits") and hasattr(self.model, "encode"):
            pooled = self.model.encode(**model_inputs)
            return pooled if encode_only else self.model.head_logits(pooled, tasks)
        logits = self.model(**model_inputs, task=tasks).logits  # model code older than this pipeline
        return torch.cat([logits[task] for task in tasks], dim=-1)

    def _grouped_batches(
        self, items: list, batch_size: int, truncation: bool | str = True, max_length: int | None = None
    ) -> Iterator[tuple[int, list[dict[str, torch.Tensor]]]]:
        """`(index of its first item, its padded batches)` per group of about `_RANKED_ROWS` items (whole batches of
        `batch_size`), each group tokenized in one call."""
        group_size = batch_size * -(-_RANKED_ROWS // batch_size)
        for start in range(0, len(items), group_size):
            encoded = self._tokenize_rows(items[start : start + group_size], truncation, max_length)
            yield start, [self._collate(encoded[i : i + batch_size]) for i in range(0, len(encoded), batch_size)]

    def _tokenize_rows(
        self, items: list, truncation: bool | str = True, max_length: int | None = None
    ) -> list[dict[str, list[int]]]:
        """Each item's token ids (and masks), unpadded, in input order: the texts in one tokenizer call, the
        `{"text", "text_pair"}` pairs in another (`truncation=True` is "longest_first", which keeps both texts; a
        tokenizer strategy such as "only_first" is passed on)."""
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
                    check_untruncated(encoded["input_ids"], position_limit(self.model.config.encoder))
                for j, i in enumerate(positions):
                    rows[i] = {key: values[j] for key, values in encoded.items()}
        return rows

    def _collate(self, rows: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        """One batch of tensors from unpadded rows (padded to the longest, as the tokenizer pads)."""
        if len(rows) == 1:
            return {key: torch.tensor([values]) for key, values in rows[0].items()}
        with self._tokenizer_lock:
            return self.tokenizer.pad(rows, return_tensors="pt")

    def _default_max_length(self) -> int | None:
        # The tokenizer's model_max_length (the trained length, polyhead saves it there), capped by the encoder's
        # positions (a tokenizer without one reports ~1e30): polyhead.encoders.default_max_length's rule.
        limit = position_limit(self.model.config.encoder)
        return self.tokenizer.model_max_length if limit is None else min(self.tokenizer.model_max_length, limit)


__all__ = ["OUTPUT_KEY", "MultitaskPipelineBase"]
