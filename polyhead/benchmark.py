"""Benchmarks that justify one multitask model: inference speed, memory, accuracy and training throughput.

Every measurement compares, on the same encoder and the same real texts:

- (a) `multitask`: our `multitask-classification` pipeline answering all T tasks in one call;
- (b) `single`: ONE transformers `text-classification` pipeline (one task);
- (c) `separate`: T `text-classification` pipelines, run one after another on the whole input;
- (d) `encoder`: the bare `AutoModel` forward on the same padded batches as (a) (the limit), and `encoder+tok`
  (tokenization included).

Timed variants are interleaved (every variant once per round, in a new seeded order each round) and the median of the
rounds is kept, so a busy machine slows every variant alike and the ratios stay meaningful. Memory is the peak RSS
(`VmHWM`) of a fresh subprocess per variant, loading plus running the same inputs, also shown above that process's RSS
after imports. Accuracy and training throughput use `polyhead.training`: one multitask model against one single-task
model per task, trained with the same arguments. int8 dynamic quantization is an optional CPU variant.

Entry point: `scripts/benchmark.py`. [`run_benchmark`] returns a [`BenchmarkReport`]; [`format_report`] renders it as
Markdown tables.
"""

import dataclasses
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer, BertModel, pipeline

from polyhead.presets import TINY_ENCODER, WORDS, tiny_encoder_config, tiny_tokenizer
from polyhead.run_folder import BASELINES_DIR, read_training_args
from polyhead_remote.configuration_multitask import MULTI_LABEL, PIPELINE_TASK, SINGLE_LABEL
from polyhead_remote.modeling_multitask import MultitaskModel
from polyhead_remote.pipelines.multitask_classification import register_pipeline


DEFAULT_DATA_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
# Three tweet tasks (the accuracy benchmark), then three more label sets for T = 6 (one of them multi-label).
TASK_DATASETS = ("tweet_emotion", "tweet_hate", "tweet_offensive", "go_emotions", "sst2", "trec")
TEXT_DATASETS = ("tweet_emotion", "tweet_hate", "tweet_offensive")
MEMORY_VARIANTS = ("multitask", "single", "separate")
TIMED_VARIANTS = ("multitask", "multitask-unsorted", "single", "separate", "encoder", "encoder+tok", "multitask-int8")


@dataclasses.dataclass
class ThroughputResult:
    """Median texts/s of one variant at one (number of tasks, batch size); `runs` are the seconds of each repeat."""

    variant: str
    num_tasks: int
    batch_size: int
    num_texts: int
    texts_per_second: float
    runs: list[float]


@dataclasses.dataclass
class MemoryResult:
    """Peak RSS (MB) of loading and running one variant in a fresh process, above the after-imports baseline."""

    variant: str
    num_tasks: int
    peak_mb: float
    baseline_mb: float


@dataclasses.dataclass
class AccuracyResult:
    """Test scores of the multitask model and of the single-task models, and training examples/s of each."""

    multitask: dict[str, dict[str, float]]
    single_task: dict[str, dict[str, float]]
    multitask_train_examples_per_second: float
    single_task_train_examples_per_second: dict[str, float]
    # All single-task runs together: their examples over their summed train time (the same work as the multitask run).
    single_task_combined_examples_per_second: float = 0.0
    int8: dict[str, dict[str, float]] | None = None
    settings: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class BenchmarkReport:
    """Everything one benchmark run measured, plus its settings and wall time."""

    settings: dict[str, Any]
    throughput: list[ThroughputResult] = dataclasses.field(default_factory=list)
    memory: list[MemoryResult] = dataclasses.field(default_factory=list)
    accuracy: AccuracyResult | None = None
    wall_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def speed(self, variant: str, num_tasks: int, batch_size: int) -> float | None:
        """The texts/s of one variant, or `None` if it was not measured."""
        for row in self.throughput:
            if (row.variant, row.num_tasks, row.batch_size) == (variant, num_tasks, batch_size):
                return row.texts_per_second
        return None


# ---------------------------------------------------------------------------------------------------------- inputs


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def load_texts(num_texts: int, data_dir: str | os.PathLike = DEFAULT_DATA_DIR, seed: int = 0) -> list[str]:
    """`num_texts` real tweets, a seeded sample of the three tweet test sets (mixed, so lengths vary)."""
    texts = [row["text"] for name in TEXT_DATASETS for row in read_jsonl(Path(data_dir) / name / "test.jsonl")]
    return random.Random(seed).sample(texts, min(num_texts, len(texts)))


