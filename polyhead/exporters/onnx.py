"""Exporting a saved multitask model to ONNX: one graph for every task, checked against torch before it is kept.

[`export_onnx`] writes `MODEL_DIR/onnx/model.onnx` (the transformers.js layout): inputs named as the tokenizer gives
them (`input_ids`, `attention_mask`, `token_type_ids` where the encoder takes them) with dynamic batch and sequence
axes, and one output `logits.<task>` per task of `config.tasks`, in order. `int8=True` adds
`onnx/model_quantized.onnx` (onnxruntime dynamic quantization: int8 weights per output channel, activations quantized
on the fly).

Two exporters, chosen per encoder family (`exporter="auto"`):
- `"torchscript"` (BERT, RoBERTa, XLM-R, ELECTRA, DistilBERT): eager attention, and the additive 4D attention mask
  built in the wrapper below, spelled as transformers 4.x built it. Those families pass a ready 4D mask through
  untouched, so transformers 5's mask code (which this tracer would freeze to the sample's shape) is never traced,
  and onnxruntime recognises the graph's GELU, LayerNorm and attention patterns (measurements: docs/design.md).
- `"dynamo"` (every other family, e.g. DeBERTa-v2 whose 4D masks mean something else): torch's dynamo exporter
  (`torch.onnx.export(..., dynamo=True)`, which needs `onnxscript`) on the model as it is.
Each exporter takes the opsets of [`supported_opsets`] (default: 17 for TorchScript, 18 for dynamo); an opset
outside them, or a graph written at another opset than asked, is refused before anything is kept. Either way, files
are written to a temporary folder and moved into place only after the fp32 logits match torch within `atol` on
every task. Entry point: `scripts/export_onnx.py`. Requires the `onnx` extra:
`pip install 'polyhead[onnx]'`.
"""

import contextlib
import dataclasses
import logging
import math
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from polyhead.remote_code import MultitaskModel
from polyhead.run_folder import check_model_source
from polyhead.serving.onnx_multitask import (
    ONNX_FILE,
    QUANTIZED_FILE,
    OnnxMultitaskModel,
    graph_outputs,
    onnx_unsupported,
)


logger = logging.getLogger(__name__)

DEFAULT_ATOL = 1e-4
EXPORTERS = ("auto", "torchscript", "dynamo")
# Each exporter's default opset: 17 for TorchScript (torch 2.2's newest there, and the graph whose onnxruntime fusions
# docs/design.md measured), 18 for dynamo (the opset torch's dynamo exporter builds, so no conversion).
DEFAULT_OPSETS = {"torchscript": 17, "dynamo": 18}
# Families whose encoder takes a ready additive 4D attention mask as it is (transformers 5's
# `create_bidirectional_mask` returns a 4D mask untouched) and whose eager attention adds it to the scores.
ADDITIVE_MASK_FAMILIES = ("bert", "roberta", "xlm-roberta", "electra", "distilbert")
# Varied lengths, so the parity batch is padded (attention masks matter) and a batch of one is checked too.
PARITY_TEXTS = (
    "What a great match: the team played so well today!",
    "bad",
    "The central bank raised interest rates again as inflation hit its highest level in a decade, markets fell.",
    "i love this phone but the battery is terrible",
    "Who wrote the book?",
)


@dataclasses.dataclass
class OnnxExportResult:
    """What [`export_onnx`] wrote.

    Args:
        files (`list[Path]`): the graphs written (fp32 first, then int8 if asked).
        input_names (`list[str]`): the graph inputs.
        output_names (`list[str]`): the graph outputs, `logits.<task>` in `config.tasks` order.
        max_abs_diff (`dict[str, float]`): per task, the largest |onnx - torch| fp32 logit on the parity texts.
        int8_max_abs_diff (`dict[str, float]`, *optional*): the same for the int8 graph (reported, not checked:
            quantization moves logits; score int8 accuracy on real data instead).
        exporter (`str`): `"torchscript"` or `"dynamo"`, the exporter that wrote the graph.
        opset (`int`, *optional*): the graph's ONNX opset.
        removed (`list[Path]`): an older `model_quantized.onnx` deleted because the fp32 graph it was made from was
            replaced without `int8` (it would no longer match).
    """

    files: list[Path]
    input_names: list[str]
    output_names: list[str]
    max_abs_diff: dict[str, float]
    int8_max_abs_diff: dict[str, float] | None = None
    exporter: str = "dynamo"
    opset: int | None = None
    removed: list[Path] = dataclasses.field(default_factory=list)


