"""The fastest serving path of one model on this machine: torch float32 / bfloat16 and ONNX Runtime fp32 / int8 (and,
when asked, polyhead's compiled torch path), timed side by side on sample texts within a time budget.

Which path is fastest is a property of the CPU (bfloat16 is fast only with AMX or AVX512-BF16 units and good kernels;
ONNX Runtime's int8 kernels win where they do not), so it is measured, not guessed. A path qualifies only if its
labels agree with torch float32's on at least `MIN_AGREEMENT` of the texts for every task (the top label of a
single-label task, the set of labels at or above their thresholds of a multi-label task). [`choose_backend`] returns
the measurements and the pick; with `write=True` the pick goes into the folder's `serving.json`, which the Inference
Endpoints handler and bulk prediction read (`polyhead.serving.settings.read_serving_file`). Publishing uploads it
with the model (measured here: choose on hardware like the endpoint's, or delete it first). Entry point:
`python scripts/benchmark.py --choose MODEL_DIR [--write]`.
"""

import dataclasses
import datetime
import json
import os
import platform
import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from transformers import pipeline

from polyhead.benchmark.inputs import DEFAULT_DATA_DIR, TEXT_DATASETS, load_texts, read_jsonl
from polyhead.benchmark.variants import onnx_available, onnx_pipeline
from polyhead.remote_code import PIPELINE_TASK
from polyhead.serving import ONNX_FILE, QUANTIZED_FILE
from polyhead.serving.compiled import compile_model, compile_unavailable, is_compiled, resolve_dtype
from polyhead.serving.settings import SETTINGS_FILE


MIN_AGREEMENT = 0.995  # share of texts whose labels equal torch float32's, per task
REFERENCE = "torch-fp32"
COMPILED = "torch-compiled"
PATHS = {
    "torch-fp32": {"backend": "torch", "dtype": "float32"},
    "torch-bf16": {"backend": "torch", "dtype": "bfloat16"},
    "onnx-fp32": {"backend": "onnx", "onnx_file": ONNX_FILE},
    "onnx-int8": {"backend": "onnx", "onnx_file": QUANTIZED_FILE},
    # polyhead's compiled path; its dtype is this CPU's (`resolve_dtype("auto")`), filled in when it is measured.
    COMPILED: {"backend": "torch", "compile": True},
}
"""The serving paths that can be measured, and the `serving.json` settings that select each."""
DEFAULT_PATHS = ("torch-fp32", "torch-bf16", "onnx-fp32", "onnx-int8")
"""The paths measured unless asked: the compiled one costs minutes of compiling first (`--compiled`)."""
CPU_FLAGS = ("amx_bf16", "avx512_bf16", "avx512_vnni", "avx512f")  # what decides the bf16 and int8 kernels


@dataclasses.dataclass
class PathResult:
    """One serving path: median texts/s over the timed rounds, per-task label agreement with torch float32, or why
    it was not measured (`skipped`)."""

    name: str
    settings: dict[str, Any]
    texts_per_second: float | None = None
    agreement: dict[str, float] | None = None
    runs: list[float] = dataclasses.field(default_factory=list)
    skipped: str = ""

    def qualifies(self, min_agreement: float = MIN_AGREEMENT) -> bool:
        return self.texts_per_second is not None and min(self.agreement.values()) >= min_agreement


@dataclasses.dataclass
class BackendChoice:
    """What [`choose_backend`] measured and picked (`chosen` names one of `results`)."""

    chosen: str
    settings: dict[str, Any]
    results: list[PathResult]
    num_texts: int
    batch_size: int
    num_threads: int
    machine: str
    min_agreement: float
    seconds: float
    date: str

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def check_min_agreement(min_agreement: float) -> float:
    """`min_agreement` if it is a share of texts in (0, 1], else a `ValueError` that says so."""
    if isinstance(min_agreement, bool) or not isinstance(min_agreement, (int, float)) or not 0 < min_agreement <= 1:
        raise ValueError(
            f"The least label agreement with {REFERENCE} is a share of the texts in (0, 1], e.g. {MIN_AGREEMENT} "
            f"(99.5%), got {min_agreement!r}."
        )
    return float(min_agreement)