def synthetic_texts(num_texts: int, seed: int = 0) -> list[str]:
    """Random sentences over the tiny tokenizer's words, 3 to 30 words long (for `--tiny`)."""
    rng = random.Random(seed)
    return [" ".join(rng.choices(WORDS, k=rng.randint(3, 30))) for _ in range(num_texts)]


def task_label_sets(num_tasks: int, data_dir: str | os.PathLike | None = DEFAULT_DATA_DIR) -> dict[str, dict]:
    """The `tasks` mapping of the first `num_tasks` of `TASK_DATASETS` (labels read from their validation files);
    synthetic label sets (2 to 7 labels, the fourth multi-label) when `data_dir` is `None`."""
    if num_tasks > len(TASK_DATASETS):
        raise ValueError(f"At most {len(TASK_DATASETS)} tasks are available, got {num_tasks}.")
    tasks = {}
    for index, name in enumerate(TASK_DATASETS[:num_tasks]):
        if data_dir is None:
            labels, multi = [f"label_{i}" for i in range(2 + index)], index == 3
        else:
            rows = read_jsonl(Path(data_dir) / name / "validation.jsonl")
            multi = "labels" in rows[0]
            labels = sorted({label for row in rows for label in (row["labels"] if multi else [row["label"]])})
        tasks[name] = {"labels": labels, "problem_type": MULTI_LABEL if multi else SINGLE_LABEL}
    return tasks


def save_tiny_encoder(folder: str | os.PathLike) -> str:
    """Saves a tiny random BERT and its tokenizer to `folder` so every variant loads it with `from_pretrained`."""
    torch.manual_seed(0)
    BertModel(tiny_encoder_config()).save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    return str(folder)


# ---------------------------------------------------------------------------------------------------------- variants


def multitask_pipeline(encoder: str, tasks: dict[str, dict], int8: bool = False):
    """(a): the `multitask-classification` pipeline over a fresh multitask model (random heads)."""
    register_pipeline()
    torch.manual_seed(0)
    model = MultitaskModel.from_encoder_pretrained(encoder, tasks=tasks).eval()
    if int8:
        model = quantize_int8(model)
    return pipeline(PIPELINE_TASK, model=model, tokenizer=AutoTokenizer.from_pretrained(encoder))


def single_pipeline(encoder: str, num_labels: int):
    """(b): one transformers `text-classification` pipeline on the same encoder."""
    model = AutoModelForSequenceClassification.from_pretrained(encoder, num_labels=num_labels).eval()
    return pipeline("text-classification", model=model, tokenizer=AutoTokenizer.from_pretrained(encoder))


def int8_available() -> bool:
    """Whether this torch still has eager dynamic quantization (`torch.ao.quantization.quantize_dynamic`)."""
    try:
        from torch.ao.quantization import quantize_dynamic  # noqa: F401
    except ImportError:
        return False
    return bool({"fbgemm", "x86"} & set(torch.backends.quantized.supported_engines))