class ParityError(RuntimeError):
    """The ONNX graph's logits disagree with torch beyond the tolerance; nothing was written."""


class ExporterError(RuntimeError):
    """torch's ONNX exporter failed on the model (its error is the `__cause__`); nothing was written."""


def export_onnx(
    model_dir: str | os.PathLike,
    *,
    int8: bool = False,
    overwrite: bool = False,
    texts: list[str] | None = None,
    atol: float = DEFAULT_ATOL,
    opset: int | None = None,
    exporter: str = "auto",
) -> OnnxExportResult:
    r"""
    Exports the multitask model saved in `model_dir` to `model_dir/onnx/model.onnx` (and `model_quantized.onnx`).

    Args:
        model_dir: a folder written by `polyhead.saving.save_model_folder` (weights, config, tokenizer).
        int8: also write the dynamically quantized int8 graph.
        overwrite: replace existing graphs (otherwise an existing file is a `FileExistsError`). Without `int8`, an
            existing `model_quantized.onnx` is removed: it was made from the fp32 graph being replaced.
        texts: the parity texts (default `PARITY_TEXTS`); run as one padded batch and one text alone.
        atol: the largest allowed |onnx - torch| fp32 logit, per task (a finite number >= 0).
        opset: the ONNX opset, within [`supported_opsets`] of the exporter (default: `DEFAULT_OPSETS`).
        exporter: `"auto"` (`"torchscript"` for the families in `ADDITIVE_MASK_FAMILIES`, else `"dynamo"`),
            `"torchscript"` or `"dynamo"`; see the module docstring.

    The graph is fp32: a folder saved in bfloat16 or float16 is loaded in float32 to export it (and the parity check
    compares with that float32 model). A refused or failed export writes nothing (no empty `onnx/` folder either).

    Raises:
        `ImportError` without onnx/onnxruntime/onnxscript, `FileExistsError`, `ValueError` (an unknown exporter,
        `"torchscript"` for a family outside `ADDITIVE_MASK_FAMILIES`, an opset the exporter does not write, a graph
        written at another opset, a negative or non-finite atol), [`ParityError`], [`ExporterError`] (torch's
        exporter failed on the model).

    Example:

    ```python
    >>> result = export_onnx("outputs/model", int8=True)
    >>> [path.name for path in result.files], max(result.max_abs_diff.values()) <= 1e-4
    (['model.onnx', 'model_quantized.onnx'], True)
    ```
    """
    check_onnx_installed(quantization=int8)
    if exporter not in EXPORTERS:
        raise ValueError(f"exporter={exporter!r}: expected one of {EXPORTERS}.")
    check_atol(atol)
    if exporter != "auto":  # known now: checked before the model loads ("auto" is, once it has chosen)
        check_opset(opset, exporter)
    check_model_source(model_dir, hub_ids=False)  # the graph is written into the folder
    model_dir = Path(model_dir)
    targets = [model_dir / ONNX_FILE] + ([model_dir / QUANTIZED_FILE] if int8 else [])
    # An int8 graph this export does not rewrite was quantized from the fp32 graph being replaced: it must go too.
    stale = [] if int8 or not (model_dir / QUANTIZED_FILE).exists() else [model_dir / QUANTIZED_FILE]
    existing = [str(path) for path in targets + stale if path.exists()]
    if existing and not overwrite:
        also = f"; without --int8, {QUANTIZED_FILE} is then removed as it would no longer match" if stale else ""
        raise FileExistsError(f"{existing} already exist(s): pass --overwrite (overwrite=True) to replace{also}.")
    # The graph is fp32 whatever the folder's dtype: a bfloat16/float16 folder exports its float32-upcast model.
    model = MultitaskModel.from_pretrained(model_dir, dtype=torch.float32).eval()
    unsupported = onnx_unsupported(model.config)
    if unsupported:
        raise ValueError(f"{model_dir}: {unsupported}.")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    exporter = choose_exporter(model, exporter)
    opset = check_opset(opset, exporter)
    texts = list(texts or PARITY_TEXTS)
    onnx_dir = targets[0].parent
    with _made_for_this_export(onnx_dir), tempfile.TemporaryDirectory(prefix=".export-", dir=onnx_dir) as tmp:
        staged = [Path(tmp) / path.name for path in targets]
        try:
            input_names = export_graph(model, tokenizer, staged[0], opset, exporter)
        except RuntimeError as error:  # torch.onnx's errors among them; the original stays the __cause__
            raise ExporterError(_exporter_failure(model, exporter, error)) from error
        check_graph_opset(staged[0], opset, exporter)
        diff = logit_differences(model, tokenizer, staged[0], texts)
        worst = {task: value for task, value in diff.items() if not value <= atol}
        if worst:
            raise ParityError(
                f"ONNX logits differ from torch by {worst} (> atol={atol}) on tasks {sorted(worst)}: nothing was "
                f"written. The {exporter} exporter traced this encoder wrongly: try the other one (--exporter "
                f"{'dynamo' if exporter == 'torchscript' else 'torchscript'}), or raise atol."
            )
        int8_diff = None
        if int8:
            quantize_int8(staged[0], staged[1])
            int8_diff = logit_differences(model, tokenizer, staged[1], texts)
        for path in stale:  # first: a crash in between leaves the old fp32 graph alone, never a mismatched pair
            path.unlink()
            logger.info("Removed %s: quantized from the replaced fp32 graph (--int8 writes a new one).", path)
        for source, target in zip(staged, targets):
            os.replace(source, target)
    outputs = graph_outputs(model.config.task_names)
    return OnnxExportResult(targets, input_names, outputs, diff, int8_diff, exporter, opset, stale)