def choose_backend(
    model_dir: str | os.PathLike,
    texts: list[str],
    *,
    batch_size: int = 32,
    time_budget: float = 60.0,
    num_threads: int | None = None,
    min_agreement: float = MIN_AGREEMENT,
    paths: tuple[str, ...] = DEFAULT_PATHS,
    write: bool = False,
) -> BackendChoice:
    r"""
    Times every serving path of `paths` on `texts` (interleaved rounds, median kept) until `time_budget` seconds of
    timing are spent (at least one round), checks its labels against torch float32, and picks the fastest path that
    agrees on at least `min_agreement` of the texts for every task.

    Every path first answers all of `texts` once, untimed: ONNX graphs missing from `model_dir/onnx/` are exported
    to a temporary copy, and the compiled path (`COMPILED` in `paths`) compiles every shape bucket the texts meet,
    neither counted in the budget. With
    `write=True` the pick is written to `model_dir/serving.json` (and an exported graph it needs copied into
    `model_dir/onnx/`). A path that cannot run here (no onnx extra; no C++ compiler for the compiled path, or a
    compilation that fell back to eager) is reported as skipped, with why.

    Example:

    ```python
    >>> choice = choose_backend("outputs/model", load_texts(512), write=True)
    >>> print(format_choice(choice))
    ```
    """
    start = time.perf_counter()
    min_agreement = check_min_agreement(min_agreement)
    unknown = sorted(set(paths) - set(PATHS))
    if unknown or REFERENCE not in paths:
        raise ValueError(f"paths must include {REFERENCE!r} and only name {list(PATHS)}, got {list(paths)}.")
    if not texts:
        raise ValueError("choose_backend needs sample texts (a few hundred of the model's real inputs).")
    num_threads = num_threads or torch.get_num_threads()
    torch.set_num_threads(num_threads)
    model_dir = Path(model_dir)
    with tempfile.TemporaryDirectory(prefix="polyhead-choose-") as scratch:
        runners, results = _runners(model_dir, Path(scratch), paths, num_threads)
        _time_paths(runners, results, texts, batch_size, time_budget)
        chosen = fastest_agreeing(results, min_agreement)
        choice = BackendChoice(
            chosen.name, dict(chosen.settings), results, len(texts), batch_size, num_threads, cpu_description(),
            min_agreement, time.perf_counter() - start, datetime.date.today().isoformat(),
        )  # fmt: skip
        if write:
            write_choice(model_dir, choice, Path(scratch))
    return choice


def sample_texts(
    num_texts: int,
    path: str | os.PathLike | None = None,
    column: str = "text",
    data_dir: str | os.PathLike = DEFAULT_DATA_DIR,
    seed: int = 0,
) -> list[str]:
    """A seeded sample of `num_texts` texts: the `column` of a `.jsonl`/`.csv` file or the lines of a `.txt` file,
    else (no `path`) real tweets from `data_dir`."""
    if path is None:
        if not (Path(data_dir) / TEXT_DATASETS[0] / "test.jsonl").is_file():
            raise FileNotFoundError(
                f"No tweets in {data_dir}: pass --texts with a few hundred of your model's inputs."
            )
        return load_texts(num_texts, data_dir, seed)
    path = Path(path)
    if path.suffix == ".txt":
        texts = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    elif path.suffix in (".jsonl", ".csv"):
        rows = read_jsonl(path) if path.suffix == ".jsonl" else pd.read_csv(path).to_dict("records")
        if rows and column not in rows[0]:
            raise KeyError(f"No column {column!r} in {path} (columns: {list(rows[0])}): pass --text-column.")
        texts = [row[column] for row in rows if isinstance(row[column], str) and row[column].strip()]
    else:
        raise ValueError(f"Sample texts must be a .jsonl, .csv or .txt file, got {path.name}.")
    return random.Random(seed).sample(texts, min(num_texts, len(texts)))


def _runners(model_dir: Path, scratch: Path, paths, num_threads: int) -> tuple[dict[str, Callable], list]:
    """Per measurable path, `(texts, batch_size) -> answers`; and a `PathResult` per path (skipped ones say why)."""
    results = {name: PathResult(name, dict(PATHS[name])) for name in paths}
    runners = {}
    for name in paths:
        if PATHS[name]["backend"] != "torch":
            continue
        if name == COMPILED and (why := compile_unavailable()) is not None:
            results[name].skipped = why  # said before a model loads (compile_model would only warn)
            continue
        # As the handler serves it: the folder's own code, loaded in float32, then cast (or compiled).
        classifier = pipeline(PIPELINE_TASK, model=str(model_dir), trust_remote_code=True)
        if name == COMPILED:
            results[name].settings["dtype"] = resolve_dtype("auto")
            compile_model(classifier.model, results[name].settings["dtype"])
        else:
            classifier.model.to(getattr(torch, PATHS[name]["dtype"]))
        runners[name] = classifier
    onnx_paths = [name for name in paths if PATHS[name]["backend"] == "onnx"]
    if onnx_paths and not onnx_available():
        for name in onnx_paths:
            results[name].skipped = "the onnx extra is not installed (pip install 'polyhead[onnx]')"
        onnx_paths = []
    if onnx_paths:
        folder = _onnx_folder(model_dir, scratch, [PATHS[name]["onnx_file"] for name in onnx_paths])
        for name in onnx_paths:
            runners[name] = onnx_pipeline(folder, PATHS[name]["onnx_file"], num_threads)
    return runners, list(results.values())


def _onnx_folder(model_dir: Path, scratch: Path, files: list[str]) -> Path:
    """`model_dir` if it holds every graph of `files`, else a copy of it (in `scratch`) with both graphs exported."""
    if all((model_dir / name).is_file() for name in files):
        return model_dir
    from polyhead.exporters.onnx import export_onnx

    copy = scratch / "model"
    shutil.copytree(model_dir, copy, ignore=shutil.ignore_patterns("onnx", SETTINGS_FILE))
    export_onnx(copy, int8=True)
    return copy