def quantize_int8(model: torch.nn.Module) -> torch.nn.Module:
    """int8 dynamic quantization of every `nn.Linear` (weights int8, activations quantized on the fly), CPU only.

    torch marks `torch.ao.quantization` deprecated in favour of `torchao` (whose int8 kernels target GPUs); it still
    ships and works in torch 2.13, so its deprecation warnings are silenced here and `int8_available()` gates it."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        from torch.ao.quantization import quantize_dynamic

        return quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)


class EncoderForward:
    """(d): the bare encoder on the batches (a) runs (sorted by length, padded per batch), under `inference_mode`."""

    def __init__(self, encoder: str):
        self.model = AutoModel.from_pretrained(encoder).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(encoder)
        self._cache: dict[tuple[int, int], list[dict]] = {}  # pre-tokenized batches for the pure forward

    def batches(self, texts: list[str], batch_size: int) -> list[dict]:
        ordered = sorted(texts, key=len) if batch_size > 1 else texts
        kwargs = {"return_tensors": "pt", "truncation": True, "padding": batch_size > 1}
        return [self.tokenizer(ordered[i : i + batch_size], **kwargs) for i in range(0, len(ordered), batch_size)]

    def run(self, texts: list[str], batch_size: int, tokenize: bool) -> None:
        key = (hash(tuple(texts)), batch_size)
        if tokenize or key not in self._cache:
            self._cache[key] = self.batches(texts, batch_size)
        with torch.inference_mode():
            for batch in self._cache[key]:
                self.model(**batch)


def build_variants(
    encoder: str, tasks: dict[str, dict], shared: dict[str, Any], int8: bool = False
) -> dict[str, Callable[[list[str], int], Any]]:
    """The timed callables `(texts, batch_size) -> None` for one task count; (b) and (d) come from `shared`."""
    first = len(next(iter(tasks.values()))["labels"])
    if "single" not in shared:
        shared["single"] = single_pipeline(encoder, first)
        shared["encoder"] = EncoderForward(encoder)
    separate = [single_pipeline(encoder, len(spec["labels"])) for spec in tasks.values()]
    multitask = multitask_pipeline(encoder, tasks)
    variants = {
        "multitask": lambda texts, bs: multitask(texts, batch_size=bs),
        "multitask-unsorted": lambda texts, bs: multitask(texts, batch_size=bs, sort_by_length=False),
        "single": lambda texts, bs: shared["single"](texts, batch_size=bs),
        "separate": lambda texts, bs: [classifier(texts, batch_size=bs) for classifier in separate],
        "encoder": lambda texts, bs: shared["encoder"].run(texts, bs, tokenize=False),
        "encoder+tok": lambda texts, bs: shared["encoder"].run(texts, bs, tokenize=True),
    }
    if int8:
        quantized = multitask_pipeline(encoder, tasks, int8=True)
        variants["multitask-int8"] = lambda texts, bs: quantized(texts, batch_size=bs)
    return variants


# ---------------------------------------------------------------------------------------------------------- speed


def measure_throughput(
    encoder: str,
    texts: list[str],
    task_counts: Sequence[int],
    batch_sizes: Sequence[int],
    repeats: int = 3,
    data_dir: str | os.PathLike | None = DEFAULT_DATA_DIR,
    batch1_texts: int | None = None,
    int8: bool = False,
) -> list[ThroughputResult]:
    r"""
    Texts/s of every variant for every (task count, batch size): warmed up, repeats interleaved, medians kept.

    Args:
        encoder: a folder (or Hub id) with the encoder and its tokenizer.
        texts: the inputs, the same for every variant.
        task_counts, batch_sizes: the grid.
        repeats: interleaved rounds; the median is reported.
        data_dir: where the task label sets come from (`None`: synthetic labels).
        batch1_texts: at batch size 1, time only the first this many texts (batch 1 is slow; `None`: all).
        int8: also time the int8 dynamically quantized multitask pipeline.

    Example:

    ```python
    >>> rows = measure_throughput(encoder_path(), load_texts(256), task_counts=[3], batch_sizes=[32])
    ```
    """
    shared: dict[str, Any] = {}
    variants = {t: build_variants(encoder, task_label_sets(t, data_dir), shared, int8) for t in task_counts}
    grid = [(t, bs, name) for bs in batch_sizes for t in task_counts for name in variants[t]]
    # (b) and (d) do not depend on T: time them once per batch size (under the first task count).
    grid = [(t, bs, n) for t, bs, n in grid if t == task_counts[0] or n not in ("single", "encoder", "encoder+tok")]
    grid = [(t, bs, n) for t, bs, n in grid if bs > 1 or n != "multitask-unsorted"]  # sorting needs batches
    inputs = {bs: texts[:batch1_texts] if bs == 1 and batch1_texts else texts for bs in batch_sizes}
    for t, bs, name in grid:  # warm-up: one short pass each
        variants[t][name](inputs[bs][: max(bs, 8)], bs)
    runs: dict[tuple, list[float]] = {key: [] for key in grid}
    for round_index in range(repeats):  # a new order each round: no variant always runs right after another
        for t, bs, name in random.Random(round_index).sample(grid, len(grid)):
            start = time.perf_counter()
            variants[t][name](inputs[bs], bs)
            runs[(t, bs, name)].append(time.perf_counter() - start)
    return [_throughput_row(name, t, bs, len(inputs[bs]), runs[(t, bs, name)]) for t, bs, name in grid]


def _throughput_row(variant: str, num_tasks: int, batch_size: int, num_texts: int, runs: list[float]):
    rate = num_texts / statistics.median(runs)
    return ThroughputResult(variant, num_tasks, batch_size, num_texts, round(rate, 2), [round(r, 4) for r in runs])


# ---------------------------------------------------------------------------------------------------------- memory


def measure_memory(
    encoder: str,
    num_tasks: int,
    texts: list[str],
    variant: str,
    batch_size: int = 32,
    data_dir: str | os.PathLike | None = DEFAULT_DATA_DIR,
) -> MemoryResult:
    """Peak RSS of one variant, loaded and run on `texts` in a fresh Python process (see `memory_child`)."""
    job = {"encoder": encoder, "num_tasks": num_tasks, "variant": variant, "batch_size": batch_size}
    job["data_dir"] = None if data_dir is None else str(data_dir)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump({**job, "texts": texts}, handle)
    try:
        code = f"from polyhead.benchmark import memory_child; memory_child({handle.name!r})"
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    finally:
        os.unlink(handle.name)
    if done.returncode != 0:
        raise RuntimeError(f"Memory benchmark of {variant!r} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return MemoryResult(variant, num_tasks, round(result["peak_mb"], 1), round(result["baseline_mb"], 1))


def memory_child(job_file: str) -> None:
    """Runs in the subprocess: baseline after imports, then load + run one variant, print peak RSS growth (MB)."""
    torch.set_num_threads(2)
    job = json.loads(Path(job_file).read_text(encoding="utf-8"))
    baseline = _reset_peak_rss_mb()
    tasks = task_label_sets(job["num_tasks"], job["data_dir"])
    encoder, texts, batch_size = job["encoder"], job["texts"], job["batch_size"]
    if job["variant"] == "multitask":
        multitask_pipeline(encoder, tasks)(texts, batch_size=batch_size)
    elif job["variant"] == "single":
        single_pipeline(encoder, len(next(iter(tasks.values()))["labels"]))(texts, batch_size=batch_size)
    elif job["variant"] == "separate":
        classifiers = [single_pipeline(encoder, len(spec["labels"])) for spec in tasks.values()]
        for classifier in classifiers:
            classifier(texts, batch_size=batch_size)
    else:
        raise ValueError(f"Unknown memory variant {job['variant']!r}: choose one of {MEMORY_VARIANTS}.")
    print(json.dumps({"peak_mb": _peak_rss_mb() - baseline, "baseline_mb": baseline}))


def _proc_status_mb(field: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return None


def _reset_peak_rss_mb() -> float:
    """Resets this process's peak RSS to its current RSS (Linux `clear_refs`) and returns that RSS (MB).

    `getrusage().ru_maxrss` cannot serve: Linux carries it across fork and exec, so a child started by a 2 GB
    parent reports at least 2 GB. `VmHWM` belongs to the process's own memory map."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    return _proc_status_mb("VmRSS") or _peak_rss_mb()