@contextlib.contextmanager
def _made_for_this_export(folder: Path):
    # `folder`, created if missing (the staging folder lies inside it, for `os.replace`), and removed again when the
    # export fails while it is still empty: a refused export leaves nothing behind.
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    try:
        yield folder
    except BaseException:
        if created:
            with contextlib.suppress(OSError):  # not empty: something else was written there meanwhile
                folder.rmdir()
        raise


def _exporter_failure(model: MultitaskModel, exporter: str, error: BaseException) -> str:
    """One line naming the model, the exporter that failed on it and its error's first line, and what to try."""
    family = model.config.encoder.model_type
    reason = next((line.strip() for line in str(error).splitlines() if line.strip()), "")
    other = "dynamo" if exporter == "torchscript" else "torchscript" if family in ADDITIVE_MASK_FAMILIES else None
    fix = f"Try the other exporter: --exporter {other}." if other else f"{family} encoders export with dynamo only."
    return (
        f"The {exporter} exporter failed on the {family} model {model.name_or_path} ({type(error).__name__}: "
        f"{reason}): nothing was written. {fix}"
    )


def check_onnx_installed(quantization: bool = False) -> None:
    """Raises an `ImportError` naming the fix when onnx, onnxscript or onnxruntime is missing."""
    missing = []
    for name in ("onnx", "onnxscript", "onnxruntime"):
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise ImportError(
            f"ONNX export needs {', '.join(missing)}: pip install 'polyhead[onnx]' (or pip install onnx onnxscript "
            "onnxruntime)."
        )


def supported_opsets(exporter: str) -> range:
    """The ONNX opsets `exporter` (`"torchscript"` or `"dynamo"`) writes with this torch and onnxscript.

    TorchScript: from 11 (below, it has no `cumsum` for RoBERTa's position ids, nor `expand`/`masked_fill`/dynamic
    `Slice` for the attention mask) to torch's newest for that exporter (20 in torch 2.13; older torch states less).
    Dynamo: it builds opset 18 and converts the graph; down to 17 works (onnx's converter), lower silently stays 18,
    and above onnxscript's newest (25 in onnxscript 0.7) the conversion fails and onnxruntime rejects the graph.
    Measured with torch 2.13, onnxscript 0.7 and onnxruntime 1.32 on every family of tests/test_onnx.py."""
    if exporter == "torchscript":
        return range(11, _library_bound("torch.onnx._constants", "ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET", 17) + 1)
    if exporter == "dynamo":
        newest = "onnxscript.version_converter._version_converter"
        return range(17, _library_bound(newest, "SUPPORTED_MAX_ONNX_OPSET", 25) + 1)
    raise ValueError(f"exporter={exporter!r}: expected 'torchscript' or 'dynamo'.")


def _library_bound(module: str, name: str, default: int) -> int:
    # A library's own (private) constant where this version has it; `default` is what the measured versions state.
    try:
        value = getattr(__import__(module, fromlist=[name]), name, default)
    except ImportError:
        return default
    return value if isinstance(value, int) else default


def check_opset(opset: int | None, exporter: str) -> int:
    """The opset to export at: `opset`, or `exporter`'s default for `None`; a `ValueError` outside
    [`supported_opsets`]."""
    if opset is None:
        return DEFAULT_OPSETS[exporter]
    supported = supported_opsets(exporter)
    if isinstance(opset, bool) or not isinstance(opset, int) or opset not in supported:
        raise ValueError(
            f"opset={opset!r}: the {exporter} exporter writes opsets {supported.start} to {supported.stop - 1} here: "
            f"pass --opset in that range (or leave it out for {DEFAULT_OPSETS[exporter]})."
        )
    return opset


