"""The compiled serving path: the multitask model's encoder under `torch.compile` (inductor, frozen weights), in
bfloat16 where the CPU multiplies bfloat16 faster than float32 (AMX, or AMD's AVX512-BF16), float32 elsewhere.

[`compile_model`] replaces the model's `encode` (what the `multitask-classification` pipeline, bulk prediction and the
handler call) by a [`BucketedEncoder`]: each batch is padded to a bucket of `BATCH_BUCKETS` x `SEQUENCE_BUCKETS`
(padding tokens masked out, padded rows dropped from the answer), so a server compiles one graph per bucket it meets
(lazily, the first time) instead of one per new length; the batch-1 buckets take other inductor settings
(`small_batch_options`: by default `options` plus `SMALL_BATCH_EXTRA`, cpp_wrapper; or e.g. `AUTOTUNE_OPTIONS`).
Everything that cannot run compiled falls back to the eager model with ONE warning, never an error at a request:
no C++ compiler, a torch without `torch.compile` for this Python, a failure while compiling (the first call of a
bucket), gradients on or the model in training mode, inputs other than ids/masks. The Hub files do not use this
module: the compiled path is library-only (`polyhead` must be installed). Measured buckets, warm-up cost, speed and
the per-call overhead at batch 1 (lean guards): docs/cpu-acceleration.md.
"""

import itertools
import os
import platform
import shutil
import types
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch


# Batch sizes are padded up to the next bucket (larger batches run in chunks of the largest); lengths likewise (a
# length beyond the last bucket is padded to a multiple of it): every 16 tokens up to 128, where most texts are, so
# padding costs at most 15 tokens there. 7 x 10 = 70 graphs at most; a server meets a few.
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)
SEQUENCE_BUCKETS = (16, 32, 48, 64, 80, 96, 112, 128, 256, 512)
# Inductor settings for inference, also held as inductor's config while dynamo traces (see `_call_compiled`): weights
# frozen as constants, so inductor folds them and prepacks the linear layers (oneDNN bf16/AMX, MKL fp32); measured in
# docs/cpu-acceleration.md. `compile_model(options=...)` replaces them.
INDUCTOR_OPTIONS = {"freezing": True}
# What the batch-1 buckets add to `options` by default: the graph's kernels called from generated C++ instead of a
# Python wrapper, whose per-call cost weighs on a one-text call (docs/cpu-acceleration.md: 1.08x-1.25x at batch 1).
SMALL_BATCH_EXTRA = {"cpp_wrapper": True}
# Freezing plus max-autotune's CPU GEMM templates (inductor times its C++ AMX GEMMs against oneDNN's per shape): ~2.9x
# eager bf16 at batch 1 but slower than freezing alone at batch 32, so offered for small batches only (opt-in).
AUTOTUNE_OPTIONS = {**INDUCTOR_OPTIONS, "max_autotune": True, "max_autotune_gemm_backends": "CPP,ATEN"}
# The largest batch bucket that takes `small_batch_options`: cpp_wrapper and the templates were measured at batch 1.
SMALL_BATCH_MAX = 1
# torch's guard filter for `lean_guards`: at each call dynamo checks the guards on tensors (inputs and weights: dtype,
# device, shape) and on global state (grad mode, autocast), not the ~700 on the model's Python attributes.
LEAN_GUARD_FILTER = "keep_portable_guards_unsafe"
MIN_TORCH = (2, 4)  # inductor's CPU backend with freezing and bfloat16 matmuls through oneDNN
BF16_FLAGS = ("amx_bf16", "avx512_bf16")
DTYPES = ("auto", "float32", "bfloat16")
ENCODE_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_own_code_ids = itertools.count()  # names of the encoders' own code objects (lean guards)


