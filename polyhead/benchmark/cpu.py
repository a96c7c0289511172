"""CPU acceleration rows: torch float32, bfloat16 eager, bfloat16 compiled (on request also with max-autotune's GEMM
templates for the batch-1 buckets) and ONNX Runtime int8 on one model, each runtime in its own worker process, timed
in interleaved rounds (one worker runs at a time), at batch 32 and at batch 1 (one call per text); each row also as
GFLOP/s (the encoder FLOPs the eager float32 model does on the same batches, counted with `torch.utils.flop_counter`)
against the matmul peak of its dtype measured on this machine in the same run, and its labels' agreement with float32
on the same real texts. Entry point: `scripts/bench_cpu.py`; results: docs/cpu-acceleration.md.
"""

import dataclasses
import datetime
import functools
import itertools
import multiprocessing
import os
import random
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch


# torch-compiled-autotune-small: the compiled path with max-autotune's GEMM templates for the batch-1 buckets (opt-in
# there: `small_batch_options`); not run by default (autotuning compiles for minutes), name it in `variants`.
VARIANTS = ("torch-fp32", "torch-bf16", "torch-compiled", "torch-compiled-autotune-small", "onnx-int8")
MATMUL_SIZE = 2048


def matmul_peak(dtype: str, size: int = MATMUL_SIZE, seconds: float = 2.0) -> float:
    """GFLOP/s (GOP/s for int8) of a `size`x`size` matmul in `dtype` on this process's threads, best of the repeats
    run in about `seconds` (int8: `torch._int_mm`, int8 x int8 -> int32, what AMX/VNNI int8 kernels do)."""
    if dtype == "int8":
        a = torch.randint(-127, 127, (size, size), dtype=torch.int8)
        b = torch.randint(-127, 127, (size, size), dtype=torch.int8)

        def run():
            return torch._int_mm(a, b)
    else:
        a, b = (
            torch.randn(size, size, dtype=getattr(torch, dtype)),
            torch.randn(size, size, dtype=getattr(torch, dtype)),
        )

        def run():
            return a @ b

    return _best_rate(run, 2 * size**3, seconds)


def layer_peak(dtype: str, shapes: tuple[int, int, int], seconds: float = 2.0) -> float:
    """GFLOP/s of one encoder layer's linear layers in `dtype` at `shapes` = (tokens, hidden, intermediate): four
    hidden->hidden (Q, K, V, output), hidden->intermediate, intermediate->hidden, as `F.linear` on `tokens` rows. What
    the encoder's matmuls can reach on the shapes a batch really has, against the large square matmul's peak."""
    tokens, hidden, intermediate = shapes
    dt = getattr(torch, dtype)
    x_hidden, x_intermediate = torch.randn(tokens, hidden, dtype=dt), torch.randn(tokens, intermediate, dtype=dt)
    square, up, down = (torch.randn(hidden, hidden, dtype=dt), torch.randn(intermediate, hidden, dtype=dt),
                        torch.randn(hidden, intermediate, dtype=dt))  # fmt: skip

    def run():
        with torch.inference_mode():
            for _ in range(4):
                torch.nn.functional.linear(x_hidden, square)
            torch.nn.functional.linear(x_hidden, up)
            torch.nn.functional.linear(x_intermediate, down)

    return _best_rate(run, 2 * tokens * (4 * hidden * hidden + 2 * hidden * intermediate), seconds)


def _best_rate(run, flops: int, seconds: float) -> float:
    """GFLOP/s of `run` (doing `flops`), best of the repeats run in about `seconds` after one warm-up call."""
    run()
    best, start = float("inf"), time.perf_counter()
    while time.perf_counter() - start < seconds:
        begin = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - begin)
    return flops / best / 1e9


def layer_shapes(model_dir: str | os.PathLike, texts: list[str], batch_size: int) -> tuple[int, int, int]:
    """(tokens, hidden, intermediate): the mean padded tokens of the pipeline's batches of `texts` and the encoder's
    widths."""
    from transformers import AutoTokenizer

    from polyhead.encoders import default_max_length
    from polyhead.remote_code import MultitaskConfig

    config = MultitaskConfig.from_pretrained(model_dir).encoder
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    batches = pipeline_batches(tokenizer, texts, batch_size, default_max_length(tokenizer, config))
    tokens = sum(b["input_ids"].numel() for b in batches) / len(batches)
    return round(tokens), config.hidden_size, config.intermediate_size