def _peak_rss_mb() -> float:
    peak = _proc_status_mb("VmHWM")
    if peak is not None:
        return peak
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1024 * 1024 if sys.platform == "darwin" else 1024)


# ---------------------------------------------------------------------------------------------------------- accuracy


def accuracy_config(
    encoder: str,
    output_dir: str | os.PathLike,
    data_dir: str | os.PathLike = DEFAULT_DATA_DIR,
    max_train_samples: int = 600,
    max_eval_samples: int = 500,
    epochs: float = 1.0,
    max_length: int = 64,
    tiny: bool = False,
) -> dict[str, Any]:
    """The training config (the keys of `configs/tweets.yaml`) for multitask vs single-task on the tweet tasks."""
    tasks = []
    for short, name in zip(("emotion", "hate", "offensive"), TEXT_DATASETS):
        files = {split: str(Path(data_dir) / name / f"{split}.jsonl") for split in ("train", "validation", "test")}
        tasks.append({"name": short, "data_files": files})
    return {
        "encoder_name_or_path": TINY_ENCODER if tiny else encoder,
        "max_length": max_length,
        "tasks": tasks,
        "max_train_samples": max_train_samples,
        "max_eval_samples": max_eval_samples,
        "sampling": "proportional",  # every example once per epoch, as in the single-task runs (same budget)
        "output_dir": str(output_dir),
        "num_train_epochs": epochs,
        "per_device_train_batch_size": 32,
        "per_device_eval_batch_size": 64,
        "learning_rate": 1.0e-3 if tiny else 1.0e-4,
        "warmup_steps": 0.1,
        "weight_decay": 0.01,
        "lr_scheduler_type": "linear",
        "eval_strategy": "no",
        "save_strategy": "no",
        "logging_steps": 50,
        "single_task_baselines": True,
        "report_to": "none",
        "disable_tqdm": True,
        "seed": 42,
    }