def check_atol(atol: float) -> None:
    """Raises a `ValueError` unless `atol` is a finite number >= 0 (a negative or NaN one fails every parity check,
    an infinite one passes any)."""
    if isinstance(atol, bool) or not isinstance(atol, (int, float)) or not math.isfinite(atol) or atol < 0:
        raise ValueError(
            f"atol must be a finite number >= 0 (the largest allowed |onnx - torch| fp32 logit, default "
            f"{DEFAULT_ATOL}), got {atol!r}."
        )


def check_graph_opset(path: Path, opset: int, exporter: str) -> None:
    """Raises a `ValueError` when the graph at `path` is not at `opset` (the dynamo exporter keeps opset 18 where it
    cannot convert the graph, with only a log line)."""
    import onnx

    imports = {entry.domain: entry.version for entry in onnx.load(str(path), load_external_data=False).opset_import}
    written = imports.get("", imports.get("ai.onnx"))
    if written != opset:
        raise ValueError(
            f"The {exporter} exporter wrote opset {written}, not the {opset} asked for (it could not convert this "
            f"model's graph): nothing was written. Leave --opset out ({DEFAULT_OPSETS[exporter]}) or try another."
        )


def choose_exporter(model: MultitaskModel, exporter: str = "auto") -> str:
    """`"torchscript"` or `"dynamo"` for `model`'s encoder family (see the module docstring)."""
    family = model.config.encoder.model_type
    if exporter == "auto":
        return "torchscript" if family in ADDITIVE_MASK_FAMILIES else "dynamo"
    if exporter == "torchscript" and family not in ADDITIVE_MASK_FAMILIES:
        raise ValueError(
            f"exporter='torchscript' builds an additive attention mask, which {family} encoders do not take; use "
            f"'dynamo' (or 'auto'). Families it supports: {', '.join(ADDITIVE_MASK_FAMILIES)}."
        )
    return exporter


class _AllTasks(torch.nn.Module):
    """The multitask model as a graph: tokenizer tensors in, one logits tensor per task out (config order).

    With `additive_mask`, the encoder gets the 4D mask of [`additive_attention_mask`] and pooling the 2D one."""

    def __init__(self, model: MultitaskModel, additive_mask: bool = False):
        super().__init__()
        self.model = model
        self.additive_mask = additive_mask
        self.tasks = model.config.task_names
        self.sizes = [len(model.config.tasks[task]["labels"]) for task in self.tasks]

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        inputs = {"input_ids": input_ids, "token_type_ids": token_type_ids}
        if not self.additive_mask:
            logits = self.model(**inputs, attention_mask=attention_mask).logits
            return tuple(logits[task] for task in self.tasks)
        encoder_inputs = {name: value for name, value in inputs.items() if value is not None}
        hidden_states = self.model.encoder(**encoder_inputs, attention_mask=additive_attention_mask(attention_mask))[0]
        logits = self.model.head_logits(self.model.pool(hidden_states, attention_mask), self.tasks)
        return tuple(torch.split(logits, self.sizes, dim=-1))


class _Positional(torch.nn.Module):
    """The TorchScript exporter passes inputs by position: here in the tokenizer's order, `names`."""

    def __init__(self, module: torch.nn.Module, names: list[str]):
        super().__init__()
        self.module = module
        self.names = names

    def forward(self, *args):
        return self.module(**dict(zip(self.names, args)))