def peak_dtype(variant: str, runs_as: str) -> str:
    """The matmul peak a variant is held to: int8 for ONNX int8, else the dtype its torch model runs in."""
    return "int8" if variant == "onnx-int8" else ("bfloat16" if "bfloat16" in runs_as else "float32")


def pipeline_batches(tokenizer, texts: list[str], batch_size: int, max_length: int) -> list[dict]:
    """The encoder batches the pipeline runs: sorted by length, `batch_size` at a time, padded to the longest (batch
    1: each text alone, unpadded)."""
    ordered = sorted(texts, key=len) if batch_size > 1 else texts
    options = {"truncation": True, "max_length": max_length, "return_tensors": "pt", "padding": batch_size > 1}
    return [tokenizer(ordered[i : i + batch_size], **options) for i in range(0, len(ordered), batch_size)]


def encoder_flops(model_dir: str | os.PathLike, texts: list[str], batch_size: int) -> int:
    """The FLOPs of the eager float32 encoder (and heads) on the pipeline's batches of `texts`: the matmuls counted by
    `torch.utils.flop_counter.FlopCounterMode`, attention's two matmuls added where the counter cannot see them
    (elementwise operations count zero)."""
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import AutoTokenizer

    from polyhead.encoders import default_max_length
    from polyhead.remote_code import MultitaskModel

    model = MultitaskModel.from_pretrained(model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    batches = pipeline_batches(tokenizer, texts, batch_size, default_max_length(tokenizer, model.config.encoder))
    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        for batch in batches:
            model(**batch)
    counted = counter.get_flop_counts().get("Global", {})
    if any("attention" in str(op) or "bmm" in str(op) for op in counted):
        return counter.get_total_flops()
    # torch's CPU fused attention kernel has no FLOP formula: QK^T and AV (2 x 2*L*L*h a row and layer) added here.
    config = model.config.encoder
    attention = sum(4 * b["input_ids"].shape[0] * b["input_ids"].shape[1] ** 2 * config.hidden_size for b in batches)
    return counter.get_total_flops() + attention * config.num_hidden_layers


def build_runner(variant: str, model_dir: str, onnx_dir: str | None, threads: int):
    """The `multitask-classification` pipeline of one variant (in the worker process)."""
    torch.set_num_threads(threads)
    from polyhead.serving.inference import load_pipeline

    if variant == "torch-fp32":
        return load_pipeline(model_dir)
    if variant == "torch-bf16":
        return load_pipeline(model_dir, dtype="bfloat16")
    if variant == "torch-compiled":
        return load_pipeline(model_dir, compile=True, dtype="auto")
    if variant == "torch-compiled-autotune-small":
        from polyhead.serving.compiled import AUTOTUNE_OPTIONS, compile_model

        classifier = load_pipeline(model_dir)
        compile_model(classifier.model, "auto", small_batch_options=AUTOTUNE_OPTIONS)
        return classifier
    if variant == "onnx-int8":
        from polyhead.benchmark.variants import onnx_pipeline
        from polyhead.serving import QUANTIZED_FILE

        return onnx_pipeline(onnx_dir, QUANTIZED_FILE, threads)
    raise ValueError(f"Unknown variant {variant!r}: one of {list(VARIANTS)}.")


def _worker(connection, variant: str, model_dir: str, onnx_dir: str | None, threads: int) -> None:
    """One runtime in one process: answers ("warm", texts), ("time", texts, batch_size), ("labels", texts),
    ("profile", texts, batch_size), ("peak", dtype) and ("layer_peak", dtype, shapes) until ("stop",)."""
    import transformers

    transformers.logging.set_verbosity_error()
    try:
        runner = build_runner(variant, model_dir, onnx_dir, threads)
        connection.send(("ready", _dtype_of(runner)))
    except Exception as error:  # reported to the parent, which skips this variant
        connection.send(("error", f"{type(error).__name__}: {error}"))
        return
    while True:
        command, *args = connection.recv()
        if command == "stop":
            return
        begin = time.perf_counter()
        if command == "warm":  # every batch shape the timed rounds meet (compiles the buckets)
            for batch_size in args[1]:
                runner(args[0], batch_size=batch_size) if batch_size > 1 else [runner(text) for text in args[0][:48]]
            buckets = getattr(runner.model.__dict__.get("encode"), "compiled_buckets", set())
            connection.send((time.perf_counter() - begin, sorted(buckets), _resident_mb()))
        elif command == "time":
            texts, batch_size = args
            if batch_size == 1:
                for text in texts:  # one call per text, as a server answers requests
                    runner(text)
            else:
                runner(texts, batch_size=batch_size)
            connection.send(time.perf_counter() - begin)
        elif command == "labels":
            connection.send(runner(args[0], batch_size=32))
        elif command == "profile":
            connection.send(_profile(kernel_profiled(runner, model_dir), *args))
        elif command == "peak":
            connection.send(matmul_peak(args[0]))
        elif command == "layer_peak":
            connection.send(layer_peak(*args))


def _resident_mb() -> float | None:
    """This process's resident memory now (Linux `/proc/self/status`; ru_maxrss would count the parent's memory at
    the fork before `spawn` runs a new interpreter)."""
    try:
        with open("/proc/self/status", encoding="utf-8") as handle:
            line = next(line for line in handle if line.startswith("VmRSS:"))
    except (OSError, StopIteration):
        return None
    return int(line.split()[1]) / 1024


def _dtype_of(runner) -> str:
    model = runner.model
    if type(model).__name__ == "OnnxMultitaskModel":
        return "int8 (onnxruntime)"
    dtype = str(getattr(model, "dtype", "onnx")).replace("torch.", "")
    encode = getattr(model, "__dict__", {}).get("encode")
    if encode is None or encode.fallback:
        return dtype
    for setting, said in (("max_autotune", "autotune"), ("cpp_wrapper", "cpp_wrapper")):
        if (encode.small_batch_options or {}).get(setting):
            return f"{dtype} compiled, {said} at batch <= {encode.small_batch_max}"
    return f"{dtype} compiled"


# Inductor records each generated C++ kernel as a profiler event (torch.profiler lists none of them otherwise).
KERNEL_PROFILE = {"cpp.enable_kernel_profile": True}


def kernel_profiled(runner, model_dir: str):
    """A compiled runner's twin compiled with `KERNEL_PROFILE` added to its options, so that its profile lists the
    graphs' generated kernels (the fused LayerNorm, GELU, softmax, adds); other runners as they are. Built only to be
    profiled, after the timed rounds: the recording costs a little per kernel."""
    from polyhead.serving.compiled import BucketedEncoder, compile_model
    from polyhead.serving.inference import load_pipeline

    encode = runner.model.__dict__.get("encode")
    if not isinstance(encode, BucketedEncoder) or encode.fallback or encode.options is None:
        return runner
    twin = load_pipeline(model_dir)
    small = None if encode.small_batch_options is None else {**encode.small_batch_options, **KERNEL_PROFILE}
    dtype = str(runner.model.dtype).replace("torch.", "")
    compile_model(twin.model, dtype, options={**encode.options, **KERNEL_PROFILE}, small_batch_options=small)
    return twin


def _profile(runner, texts: list[str], batch_size: int) -> str:
    """The top operators by self CPU time of one pass of the pipeline over `texts` (torch.profiler), as a table,
    after one unprofiled pass (a compiled runner compiles its buckets there)."""
    runner(texts, batch_size=batch_size)
    return _profile_call(lambda: runner(texts, batch_size=batch_size))


def _profile_call(call, rows: int = 12) -> str:
    """The top operators by self CPU time of one `call()` (torch.profiler), as a table, and how much of the call's
    wall time the operators' self times add up to."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        begin = time.perf_counter()
        call()
        seconds = time.perf_counter() - begin
    averages = prof.key_averages()
    listed = sum(event.self_cpu_time_total for event in averages) / 1e3
    table = averages.table(sort_by="self_cpu_time_total", row_limit=rows, max_name_column_width=60)
    return f"{table}\nself CPU time of every event: {listed:.0f} ms; the profiled call: {seconds * 1e3:.0f} ms"


def training_speed(
    model_dir: str | os.PathLike,
    texts: list[str],
    batch_size: int = 32,
    steps: int = 4,
    repeats: int = 3,
    max_length: int = 64,
    profile: Sequence[str] = (),
) -> dict[str, dict[str, Any]]:
    """Texts/s of the Trainer's training step in float32 and in bfloat16 mixed precision (`--bf16`: the forward
    under `torch.autocast("cpu", torch.bfloat16)`, float32 master weights), with the optimizer the Trainer builds by
    default (`adamw_torch_fused` from torch 2.8: 5x faster per step on CPU than unfused AdamW), `steps` batches of
    real texts per run (`"texts"`: `batch_size * steps`, `texts` repeated in order when fewer), interleaved rounds,
    median kept. Each row named in `profile` ("train-fp32", "train-bf16") also gets the top operators of one run by
    self CPU time (`"profile"`)."""
    from transformers import AutoTokenizer, Trainer, TrainingArguments

    from polyhead.remote_code import MultitaskModel

    torch.manual_seed(0)
    model = MultitaskModel.from_pretrained(model_dir).train()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    task = model.config.task_names[0]
    if not texts:
        raise ValueError("training_speed needs texts to train on, got none.")
    options = {"padding": True, "truncation": True, "max_length": max_length, "return_tensors": "pt"}
    cycled = list(itertools.islice(itertools.cycle(texts), batch_size * steps))  # fewer texts than a run: repeated
    batches = [tokenizer(cycled[i : i + batch_size], **options) for i in range(0, len(cycled), batch_size)]
    trainer_args = TrainingArguments(tempfile.gettempdir(), use_cpu=True, learning_rate=1e-6, report_to="none")
    optimizer_cls, optimizer_kwargs = Trainer.get_optimizer_cls_and_kwargs(trainer_args, model)
    optimizer = optimizer_cls(model.parameters(), **optimizer_kwargs)

    def run(bf16: bool) -> None:
        for batch in batches:
            labels = torch.zeros(len(batch["input_ids"]), dtype=torch.long)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = model(**batch, task=task, labels=labels).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()

    run(False), run(True)  # warm-up
    runs: dict[str, list[float]] = {"train-fp32": [], "train-bf16": []}
    for round_index in range(repeats):
        for name in random.Random(round_index).sample(sorted(runs), 2):
            begin = time.perf_counter()
            run(name == "train-bf16")
            runs[name].append(time.perf_counter() - begin)
    rows = sum(len(batch["input_ids"]) for batch in batches)
    settings = ", ".join(f"{key}={value}" for key, value in optimizer_kwargs.items() if key != "lr")
    optimizer_name = f"{optimizer_cls.__name__}({settings})"
    report = {
        name: {
            "texts_per_second": rows / statistics.median(times),
            "texts": rows,
            "runs": times,
            "optimizer": optimizer_name,
        }
        for name, times in runs.items()
    }
    for name in set(profile) & set(runs):
        report[name]["profile"] = _profile_call(functools.partial(run, name == "train-bf16"))
    return report


@dataclasses.dataclass
class CpuRow:
    variant: str
    dtype: str
    batch_size: int
    num_texts: int
    texts_per_second: float
    speedup: float
    gflops: float
    peak_gflops: float
    peak_fraction: float
    runs: list[float]
    agreement: dict[str, float] | None = None


def run_cpu_benchmark(
    model_dir: str | os.PathLike,
    texts: list[str],
    batch_sizes: Sequence[int] = (32, 1),
    batch1_texts: int = 32,
    repeats: int = 3,
    threads: int = 2,
    variants: Sequence[str] = VARIANTS,
    onnx_dir: str | os.PathLike | None = None,
    profile: Sequence[str] = (),
    training: bool = True,
    test_sets: dict[str, list[dict]] | None = None,
) -> dict[str, Any]:
    r"""
    The rows (see the module docstring) as a JSON-ready dict: machine, load averages, matmul peaks, warm-up seconds
    per variant, rows, and the per-operator profiles of the `profile` variants at the largest batch size (a training
    row's name, `train-bf16`, profiles its training step).

    Example:

    ```python
    >>> report = run_cpu_benchmark("outputs/model", load_texts(256))
    ```
    """
    from polyhead.benchmark.choose import cpu_description, label_agreement

    model_dir = str(model_dir)
    from polyhead.remote_code import MultitaskConfig

    tasks = MultitaskConfig.from_pretrained(model_dir).task_names
    unknown = sorted(set(test_sets or {}) - set(tasks))
    if unknown:  # checked before the minutes of timing that precede the accuracy rows
        raise ValueError(
            f"Test set(s) {unknown} name no task of {model_dir} (its tasks: {tasks}): give task=folder pairs with the "
            "model's own task names."
        )
    load_start = os.getloadavg()
    inputs = {bs: texts[:batch1_texts] if bs == 1 else texts for bs in batch_sizes}
    flops = {bs: encoder_flops(model_dir, inputs[bs], bs) for bs in batch_sizes}
    context = multiprocessing.get_context("spawn")
    workers, dtypes, skipped, warm, buckets, memory = {}, {}, {}, {}, {}, {}
    for variant in variants:
        parent, child = context.Pipe()
        process = context.Process(
            target=_worker, args=(child, variant, model_dir, onnx_dir and str(onnx_dir), threads), daemon=True
        )
        process.start()
        status, detail = parent.recv()
        if status == "error":
            skipped[variant] = detail
            process.join()
            continue
        workers[variant], dtypes[variant] = (parent, process), detail
        parent.send(("warm", texts, list(batch_sizes)))
        warm[variant], buckets[variant], memory[variant] = parent.recv()
    first = next(iter(workers.values()))[0]
    peaks = {}
    for dtype in sorted({peak_dtype(v, dtypes[v]) for v in workers}):
        first.send(("peak", dtype))
        peaks[dtype] = first.recv()
    shapes = layer_shapes(model_dir, inputs[max(batch_sizes)], max(batch_sizes))
    layer_peaks = {}
    for dtype in sorted(set(peaks) - {"int8"}):
        first.send(("layer_peak", dtype, shapes))
        layer_peaks[dtype] = first.recv()
    grid = [(variant, bs) for bs in batch_sizes for variant in workers]
    runs: dict[tuple[str, int], list[float]] = {key: [] for key in grid}
    for round_index in range(repeats):  # one worker runs at a time; a new order each round
        for variant, bs in random.Random(round_index).sample(grid, len(grid)):
            workers[variant][0].send(("time", inputs[bs], bs))
            runs[(variant, bs)].append(workers[variant][0].recv())
    answers = {}
    for variant, (connection, _) in workers.items():
        connection.send(("labels", texts))
        answers[variant] = connection.recv()
    accuracy: dict[str, dict[str, float]] = {}
    for task, rows in (test_sets or {}).items():  # single-label test sets: {"text", "label"} rows
        for variant, (connection, _) in workers.items():
            connection.send(("labels", [row["text"] for row in rows]))
            predicted = [answer[task][0]["label"] for answer in connection.recv()]
            hits = sum(label == row["label"] for label, row in zip(predicted, rows))
            accuracy.setdefault(variant, {})[task] = hits / len(rows)
    profiles = {}
    for variant in profile:
        if variant in workers:
            workers[variant][0].send(("profile", texts, max(batch_sizes)))
            profiles[variant] = workers[variant][0].recv()
    for connection, process in workers.values():
        connection.send(("stop",))
        process.join(timeout=30)
    train = training_speed(model_dir, texts, repeats=repeats, profile=profile) if training else {}
    rows = []
    for variant, bs in grid:
        seconds = statistics.median(runs[(variant, bs)])
        reference = statistics.median(runs[("torch-fp32", bs)]) if ("torch-fp32", bs) in runs else seconds
        gflops = flops[bs] / seconds / 1e9
        peak = peaks[peak_dtype(variant, dtypes[variant])]
        agreement = label_agreement(answers[variant], answers["torch-fp32"]) if "torch-fp32" in answers else None
        rows.append(
            CpuRow(
                variant,
                dtypes[variant],
                bs,
                len(inputs[bs]),
                len(inputs[bs]) / seconds,
                reference / seconds,
                gflops,
                peak,
                gflops / peak,
                runs[(variant, bs)],
                agreement,
            )  # fmt: skip
        )
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": cpu_description(),
        "torch": torch.__version__,
        "threads": threads,
        "load_average_start": load_start,
        "load_average_end": os.getloadavg(),
        "model_dir": model_dir,
        "num_texts": len(texts),
        "repeats": repeats,
        "flops": flops,
        "peaks_gflops": peaks,
        "layer_shapes": {"tokens": shapes[0], "hidden": shapes[1], "intermediate": shapes[2]},
        "layer_peaks_gflops": layer_peaks,
        "warm_up_seconds": warm,
        "resident_mb_after_warm_up": memory,
        "compiled_buckets": {variant: found for variant, found in buckets.items() if found},
        "skipped": skipped,
        "rows": [dataclasses.asdict(row) for row in rows],
        "profiles": profiles,
        "training": train,
        "test_accuracy": accuracy,
        "test_rows": {task: len(rows) for task, rows in (test_sets or {}).items()},
    }


def format_cpu_report(report: dict[str, Any]) -> str:
    """The rows as a Markdown table, with the machine, load and peaks above it."""
    peaks = ", ".join(f"{dtype} {value:,.0f}" for dtype, value in report["peaks_gflops"].items())
    lines = [
        f"{report['machine']}; torch {report['torch']}, {report['threads']} threads; {report['date']}; load average "
        f"{report['load_average_start'][0]:.1f} at the start, {report['load_average_end'][0]:.1f} at the end",
        f"matmul peak ({MATMUL_SIZE}x{MATMUL_SIZE}, GFLOP/s; int8 GOP/s): {peaks}",
        *_layer_peak_line(report),
        "warm-up (s, every shape of the timed passes): "
        + ", ".join(f"{k} {v:.0f}" for k, v in report["warm_up_seconds"].items())
        + "".join(f"; {k} compiled {len(v)} buckets {v}" for k, v in report.get("compiled_buckets", {}).items()),
        "resident memory after warm-up (MB): "
        + ", ".join(f"{k} {v:.0f}" for k, v in report.get("resident_mb_after_warm_up", {}).items() if v),
        "",
        "| variant | runs as | batch | texts/s | vs torch-fp32 | GFLOP/s | % of its dtype's peak "
        "| lowest task agreement with fp32 |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in report["rows"]:
        agreement = f"{min(row['agreement'].values()):.1%}" if row["agreement"] else ""
        lines.append(
            f"| {row['variant']} | {row['dtype']} | {row['batch_size']} | {row['texts_per_second']:.1f} | "
            f"{row['speedup']:.2f}x | {row['gflops']:.1f} | {row['peak_fraction']:.1%} | {agreement} |"
        )
    for variant, reason in report["skipped"].items():
        lines.append(f"| {variant} | skipped: {reason} | | | | | | |")
    if report.get("test_accuracy"):
        tasks = list(report["test_rows"])
        lines += ["", "| variant | " + " | ".join(f"{t} test accuracy ({report['test_rows'][t]} rows)" for t in tasks)
                  + " |", "|---|" + "---:|" * len(tasks)]  # fmt: skip
        for variant, scores in report["test_accuracy"].items():
            lines.append(f"| {variant} | " + " | ".join(f"{100 * scores[t]:.2f}" for t in tasks) + " |")
    if report.get("training"):
        fp32 = report["training"]["train-fp32"]["texts_per_second"]
        optimizer = report["training"]["train-fp32"].get("optimizer", "AdamW")  # older reports: unfused AdamW
        lines += ["", f"| training step (batch 32, {optimizer}) | texts/s | vs fp32 |", "|---|---:|---:|"]
        for name, row in report["training"].items():
            lines.append(f"| {name} | {row['texts_per_second']:.1f} | {row['texts_per_second'] / fp32:.2f}x |")
    return "\n".join(lines)


def _layer_peak_line(report: dict[str, Any]) -> list[str]:
    """The linear layers' rate at the batch's real shapes (reports from before it have none)."""
    layer = report.get("layer_peaks_gflops")
    if not layer:
        return []
    shapes = report["layer_shapes"]
    rates = ", ".join(f"{dtype} {value:,.0f}" for dtype, value in layer.items())
    ratio = layer["bfloat16"] / layer["float32"] if {"bfloat16", "float32"} <= set(layer) else None
    gain = f" (bfloat16 / float32 {ratio:.2f}x: what bfloat16 can gain on these matmuls)" if ratio else ""
    return [
        f"one encoder layer's linear layers at batch {shapes['tokens']} tokens x hidden {shapes['hidden']} x "
        f"intermediate {shapes['intermediate']} (GFLOP/s): {rates}{gain}"
    ]


def plot_cpu_report(report: dict[str, Any], path: str | os.PathLike) -> Path:
    """Texts/s per variant and batch size, each bar labelled with its share of the matmul peak."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    batch_sizes = sorted({row["batch_size"] for row in report["rows"]}, reverse=True)
    figure, axes = plt.subplots(1, len(batch_sizes), figsize=(5 * len(batch_sizes), 4), squeeze=False)
    for axis, bs in zip(axes[0], batch_sizes):
        rows = [row for row in report["rows"] if row["batch_size"] == bs]
        bars = axis.bar([row["variant"] for row in rows], [row["texts_per_second"] for row in rows], color="#4c72b0")
        for bar, row in zip(bars, rows):
            axis.annotate(f"{row['peak_fraction']:.0%} of peak", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                          ha="center", va="bottom", fontsize=8)  # fmt: skip
        axis.set_title(f"batch {bs}" + (" (one call per text)" if bs == 1 else ""))
        axis.set_ylabel("texts/s")
        axis.tick_params(axis="x", labelrotation=20)
    figure.suptitle(f"{report['machine'][:70]}, {report['threads']} threads, {report['date']}", fontsize=9)
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