def measure_accuracy(config: dict[str, Any], int8: bool = False) -> AccuracyResult:
    r"""
    Trains the multitask model and one single-task model per task with `polyhead.training.run` (same arguments),
    and reads back test scores and training examples/s. With `int8`, also scores the int8-quantized multitask model.

    Example:

    ```python
    >>> result = measure_accuracy(accuracy_config(encoder_path(), "/tmp/bench-accuracy"))
    >>> result.multitask["average"]["accuracy"], result.single_task["average"]["accuracy"]
    ```
    """
    from polyhead.arguments import parse_args
    from polyhead.training import run

    config_file = Path(config["output_dir"]) / "benchmark_config.json"
    config_file.parent.mkdir(parents=True, exist_ok=True)
    config_file.write_text(json.dumps(config, indent=2), encoding="utf-8")
    model_args, data_args, training_args = parse_args([str(config_file)])
    results = run(model_args, data_args, training_args)
    model_dir = Path(training_args.model_dir)
    single = {name: _train_metrics(folder) for name, folder in results["baselines"]["models"].items()}
    runtime = sum(metrics["train_runtime"] for metrics in single.values())
    examples = sum(metrics["train_samples_per_second"] * metrics["train_runtime"] for metrics in single.values())
    return AccuracyResult(
        multitask=_scores(results["multitask"]),
        single_task=_scores(results["baselines"]),
        multitask_train_examples_per_second=_speed(_train_metrics(model_dir)),
        single_task_train_examples_per_second={name: _speed(metrics) for name, metrics in single.items()},
        single_task_combined_examples_per_second=round(examples / runtime, 2),
        int8=_int8_scores(model_dir, config) if int8 else None,
        settings={k: v for k, v in config.items() if k != "tasks"} | {"baselines_dir": str(model_dir / BASELINES_DIR)},
    )


def _scores(results: dict[str, Any]) -> dict[str, dict[str, float]]:
    keep = ("accuracy", "f1_macro")
    scores = {
        task: {k: round(v, 4) for k, v in values.items() if k in keep} for task, values in results["tasks"].items()
    }
    scores["average"] = {k: round(v, 4) for k, v in results["average"].items() if k in keep}
    return scores


def _train_metrics(model_dir: str | os.PathLike) -> dict[str, float]:
    return read_training_args(model_dir)["train_metrics"]


def _speed(train_metrics: dict[str, float]) -> float:
    return round(train_metrics["train_samples_per_second"], 2)


def _int8_scores(model_dir: Path, config: dict[str, Any]) -> dict[str, dict[str, float]]:
    from polyhead.data import load_task_data, tokenize_task_data
    from polyhead.evaluation import evaluate_model
    from polyhead.saving import check_model_weights
    from polyhead.tasks import load_task_specs

    check_model_weights(model_dir)
    model = quantize_int8(MultitaskModel.from_pretrained(model_dir).eval())
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    specs = load_task_specs(config["tasks"])
    for spec in specs:
        spec.max_train_samples, spec.max_eval_samples = config["max_train_samples"], config["max_eval_samples"]
    data = load_task_data(specs, seed=config["seed"])
    encoded = {name: tokenize_task_data(task, tokenizer, config["max_length"])["test"] for name, task in data.items()}
    with torch.inference_mode():
        return _scores(evaluate_model(model, tokenizer, encoded, "test", 64, progress=False))


# ---------------------------------------------------------------------------------------------------------- run