def native_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 matrices natively (AMX tiles or AVX512-BF16), from torch's own checks,
    else `/proc/cpuinfo`'s flags."""
    checks = [getattr(torch.cpu, name, None) for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported")]
    if all(callable(check) for check in checks):
        return any(check() for check in checks)
    return any(flag in _cpuinfo("flags").split() for flag in BF16_FLAGS)


def _cpuinfo(field: str) -> str:
    """The first `field` line of `/proc/cpuinfo` (`""` where there is none: not Linux)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            return next((line.split(":", 1)[1].strip() for line in handle if line.split(":")[0].strip() == field), "")
    except OSError:
        return ""


def cpu_vendor() -> str:
    """The CPU's vendor id (`GenuineIntel`, `AuthenticAMD`, ...) from `/proc/cpuinfo`, else from `platform` (Windows
    names it there), or `""` when neither says."""
    vendor = _cpuinfo("vendor_id")
    if vendor:  # Linux: no need to ask `platform`, which may run `uname -p`
        return vendor
    words = platform.processor().replace(",", " ").split()
    return next((word for word in words if word in ("GenuineIntel", "AuthenticAMD")), "")


def faster_bf16() -> bool:
    """Whether bfloat16 matmuls run faster than float32 on this CPU: with AMX tiles, or AMD's AVX512-BF16 (Zen 4 on:
    2.0x float32's rate measured). Intel's AVX512-BF16 without AMX (Cooper Lake, or a VM that hides AMX) runs them at
    half float32's rate (docs/cpu-acceleration.md), so it is not counted."""
    if not native_bf16():
        return False
    amx = getattr(torch.cpu, "_is_amx_tile_supported", None)
    if amx() if callable(amx) else "amx_bf16" in _cpuinfo("flags").split():
        return True
    return cpu_vendor() == "AuthenticAMD"


def resolve_dtype(dtype: str | None) -> str:
    """`"bfloat16"` or `"float32"`: `None`/`"auto"` picks bfloat16 where it is faster than float32 (see
    [`faster_bf16`]), else float32; `"bfloat16"` on a CPU without native bfloat16 warns and gives float32 (it would
    run several times slower there), on one where it is slower than float32 it warns and keeps bfloat16."""
    if dtype not in (None, *DTYPES):
        raise ValueError(f"dtype must be one of {list(DTYPES)}, got {dtype!r}.")
    if dtype in (None, "auto"):
        return "bfloat16" if faster_bf16() else "float32"
    if dtype == "bfloat16" and not native_bf16():
        warnings.warn(
            "bfloat16 was asked for, but this CPU has no native bfloat16 matrix instructions (neither amx_bf16 nor "
            "avx512_bf16 in /proc/cpuinfo), where it runs slower than float32: serving float32.",
            stacklevel=2,
        )
        return "float32"
    if dtype == "bfloat16" and not faster_bf16():
        warnings.warn(
            "bfloat16 was asked for: this CPU multiplies bfloat16 with AVX512-BF16 but without AMX tiles, at about "
            'half the float32 rate (docs/cpu-acceleration.md). Serving bfloat16; dtype="auto" would serve float32.',
            stacklevel=2,
        )
    return dtype


def compile_unavailable() -> str | None:
    """Why `torch.compile` cannot run here (a sentence naming the fix), or None when it can."""
    version = tuple(int(part) for part in torch.__version__.split("+")[0].split(".")[:2] if part.isdigit())
    if version < MIN_TORCH:
        return f"torch {torch.__version__} is older than {'.'.join(map(str, MIN_TORCH))}: upgrade torch"
    try:
        from torch import _dynamo

        if not _dynamo.is_dynamo_supported():
            return "torch.compile does not support this Python version: use a Python torch supports"
    except Exception as error:  # a broken or stripped torch build
        return f"torch.compile cannot be imported ({type(error).__name__}: {error})"
    compiler = os.environ.get("CXX") or next((c for c in ("g++", "c++", "clang++") if shutil.which(c)), None)
    if compiler is None or not shutil.which(compiler.split()[0]):
        return "no C++ compiler was found (inductor builds its CPU kernels with one): install g++ or set CXX"
    return None


