"""Benchmarks that justify one multitask model: inference speed, memory, accuracy, training throughput, and serving on
ONNX Runtime.

Every measurement compares, on the same encoder and the same real texts:

- (a) `multitask`: our `multitask-classification` pipeline answering all T tasks in one call (torch; also torch int8,
  and the same pipeline over `OnnxMultitaskModel` on ONNX Runtime fp32 and int8);
- (b) `single`: ONE transformers `text-classification` pipeline (one task);
- (c) `separate`: T `text-classification` pipelines, run one after another on the whole input;
- (d) `encoder`: the bare `AutoModel` forward on the same padded batches as (a) (the limit), and `encoder+tok`
  (tokenization included).

Timed variants are interleaved (every variant once per round, in a new seeded order each round) and the median of the
rounds is kept, so a busy machine slows every variant alike and the ratios stay meaningful. Timings are stored
unrounded; only the tables round.

One module per measurement: `throughput` (over the callables of `variants`), `memory` (a fresh subprocess per
variant), `accuracy` (multitask vs single-task training, int8 and ONNX scores), `onnx_files` (file sizes, parity);
`inputs` (texts, label sets), `run` ([`run_benchmark`], [`BenchmarkReport`]) and `tables` ([`format_report`]).
Entry point: `scripts/benchmark.py`. Two focused measurements share its inputs and timing loop: `heads` (throughput
against the number of heads, `scripts/bench_heads.py`) and `zero_shot` (zero-shot labels through an NLI head against
gold labels, `scripts/eval_zero_shot.py`); `choose` (`choose_backend`: the fastest serving path of one model on this
machine, `scripts/benchmark.py --choose`). `cli`: what every benchmark script does with its command line (argparse
types for comma-separated lists, the early check of output paths, one-line errors).
"""

from polyhead.benchmark.accuracy import AccuracyResult, accuracy_config, measure_accuracy
from polyhead.benchmark.inputs import (
    DEFAULT_DATA_DIR,
    load_texts,
    read_jsonl,
    save_tiny_encoder,
    synthetic_texts,
    task_label_sets,
)
from polyhead.benchmark.memory import MemoryResult, measure_memory, memory_child
from polyhead.benchmark.onnx_files import OnnxFilesSummary
from polyhead.benchmark.run import BenchmarkReport, run_benchmark, save_report
from polyhead.benchmark.tables import (
    accuracy_table,
    format_report,
    memory_table,
    onnx_accuracy_table,
    onnx_table,
    throughput_table,
    training_table,
)
from polyhead.benchmark.throughput import ThroughputResult, measure_throughput
from polyhead.benchmark.variants import int8_available, onnx_available


__all__ = [
    "DEFAULT_DATA_DIR",
    "AccuracyResult",
    "BenchmarkReport",
    "OnnxFilesSummary",
    "MemoryResult",
    "ThroughputResult",
    "accuracy_config",
    "accuracy_table",
    "format_report",
    "int8_available",
    "load_texts",
    "measure_accuracy",
    "measure_memory",
    "measure_throughput",
    "memory_child",
    "memory_table",
    "onnx_accuracy_table",
    "onnx_available",
    "onnx_table",
    "read_jsonl",
    "run_benchmark",
    "save_report",
    "save_tiny_encoder",
    "synthetic_texts",
    "task_label_sets",
    "throughput_table",
    "training_table",
]