def run_benchmark(
    task_counts: Sequence[int] = (3, 6),
    batch_sizes: Sequence[int] = (1, 32),
    num_texts: int = 96,
    batch1_texts: int | None = 24,
    repeats: int = 5,
    tiny: bool = False,
    memory: bool = True,
    accuracy: bool = True,
    int8: bool = True,
    accuracy_options: dict[str, Any] | None = None,
    data_dir: str | os.PathLike = DEFAULT_DATA_DIR,
    work_dir: str | os.PathLike | None = None,
) -> BenchmarkReport:
    r"""
    The whole benchmark: throughput grid, memory of (a)/(b)/(c) per task count, accuracy and training throughput.

    Example:

    ```python
    >>> report = run_benchmark(task_counts=[3], batch_sizes=[32], tiny=True, accuracy=False)
    >>> print(format_report(report))
    ```
    """
    start = time.perf_counter()
    torch.set_num_threads(2)
    settings = {k: v for k, v in locals().items() if k not in ("start", "work_dir")}
    settings["data_dir"], settings["torch_threads"] = str(data_dir), torch.get_num_threads()
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(work_dir or scratch)
        if tiny:
            encoder = save_tiny_encoder(work / "tiny-encoder")
        else:
            from polyhead.demo import encoder_path  # the demo's import chain is not needed by the memory children

            encoder = encoder_path()
        labels_dir = None if tiny else data_dir
        texts = synthetic_texts(num_texts) if tiny else load_texts(num_texts, data_dir)
        report = BenchmarkReport(settings={**settings, "encoder": TINY_ENCODER if tiny else encoder})
        if int8 and not int8_available():
            print("int8 dynamic quantization is not available in this torch build: skipping the int8 variant.")
            int8 = report.settings["int8"] = False
        report.throughput = measure_throughput(
            encoder, texts, task_counts, batch_sizes, repeats, labels_dir, batch1_texts, int8
        )
        if memory:
            batch = max(batch_sizes)
            for t in task_counts:
                for variant in MEMORY_VARIANTS if t == task_counts[0] else ("multitask", "separate"):
                    # Peak memory depends on the batch shapes, not on how many batches: two are enough.
                    memory_texts = texts[: 2 * batch]
                    report.memory.append(measure_memory(encoder, t, memory_texts, variant, batch, labels_dir))
        if accuracy:
            options = {"tiny": tiny, **(accuracy_options or {})}
            report.accuracy = measure_accuracy(accuracy_config(encoder, work / "accuracy", data_dir, **options), int8)
    report.wall_seconds = round(time.perf_counter() - start, 1)
    return report


# ---------------------------------------------------------------------------------------------------------- tables


def _ratio(numerator: float | None, denominator: float | None) -> str:
    if not numerator or not denominator:
        return "-"
    return f"{numerator / denominator:.2f}x"


def throughput_table(report: BenchmarkReport) -> str:
    """Texts/s per variant, with ratios to (b) `single` and (d) `encoder` at the same batch size."""
    lines = [
        "| T | batch | variant | texts/s | vs (b) single | vs (d) encoder | vs (d) encoder+tok |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in report.throughput:
        single = report.speed("single", *_shared_key(report, row))
        encoder = report.speed("encoder", *_shared_key(report, row))
        encoder_tok = report.speed("encoder+tok", *_shared_key(report, row))
        lines.append(
            f"| {row.num_tasks} | {row.batch_size} | {_LABELS.get(row.variant, row.variant)} | "
            f"{row.texts_per_second:.1f} | {_ratio(row.texts_per_second, single)} | "
            f"{_ratio(row.texts_per_second, encoder)} | {_ratio(row.texts_per_second, encoder_tok)} |"
        )
    return "\n".join(lines)


def _shared_key(report: BenchmarkReport, row: ThroughputResult) -> tuple[int, int]:
    # (b) and (d) are timed once per batch size, under the first task count.
    return report.settings["task_counts"][0], row.batch_size


_LABELS = {
    "multitask": "(a) multitask pipeline, all T tasks",
    "multitask-unsorted": "(a) multitask, sort_by_length=False",
    "multitask-int8": "(a) multitask, int8 dynamic quantization",
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
        label = _LABELS[row.variant].replace(", all T tasks", "")
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
    if report.memory:
        parts += ["### Peak memory (RSS) of loading and running, one fresh process per variant", memory_table(report)]
    if report.accuracy:
        parts += ["### Test accuracy and macro-F1 (%)", accuracy_table(report.accuracy)]
        parts += ["### Training throughput", training_table(report.accuracy)]
    parts.append(f"Wall time: {report.wall_seconds:.0f} s.")
    return "\n\n".join(parts)


def _threads(report: BenchmarkReport) -> str:
    return f"{report.settings.get('torch_threads')} torch threads"


def save_report(report: BenchmarkReport, path: str | os.PathLike) -> Path:
    """Writes the report as JSON (creating the folder)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
    return path


__all__ = [
    "AccuracyResult",
    "BenchmarkReport",
    "MemoryResult",
    "ThroughputResult",
    "accuracy_config",
    "format_report",
    "load_texts",
    "measure_accuracy",
    "measure_memory",
    "measure_throughput",
    "run_benchmark",
    "save_report",
    "task_label_sets",
]