def _time_paths(runners: dict, results: list[PathResult], texts: list[str], batch_size: int, budget: float) -> None:
    """Warms every path up on all the texts (the compiled path compiles the shape buckets the rounds meet), then
    times interleaved rounds (a new order each round) while the budget lasts; the first round's answers give the
    agreement with torch float32. A compiled path that fell back to eager while warming up is skipped."""
    by_name = {result.name: result for result in results}
    for name, runner in list(runners.items()):
        runner(texts, batch_size=batch_size)
        if name == COMPILED and not is_compiled(runner.model):
            why = getattr(runner.model.__dict__.get("encode"), "fallback", "") or "not compiled (see the warning)"
            by_name[name].skipped = f"it runs eager here: {why}"
            del runners[name]
    answers: dict[str, list[dict]] = {}
    spent, round_index = 0.0, 0
    while round_index == 0 or spent * (round_index + 1) / round_index <= budget:
        for name in random.Random(round_index).sample(sorted(runners), len(runners)):
            begin = time.perf_counter()
            output = runners[name](texts, batch_size=batch_size)
            by_name[name].runs.append(time.perf_counter() - begin)
            answers.setdefault(name, output)
        spent, round_index = spent + sum(by_name[name].runs[-1] for name in runners), round_index + 1
    for name in runners:
        result = by_name[name]
        result.texts_per_second = len(texts) / statistics.median(result.runs)
        result.agreement = label_agreement(answers[name], answers[REFERENCE])


def fastest_agreeing(results: list[PathResult], min_agreement: float = MIN_AGREEMENT) -> PathResult:
    """The fastest measured path whose labels agree with torch float32's on `min_agreement` of the texts for every
    task (torch float32 itself always does)."""
    return max((r for r in results if r.qualifies(min_agreement)), key=lambda r: r.texts_per_second)


def label_agreement(answers: list[dict], reference: list[dict]) -> dict[str, float]:
    """Per task, the share of texts whose answer has the reference's labels (the top label, or the set of labels of
    a multi-label task: any pipeline answer compares by its label set)."""
    tasks = list(reference[0]) if reference else []
    return {
        task: sum(_labels(ours[task]) == _labels(theirs[task]) for ours, theirs in zip(answers, reference))
        / len(reference)
        for task in tasks
    }


def _labels(items: list[dict]) -> frozenset[str]:
    return frozenset(item["label"] for item in items)


def cpu_description() -> str:
    """The CPU's model name and the flags that decide which path is fastest (Linux), else what `platform` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            info = handle.read()
    except OSError:
        return platform.processor() or platform.machine()
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "")
    flags = next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), [])
    found = [flag for flag in CPU_FLAGS if flag in flags]
    return f"{name or platform.machine()} ({', '.join(found) or 'no ' + '/'.join(CPU_FLAGS)})"


def format_choice(choice: BackendChoice) -> str:
    """The measurements as a Markdown table, and the pick."""
    reference = next(r.texts_per_second for r in choice.results if r.name == REFERENCE)
    lines = [
        f"{choice.machine}; {choice.num_threads} threads, {choice.num_texts} texts at batch {choice.batch_size}, "
        f"{choice.date}",
        "",
        f"| path | texts/s | vs {REFERENCE} | lowest task agreement with {REFERENCE} | rounds | |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for result in choice.results:
        if result.texts_per_second is None:
            lines.append(f"| {result.name} | | | | | skipped: {result.skipped} |")
            continue
        low = min(result.agreement.values())
        mark = "**chosen**" if result.name == choice.chosen else ("" if low >= choice.min_agreement else "disagrees")
        lines.append(
            f"| {result.name} | {result.texts_per_second:.1f} | {result.texts_per_second / reference:.2f}x "
            f"| {low:.1%} | {len(result.runs)} | {mark} |"
        )
    lines += [
        "",
        f"eligible: labels equal to {REFERENCE}'s on at least {choice.min_agreement:.1%} of the texts for every task",
        f"chosen: {choice.chosen} {json.dumps(choice.settings)}",
    ]
    return "\n".join(lines)


def write_choice(model_dir: str | os.PathLike, choice: BackendChoice, exported: Path | None = None) -> Path:
    """Writes `model_dir/serving.json` (the pick's settings, and the measurements for the record); an ONNX pick's
    graph is copied from the `exported` copy's `onnx/` when the folder lacks it."""
    model_dir = Path(model_dir)
    onnx_file = choice.settings.get("onnx_file")
    if onnx_file and not (model_dir / onnx_file).is_file():
        (model_dir / onnx_file).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(exported / "model" / onnx_file, model_dir / onnx_file)
    path = model_dir / SETTINGS_FILE
    record = {k: v for k, v in choice.to_dict().items() if k not in ("chosen", "settings")}
    path.write_text(json.dumps({**choice.settings, "chosen": choice.chosen, "measured": record}, indent=2) + "\n")
    return path