def bucket(size: int, buckets: Sequence[int]) -> int:
    """The smallest bucket holding `size`; beyond the last, the next multiple of the last."""
    for limit in buckets:
        if size <= limit:
            return limit
    return -(-size // buckets[-1]) * buckets[-1]


def check_options(
    backend: Any,
    options: dict | None,
    small_batch_options: dict | None = None,
    small_batch_max: int = SMALL_BATCH_MAX,
    batch_buckets: Sequence[int] = BATCH_BUCKETS,
) -> None:
    """Raises a clear error for option sets `torch.compile` or inductor would reject later (at the first request) or
    silently ignore: not a dict, an unknown inductor setting, options for a backend other than inductor, a
    `small_batch_max` that is not one of the batch buckets."""
    for name, value in (("options", options), ("small_batch_options", small_batch_options)):
        if value is None:
            continue
        if not isinstance(value, dict):
            raise TypeError(
                f"{name} must be a dict of inductor settings (e.g. polyhead.serving.compiled.AUTOTUNE_OPTIONS) or "
                f"None, got {type(value).__name__}: {value!r:.80}."
            )
        if backend != "inductor":
            raise ValueError(f"{name} are inductor settings, but backend={backend!r}: leave {name} out.")
        try:
            from torch._inductor import config as inductor_config

            known = inductor_config.get_config_copy()
        except Exception:  # a torch without inductor: compile_model warns and stays eager anyway
            continue
        unknown = sorted(key for key in value if key not in known)
        if unknown:
            raise ValueError(
                f"{name} has settings that torch {torch.__version__}'s inductor does not know: {unknown} (names as "
                "in torch._inductor.config, e.g. 'freezing', 'max_autotune', 'cpp.weight_prepack')."
            )
    if small_batch_options is not None and small_batch_max not in tuple(batch_buckets):
        raise ValueError(
            f"small_batch_max={small_batch_max!r} is not one of the batch buckets {tuple(batch_buckets)}: give the "
            "largest batch bucket that should take small_batch_options."
        )


class BucketedEncoder:
    """The model's `encode`, compiled once per (batch, length) bucket: inputs padded up to the bucket, the pooled
    rows of the real inputs returned. Falls back to the eager `encode` (one warning) when compiling fails.

    `options` are the inductor settings of every bucket (default `INDUCTOR_OPTIONS`); the batch buckets up to
    `small_batch_max` compile with `small_batch_options` instead, through their own `torch.compile` object: by
    default (None) `options` plus `SMALL_BATCH_EXTRA` (cpp_wrapper), or e.g. `AUTOTUNE_OPTIONS`; pass `options`
    again for one setting everywhere. Custom backends take no options. `compiled_buckets` lists the buckets run
    compiled so far (each compiled once); `fallback` says why the eager path is used, or is empty.

    `lean_guards` (default True, where torch has the filter): the compiled graphs keep only dynamo's guards on
    tensors (the inputs, the weights' dtype, device and shape) and on global state (grad mode, autocast), which
    cuts its per-call check at batch 1 (docs/cpu-acceleration.md). The price: changes to the model's Python
    attributes after a bucket has compiled (a hook added, a config flag switched) are not seen by that bucket's
    graph; a model in training mode runs eagerly. `lean_guards=False` keeps every guard."""

    def __init__(
        self,
        encode: Callable[..., torch.Tensor],
        pad_token_id: int = 0,
        batch_buckets: Sequence[int] = BATCH_BUCKETS,
        sequence_buckets: Sequence[int] = SEQUENCE_BUCKETS,
        backend: Any = "inductor",
        options: dict | None = None,
        small_batch_options: dict | None = None,
        small_batch_max: int = SMALL_BATCH_MAX,
        lean_guards: bool = True,
    ):
        check_options(backend, options, small_batch_options, small_batch_max, batch_buckets)
        self.encode = encode
        # the module whose `training` flag sends a call to the eager path, and one of its weights, whose dtype and
        # device are checked here (lean guards do not see the frozen weights)
        self._module = encode.__self__ if isinstance(getattr(encode, "__self__", None), torch.nn.Module) else None
        self._weight = next(self._module.parameters(), None) if self._module is not None else None
        self._guard_filter = getattr(torch.compiler, LEAN_GUARD_FILTER, None) if lean_guards else None
        self.lean_guards = self._guard_filter is not None
        self._backend = backend
        self.pad_token_id = pad_token_id
        self.batch_buckets, self.sequence_buckets = tuple(batch_buckets), tuple(sequence_buckets)
        self.compiled_buckets: set[tuple[int, int]] = set()
        self.fallback = ""
        inductor = backend == "inductor"
        self.options = dict(INDUCTOR_OPTIONS if options is None else options) if inductor else None
        if small_batch_options is None and inductor:
            small_batch_options = {**self.options, **SMALL_BATCH_EXTRA}
        self.small_batch_options = None if small_batch_options is None else dict(small_batch_options)
        self.small_batch_max = small_batch_max
        self._inductor_config = None
        if inductor:
            from torch._inductor import config as inductor_config

            self._inductor_config = inductor_config
        _raise_recompile_limit(len(self.batch_buckets) * len(self.sequence_buckets))
        self._compile()

    def _compile(self) -> None:
        """New `torch.compile` objects (no graph yet): dynamic=False, one static graph per bucket (a dynamic-shape
        graph still recompiled per length, ran slower); one object per distinct option set, dynamo keeps each one's
        graphs apart (its backend). With lean guards, on a code object of this encoder's own: dynamo keeps graphs
        per code object, and the input guards alone would hand one model's graph (its frozen weights) to another."""
        run = type(self)._run.__get__(self)
        if self.lean_guards:
            code = run.__code__.replace(co_name=f"_run_{next(_own_code_ids)}")
            run = types.FunctionType(code, run.__globals__).__get__(self)
        self._weight_key = None if self._weight is None else (self._weight.dtype, self._weight.device)
        self.compiled_buckets.clear()

        def compile_with(settings: dict | None) -> Callable[..., torch.Tensor]:
            # torch.compile takes the guard filter among the options, and pops it from the dict: a copy
            settings = {**(settings or {}), **({"guard_filter_fn": self._guard_filter} if self.lean_guards else {})}
            return torch.compile(run, backend=self._backend, options=settings or None, dynamic=False)

        self.compiled = compile_with(self.options)
        self.compiled_small = self.compiled
        if self.small_batch_options not in (None, self.options):
            self.compiled_small = compile_with(self.small_batch_options)

    def _small(self, batch_bucket: int) -> bool:
        return self.small_batch_options is not None and batch_bucket <= self.small_batch_max

    def options_for(self, batch_bucket: int) -> dict | None:
        """The inductor settings the buckets of `batch_bucket` rows compile with (None: a custom backend's)."""
        return self.small_batch_options if self._small(batch_bucket) else self.options

    def _call_compiled(self, *inputs: torch.Tensor | None) -> torch.Tensor:
        """The compiled function of the inputs' batch bucket (see [`options_for`]) on them, with its inductor options
        also set as inductor's global config: dynamo reads `freezing` while it traces, before the backend's own
        options apply, and without it hands the weights over as graph inputs that freezing cannot fold, so no linear
        layer is prepacked (docs/cpu-acceleration.md)."""
        rows = inputs[0].shape[0]
        options, compiled = self.options_for(rows), self.compiled_small if self._small(rows) else self.compiled
        if not options:
            return compiled(*inputs)
        with self._inductor_config.patch(options):
            return compiled(*inputs)

    def _run(self, input_ids, attention_mask, token_type_ids=None):
        return self.encode(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)

    def __call__(
        self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, inputs_embeds=None, **kwargs
    ) -> torch.Tensor:
        # `encode`'s signature (the model's forward calls it positionally); anything beyond ids and masks: eager.
        eager = self.fallback or torch.is_grad_enabled() or any(v is not None for v in kwargs.values())
        eager = eager or (self._module is not None and self._module.training)
        if (
            self.lean_guards
            and self._weight is not None
            and (self._weight.dtype, self._weight.device) != self._weight_key
        ):
            self._compile()  # the model moved to another dtype or device: graphs anew (lean guards would not see it)
        if eager or position_ids is not None or inputs_embeds is not None or input_ids is None:
            return self.encode(input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds, **kwargs)
        if input_ids.dim() != 2 or input_ids.device.type != "cpu":
            return self.encode(input_ids, attention_mask, token_type_ids, **kwargs)
        rows, length = input_ids.shape
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if rows > self.batch_buckets[-1]:  # chunks of the largest bucket
            step = self.batch_buckets[-1]
            parts = [
                self(input_ids[i : i + step], attention_mask[i : i + step],
                     None if token_type_ids is None else token_type_ids[i : i + step])
                for i in range(0, rows, step)
            ]  # fmt: skip
            return torch.cat(parts)
        shape = (bucket(rows, self.batch_buckets), bucket(length, self.sequence_buckets))
        try:
            # Always fresh inference tensors: dynamo guards on the inputs' kind, so a mix of inference and normal
            # tensors (a text of exactly a bucket's length is not padded) compiled each bucket twice.
            with torch.inference_mode():
                padded = [
                    _pad(input_ids, shape, self.pad_token_id),
                    _pad(attention_mask, shape, 0),
                    None if token_type_ids is None else _pad(token_type_ids, shape, 0),
                ]
                pooled = self._call_compiled(*padded)
        except Exception as error:  # inductor's failures are of many types; the eager path stays correct
            message = " ".join(str(error).split("Set TORCHDYNAMO_VERBOSE")[0].split())[:300]  # one line
            self.fallback = f"compiling failed ({type(error).__name__}: {message})"
            warnings.warn(f"polyhead compiled path: {self.fallback}; running the eager model.", stacklevel=2)
            return self.encode(input_ids, attention_mask, token_type_ids)
        self.compiled_buckets.add(shape)
        # outside inference mode (a caller under no_grad), a normal tensor as the eager model gives: one the caller
        # may update in place
        return pooled[:rows] if torch.is_inference_mode_enabled() else pooled[:rows].clone()

    def warm_up(self, batch_sizes: Sequence[int], lengths: Sequence[int]) -> None:
        """Compiles the buckets of `batch_sizes` x `lengths` now (a server's start-up), not at the first requests."""
        with torch.inference_mode():
            for rows in batch_sizes:
                for length in lengths:
                    self(torch.full((rows, length), self.pad_token_id), torch.ones(rows, length, dtype=torch.long))


def _pad(tensor: torch.Tensor, shape: tuple[int, int], value: int) -> torch.Tensor:
    """A new tensor of `shape`: `tensor`, padded with `value` in extra columns at the end; extra rows copy the first
    row, so no padded row is fully masked (an all-masked row may give NaN, which is dropped anyway but costs a slow
    path). Always a copy, even at the bucket's exact shape, so it takes the current mode's tensor kind."""
    rows, length = tensor.shape
    padded = tensor.new_full(shape, value)
    padded[:rows, :length] = tensor
    if rows < shape[0]:
        padded[rows:, :length] = tensor[:1]
    return padded


def _raise_recompile_limit(graphs: int) -> None:
    """Dynamo stops compiling a function after `recompile_limit` shapes (8 by default) and runs it eagerly: one graph
    per bucket needs more."""
    import torch._dynamo.config as dynamo_config

    for name in ("recompile_limit", "cache_size_limit"):  # renamed in torch 2.6
        if hasattr(dynamo_config, name):
            setattr(dynamo_config, name, max(getattr(dynamo_config, name), graphs))
            return


def compile_model(
    model: torch.nn.Module,
    dtype: str | None = "auto",
    batch_buckets: Sequence[int] = BATCH_BUCKETS,
    sequence_buckets: Sequence[int] = SEQUENCE_BUCKETS,
    backend: Any = "inductor",
    options: dict | None = None,
    small_batch_options: dict | None = None,
    small_batch_max: int = SMALL_BATCH_MAX,
    lean_guards: bool = True,
) -> torch.nn.Module:
    r"""
    `model` (a `MultitaskModel`, in place, in eval mode) in `dtype` (see [`resolve_dtype`]: `"auto"` is bfloat16
    where the CPU runs it faster than float32, else float32) with its `encode` compiled per bucket (see
    [`BucketedEncoder`]).
    `options`: inductor's settings for every bucket (default `INDUCTOR_OPTIONS`); `small_batch_options`: those of
    the batch buckets up to `small_batch_max` (a batch bucket, default 1): by default `options` plus
    `SMALL_BATCH_EXTRA` (cpp_wrapper), or e.g. `AUTOTUNE_OPTIONS` (max-autotune's GEMM templates). A bad option set
    raises before anything else (see [`check_options`]). `lean_guards`: dynamo checks only the guards on tensors
    and global state at each call (see [`BucketedEncoder`]); False keeps them all.

    When compiling is not possible here (see [`compile_unavailable`]) or the model has no `encode` (remote code older
    than the fused heads), one warning says why and the model stays eager, in `dtype`. `model.encode.fallback` is
    empty while the compiled path runs.

    Example:

    ```python
    >>> classifier = pipeline("multitask-classification", model=compile_model(MultitaskModel.from_pretrained(path)),
    ...                       tokenizer=AutoTokenizer.from_pretrained(path))
    ```
    """
    check_options(backend, options, small_batch_options, small_batch_max, batch_buckets)
    model = model.to(getattr(torch, resolve_dtype(dtype))).eval()
    why = compile_unavailable()
    if why is None and not callable(getattr(model, "encode", None)):
        why = "the model has no encode() (its code predates the fused heads): save it again with this polyhead"
    if why is not None:
        warnings.warn(f"polyhead compiled path unavailable: {why}. Running the eager model.", stacklevel=2)
        return model
    if isinstance(model.__dict__.get("encode"), BucketedEncoder):
        return model
    encoder_config = getattr(model.config, "encoder", model.config)
    pad = getattr(encoder_config, "pad_token_id", None) or 0
    model.encode = BucketedEncoder(
        model.encode,
        pad,
        batch_buckets,
        sequence_buckets,
        backend,
        options,
        small_batch_options,
        small_batch_max,
        lean_guards,
    )
    return model


def is_compiled(model: torch.nn.Module) -> bool:
    """Whether `model` runs the compiled path (compiled by [`compile_model`] and not fallen back to eager)."""
    encode = model.__dict__.get("encode")
    return isinstance(encode, BucketedEncoder) and not encode.fallback


__all__ = [
    "AUTOTUNE_OPTIONS",
    "BATCH_BUCKETS",
    "INDUCTOR_OPTIONS",
    "LEAN_GUARD_FILTER",
    "SEQUENCE_BUCKETS",
    "SMALL_BATCH_EXTRA",
    "SMALL_BATCH_MAX",
    "BucketedEncoder",
    "bucket",
    "check_options",
    "compile_model",
    "compile_unavailable",
    "cpu_vendor",
    "faster_bf16",
    "is_compiled",
    "native_bf16",
    "resolve_dtype",
]
