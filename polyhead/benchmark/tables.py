"""Markdown tables of a [`BenchmarkReport`]: one per measurement, ratios computed from the unrounded numbers."""

from polyhead.benchmark.accuracy import AccuracyResult
from polyhead.benchmark.run import BenchmarkReport
from polyhead.benchmark.throughput import ThroughputResult
from polyhead.benchmark.variants import ONNX_THREADS


def _ratio(numerator: float | None, denominator: float | None) -> str:
    if not numerator or not denominator:
        return "-"
    return f"{numerator / denominator:.2f}x"


def throughput_table(report: BenchmarkReport) -> str:
    """Texts/s per variant, with ratios to (b) `single` and (d) `encoder` at the same batch size, and to (a) the torch
    multitask pipeline at the same T and batch size."""
    lines = [
        "| T | batch | variant | texts/s | vs (b) single | vs (d) encoder | vs (d) encoder+tok | "
        "vs (a) torch multitask |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in report.throughput:
        single = report.speed("single", *_shared_key(report, row))
        encoder = report.speed("encoder", *_shared_key(report, row))
        encoder_tok = report.speed("encoder+tok", *_shared_key(report, row))
        multitask = report.speed("multitask", row.num_tasks, row.batch_size)
        lines.append(
            f"| {row.num_tasks} | {row.batch_size} | {LABELS.get(row.variant, row.variant)} | "
            f"{row.texts_per_second:.1f} | {_ratio(row.texts_per_second, single)} | "
            f"{_ratio(row.texts_per_second, encoder)} | {_ratio(row.texts_per_second, encoder_tok)} | "
            f"{_ratio(row.texts_per_second, multitask)} |"
        )
    return "\n".join(lines)


def _shared_key(report: BenchmarkReport, row: ThroughputResult) -> tuple[int, int]:
    # (b) and (d) are timed once per batch size, under the first task count.
    return report.settings["task_counts"][0], row.batch_size


LABELS = {
    "multitask": "(a) multitask pipeline, all T tasks",
    "multitask-unsorted": "(a) multitask, sort_by_length=False",
    "multitask-int8": "(a) multitask, torch int8 dynamic quantization",
    "multitask-bf16": "(a) multitask, torch bfloat16",
    "onnx-fp32": "(a) multitask on ONNX Runtime fp32",
    "onnx-int8": "(a) multitask on ONNX Runtime int8",
    "single": "(b) one text-classification pipeline",
    "separate": "(c) T text-classification pipelines",
    "encoder": "(d) bare encoder forward",
    "encoder+tok": "(d) bare encoder forward + tokenize",
}


def memory_table(report: BenchmarkReport) -> str:
    """Peak RSS of each variant's process (imports included) and its growth after imports, with ratios to (b)."""
    single = next((row for row in report.memory if row.variant == "single"), None)
    lines = [
        "| T | variant | peak RSS (MB) | vs (b) single | growth after imports (MB) | vs (b) single |",
        "|---|---|---|---|---|---|",
    ]
    for row in report.memory:
        label = LABELS[row.variant].replace(", all T tasks", "")
        total, single_total = row.baseline_mb + row.peak_mb, single and single.baseline_mb + single.peak_mb
        lines.append(
            f"| {row.num_tasks} | {label} | {total:.0f} | {_ratio(total, single_total)} | {row.peak_mb:.0f} | "
            f"{_ratio(row.peak_mb, single and single.peak_mb)} |"
        )
    return "\n".join(lines)


def accuracy_table(result: AccuracyResult) -> str:
    """Per-task and average test accuracy / macro-F1: multitask, single-task, and int8 multitask if measured."""
    header = "| task | multitask acc | single-task acc | multitask F1 | single-task F1 |"
    columns = "|---|---|---|---|---|"
    if result.int8:
        header, columns = header + " int8 multitask acc | int8 multitask F1 |", columns + "---|---|"
    lines = [header, columns]
    for task, scores in result.multitask.items():
        single = result.single_task.get(task, {})
        cells = [scores.get("accuracy"), single.get("accuracy"), scores.get("f1_macro"), single.get("f1_macro")]
        if result.int8:
            cells += [result.int8.get(task, {}).get("accuracy"), result.int8.get(task, {}).get("f1_macro")]
        lines.append(f"| {task} | " + " | ".join("-" if c is None else f"{100 * c:.1f}" for c in cells) + " |")
    return "\n".join(lines)


def onnx_accuracy_table(result: AccuracyResult) -> str:
    """Per task: test accuracy and macro-F1 (%) of the trained multitask model on ONNX Runtime fp32 and int8, and
    the int8 change in points."""
    lines = [
        "| task | fp32 acc | int8 acc | int8 change (points) | fp32 F1 | int8 F1 | int8 change (points) |",
        "|---|---|---|---|---|---|---|",
    ]
    for task, fp32 in result.onnx_fp32.items():
        int8 = result.onnx_int8.get(task, {})
        cells = []
        for metric in ("accuracy", "f1_macro"):
            cells += [f"{100 * fp32[metric]:.1f}", f"{100 * int8[metric]:.1f}"]
            cells.append(f"{100 * (int8[metric] - fp32[metric]):+.1f}")
        lines.append(f"| {task} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def onnx_table(report: BenchmarkReport) -> str:
    """Per exported model: file sizes (MiB) and the largest |onnx - torch| logit over all tasks on real texts."""
    lines = [
        "| T | model.safetensors (MiB) | onnx/model.onnx (MiB) | onnx/model_quantized.onnx (MiB) | "
        "fp32 max abs logit diff | int8 max abs logit diff |",
        "|---|---|---|---|---|---|",
    ]
    for row in report.onnx:
        sizes = [
            row.file_mib.get(name) for name in ("model.safetensors", "onnx/model.onnx", "onnx/model_quantized.onnx")
        ]
        cells = ["-" if size is None else f"{size:.1f}" for size in sizes]
        cells += [f"{max(diff.values(), default=0.0):.1e}" for diff in (row.fp32_max_abs_diff, row.int8_max_abs_diff)]
        lines.append(f"| {row.num_tasks} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def training_table(result: AccuracyResult) -> str:
    """Training examples/s: the multitask run, the single-task runs together (their examples over their summed
    time: the same work) and each single-task run (same encoder, batch size, max length)."""
    combined = result.single_task_combined_examples_per_second
    lines = ["| run | train examples/s | vs single-task runs together |", "|---|---|---|"]
    lines.append(
        f"| multitask (all tasks, one model) | {result.multitask_train_examples_per_second:.1f} | "
        f"{_ratio(result.multitask_train_examples_per_second, combined)} |"
    )
    lines.append(f"| single-task runs together (T models) | {combined:.1f} | 1.00x |")
    for task, speed in result.single_task_train_examples_per_second.items():
        lines.append(f"| single-task {task} | {speed:.1f} | {_ratio(speed, combined)} |")
    return "\n".join(lines)


def format_report(report: BenchmarkReport) -> str:
    """The whole report as Markdown: one table per measurement, ratios included."""
    rounds = report.settings.get("repeats")
    title = f"### Inference throughput (texts/s, median of {rounds} interleaved rounds, {_threads(report)})"
    parts = [title, throughput_table(report)]
    if report.onnx:
        parts += ["### ONNX exports: file sizes and logit parity with torch (real texts)", onnx_table(report)]
    if report.memory:
        parts += ["### Peak memory (RSS) of loading and running, one fresh process per variant", memory_table(report)]
    if report.accuracy:
        parts += ["### Test accuracy and macro-F1 (%)", accuracy_table(report.accuracy)]
        if report.accuracy.onnx_fp32 and report.accuracy.onnx_int8:
            parts += ["### ONNX Runtime int8 vs fp32, test accuracy and macro-F1 (%)"]
            parts += [onnx_accuracy_table(report.accuracy)]
        parts += ["### Training throughput", training_table(report.accuracy)]
    parts.append(f"Wall time: {report.wall_seconds:.0f} s.")
    return "\n\n".join(parts)


def _threads(report: BenchmarkReport) -> str:
    return f"{report.settings.get('torch_threads')} torch threads, {ONNX_THREADS} onnxruntime threads"
