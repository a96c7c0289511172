"""Memory: the peak RSS (`VmHWM`) of a fresh subprocess per variant, loading plus running the same inputs, also shown
above that process's RSS after imports."""

import dataclasses
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from polyhead.benchmark.inputs import DEFAULT_DATA_DIR, task_label_sets
from polyhead.benchmark.variants import multitask_pipeline, single_pipeline


MEMORY_VARIANTS = ("multitask", "single", "separate")


@dataclasses.dataclass
class MemoryResult:
    """Peak RSS (MB) of loading and running one variant in a fresh process, above the after-imports baseline."""

    variant: str
    num_tasks: int
    peak_mb: float
    baseline_mb: float


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
        code = f"from polyhead.benchmark.memory import memory_child; memory_child({handle.name!r})"
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    finally:
        os.unlink(handle.name)
    if done.returncode != 0:
        raise RuntimeError(f"Memory benchmark of {variant!r} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return MemoryResult(variant, num_tasks, result["peak_mb"], result["baseline_mb"])


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