def additive_attention_mask(attention_mask: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """`(batch, 1, length, length)`: 0 where a token may be attended to, the dtype's minimum at padding.

    transformers 4.x's `_prepare_4d_attention_mask`, op for op (unsqueeze, expand, cast, 1 - mask, masked_fill):
    the pattern onnxruntime's BERT attention fusion matches (`onnxruntime.transformers.optimizer`)."""
    batch, length = attention_mask.shape
    expanded = attention_mask.unsqueeze(1).unsqueeze(2).expand(batch, 1, length, length).to(dtype)
    inverted = 1.0 - expanded
    return inverted.masked_fill(inverted.to(torch.bool), torch.finfo(dtype).min)


def graph_input_names(model: MultitaskModel, tokenizer: PreTrainedTokenizerBase) -> list[str]:
    """The tokenizer's inputs that the model uses (`attention_mask` always: mean pooling reads it)."""
    used = set(model._encoder_inputs) | {"attention_mask"}
    names = [name for name in tokenizer.model_input_names if name in used]
    if "input_ids" not in names:
        raise ValueError(f"The tokenizer gives {tokenizer.model_input_names}, without input_ids: cannot export.")
    return names


def export_graph(
    model: MultitaskModel,
    tokenizer: PreTrainedTokenizerBase,
    path: Path,
    opset: int = DEFAULT_OPSETS["dynamo"],
    exporter: str = "dynamo",
) -> list[str]:
    """Writes the fp32 graph to `path` (one file, no external data) with `exporter`; returns its input names."""
    names = graph_input_names(model, tokenizer)
    outputs = graph_outputs(model.config.task_names)
    # Two texts of different lengths: batch 2 and a padded sequence, so neither axis is specialised to 1.
    sample = tokenizer(list(PARITY_TEXTS[:2]), padding=True, truncation=True, return_tensors="pt")
    sample = {name: sample[name] for name in names}
    with warnings.catch_warnings(), _quiet_exporter():
        # The exporters' notes on axis names and their own deprecations (LeafSpec, the TorchScript exporter's).
        for category in (UserWarning, FutureWarning, DeprecationWarning):
            warnings.simplefilter("ignore", category)
        if exporter == "torchscript":
            _export_torchscript(model, sample, path, names, outputs, opset)
        else:
            batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
            torch.onnx.export(
                _AllTasks(model).eval(),
                (),
                str(path),
                kwargs=sample,
                input_names=names,
                output_names=outputs,
                dynamic_shapes={name: {0: batch, 1: sequence} for name in names},
                opset_version=opset,
                dynamo=True,
                external_data=False,
                verbose=False,
            )
    return names


def _export_torchscript(model, sample: dict, path: Path, names: list[str], outputs: list[str], opset: int) -> None:
    # Eager attention (scores + mask, softmax, matmul) while tracing; the model's own setting comes back after.
    implementation = model.encoder.config._attn_implementation
    model.encoder.set_attn_implementation("eager")
    try:
        with torch.no_grad():
            torch.onnx.export(
                # eval(): the exporter puts the module back in its mode afterwards, recursively, model included.
                _Positional(_AllTasks(model, additive_mask=True), names).eval(),
                tuple(sample[name] for name in names),
                str(path),
                input_names=names,
                output_names=outputs,
                dynamic_axes={name: {0: "batch", 1: "sequence"} for name in names}
                | {name: {0: "batch"} for name in outputs},
                opset_version=opset,
                dynamo=False,
            )
    finally:
        model.encoder.set_attn_implementation(implementation)


def quantize_int8(source: Path, target: Path) -> None:
    """onnxruntime dynamic quantization: int8 weights for MatMul/Gemm, one scale per output channel, activations
    quantized at run time.

    Per channel because one scale per weight matrix loses accuracy that per channel keeps (docs/design.md)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level, root.level = root.level, logging.ERROR  # its advice to pre-process first is for static quantization
    try:
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, per_channel=True)
    finally:
        root.setLevel(level)


def logit_differences(
    model: MultitaskModel, tokenizer: PreTrainedTokenizerBase, graph: Path, texts: list[str]
) -> dict[str, float]:
    """Per task, the largest |onnx - torch| logit over `texts` as one padded batch and the first text alone."""
    onnx_model = OnnxMultitaskModel.from_pretrained(graph.parent, graph.name, config=model.config)
    diff = dict.fromkeys(model.config.task_names, 0.0)
    for batch in (texts, texts[:1]):
        inputs = tokenizer(batch, padding=True, truncation=True, return_tensors="pt")
        with torch.inference_mode():
            expected = model(**inputs).logits
        found = onnx_model(**inputs).logits
        for task in diff:
            gap = float(np.abs(found[task].numpy() - expected[task].float().numpy()).max())
            diff[task] = max(diff[task], gap)
    return diff


class _quiet_exporter:
    """Silences torch.onnx's progress notes (`torchvision is not installed. Skipping...`); errors still show."""

    def __enter__(self):
        self._level = logging.getLogger("torch.onnx").level
        logging.getLogger("torch.onnx").setLevel(logging.ERROR)

    def __exit__(self, *exc):
        logging.getLogger("torch.onnx").setLevel(self._level)


__all__ = [
    "ADDITIVE_MASK_FAMILIES",
    "DEFAULT_ATOL",
    "DEFAULT_OPSETS",
    "EXPORTERS",
    "ExporterError",
    "OnnxExportResult",
    "ParityError",
    "additive_attention_mask",
    "check_atol",
    "check_onnx_installed",
    "check_opset",
    "export_onnx",
    "supported_opsets",
]
