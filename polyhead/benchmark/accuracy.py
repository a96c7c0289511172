"""Accuracy and training throughput: one multitask model against one single-task model per task (same arguments,
`polyhead.training.trainer`), plus the multitask model quantized to int8 (torch) and on ONNX Runtime fp32 and int8."""

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import torch
from transformers import AutoTokenizer

from polyhead.benchmark.inputs import DEFAULT_DATA_DIR, TEXT_DATASETS
from polyhead.benchmark.variants import ONNX_THREADS, quantize_int8
from polyhead.presets import TINY_ENCODER
from polyhead.remote_code import MultitaskModel
from polyhead.run_folder import BASELINES_DIR, check_model_weights, read_training_args


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
    # The trained multitask model exported to ONNX and scored on ONNX Runtime (same test sets).
    onnx_fp32: dict[str, dict[str, float]] | None = None
    onnx_int8: dict[str, dict[str, float]] | None = None
    settings: dict[str, Any] = dataclasses.field(default_factory=dict)


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


def measure_accuracy(config: dict[str, Any], int8: bool = False, onnx: bool = False) -> AccuracyResult:
    r"""
    Trains the multitask model and one single-task model per task with `polyhead.training.trainer.run` (same
    arguments), and reads back test scores and training examples/s. With `int8`, also scores the int8-quantized
    multitask model; with `onnx`, exports it (fp32 + int8) and scores both graphs on ONNX Runtime.

    Example:

    ```python
    >>> result = measure_accuracy(accuracy_config(encoder_path(), "/tmp/bench-accuracy"))
    >>> result.multitask["average"]["accuracy"], result.single_task["average"]["accuracy"]
    ```
    """
    from polyhead.training.arguments import parse_args
    from polyhead.training.trainer import run

    config_file = Path(config["output_dir"]) / "benchmark_config.json"
    config_file.parent.mkdir(parents=True, exist_ok=True)
    config_file.write_text(json.dumps(config, indent=2), encoding="utf-8")
    model_args, data_args, training_args = parse_args([str(config_file)])
    results = run(model_args, data_args, training_args)
    model_dir = Path(training_args.model_dir)
    single = {name: _train_metrics(folder) for name, folder in results["baselines"]["models"].items()}
    runtime = sum(metrics["train_runtime"] for metrics in single.values())
    examples = sum(metrics["train_samples_per_second"] * metrics["train_runtime"] for metrics in single.values())
    onnx_scores = _onnx_scores(model_dir, config) if onnx else {}
    return AccuracyResult(
        multitask=_scores(results["multitask"]),
        single_task=_scores(results["baselines"]),
        multitask_train_examples_per_second=_speed(_train_metrics(model_dir)),
        single_task_train_examples_per_second={name: _speed(metrics) for name, metrics in single.items()},
        single_task_combined_examples_per_second=examples / runtime,
        int8=_int8_scores(model_dir, config) if int8 else None,
        onnx_fp32=onnx_scores.get("fp32"),
        onnx_int8=onnx_scores.get("int8"),
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
    return train_metrics["train_samples_per_second"]


def _int8_scores(model_dir: Path, config: dict[str, Any]) -> dict[str, dict[str, float]]:
    check_model_weights(model_dir)  # an empty or truncated weights file is named, not a bare safetensors error
    model = quantize_int8(MultitaskModel.from_pretrained(model_dir).eval())
    with torch.inference_mode():
        return _score_on_test(model, model_dir, config)


def _onnx_scores(model_dir: Path, config: dict[str, Any]) -> dict[str, dict[str, dict[str, float]]]:
    from polyhead.exporters.onnx import export_onnx
    from polyhead.serving import ONNX_FILE, QUANTIZED_FILE, OnnxMultitaskModel

    export_onnx(model_dir, int8=True, overwrite=True)
    scores = {}
    for precision, file_name in (("fp32", ONNX_FILE), ("int8", QUANTIZED_FILE)):
        model = OnnxMultitaskModel.from_pretrained(model_dir, file_name, num_threads=ONNX_THREADS)
        scores[precision] = _score_on_test(model, model_dir, config)
    return scores


def _score_on_test(model, model_dir: Path, config: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Scores `model` (torch or ONNX) on the tasks' test sets, as the training run did (same samples, max length)."""
    from polyhead.data import load_task_data, tokenize_task_data
    from polyhead.evaluation.scoring import evaluate_model
    from polyhead.tasks import load_task_specs

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    specs = load_task_specs(config["tasks"])
    for spec in specs:
        spec.max_train_samples, spec.max_eval_samples = config["max_train_samples"], config["max_eval_samples"]
    data = load_task_data(specs, seed=config["seed"])
    encoded = {name: tokenize_task_data(task, tokenizer, config["max_length"])["test"] for name, task in data.items()}
    return _scores(evaluate_model(model, tokenizer, encoded, "test", 64, progress=False))
