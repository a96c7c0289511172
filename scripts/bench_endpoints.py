"""Serving benchmark through the real Hugging Face Inference Toolkit server (as Inference Endpoints run it).

Builds a 3-task model from the all-MiniLM-L6-v2 encoder with random heads (the demo's shape; labels of the tweet
tasks when the shared data is there), saves it with its ONNX export, serves it with `.venv-toolkit/`
(`bash scripts/toolkit_env.sh`) on 127.0.0.1 and measures, for each backend (ONNX, torch):

- `clients`: C concurrent clients (default 8), one tweet per request, for S seconds: req/s, p50/p99 latency, for
  each POLYHEAD_NUM_THREADS setting (default: the handler's default, then 0 = every core);
- `batch`: one client sending a list of N tweets with each batch_size: texts/s (the default batch size for lists),
  and how long a request of POLYHEAD_MAX_INPUTS texts holds the server.

Prints a table and writes JSON. Example: `python scripts/bench_endpoints.py --data-dir ../shared/data --out
outputs/bench_endpoints.json`; `--tiny` runs a tiny random encoder in seconds (smoke test).
"""

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from polyhead.benchmark.cli import check_outputs, comma_list, int_at_least, int_list, name_list, one_line_errors
from polyhead.benchmark.endpoints import post, run_load, toolkit_server
from polyhead.benchmark.inputs import load_texts, save_tiny_encoder, synthetic_texts, task_label_sets
from polyhead.serving.handler import DEFAULT_MAX_INPUTS


ROOT = Path(__file__).resolve().parent.parent
BACKENDS = ("onnx", "torch")


def thread_setting(value: str) -> str:
    """One POLYHEAD_NUM_THREADS setting: `default` (the handler's own) or an integer >= 0 (0: every core)."""
    if value != "default" and not value.isdigit():
        raise ValueError("give default or an integer >= 0")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--backends", type=name_list(BACKENDS), default="onnx,torch", help="Backends, comma-separated (onnx, torch)."
    )
    parser.add_argument("--clients", type=int_at_least(1), default=8, help="Concurrent clients.")
    parser.add_argument("--seconds", type=float, default=30.0, help="Seconds of load per setting.")
    parser.add_argument(
        "--threads",
        type=comma_list(thread_setting, "POLYHEAD_NUM_THREADS settings"),
        default="default,0",
        help="POLYHEAD_NUM_THREADS settings (default: the handler's own).",
    )
    parser.add_argument(
        "--batch-sizes", type=int_list(1), default="1,8,16,32,64", help="batch_size values for the list requests."
    )
    parser.add_argument("--list-size", type=int_at_least(1), default=64, help="Texts per list request (batch sweep).")
    parser.add_argument(
        "--repeats", type=int_at_least(1), default=3, help="List requests per batch size (median kept)."
    )
    parser.add_argument(
        "--max-inputs", type=int_at_least(1), default=DEFAULT_MAX_INPUTS, help="Texts of the largest request timed."
    )
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"), help="The shared data folder.")
    parser.add_argument("--tiny", action="store_true", help="Tiny random encoder and synthetic texts (smoke test).")
    parser.add_argument("--toolkit-python", default=str(ROOT / ".venv-toolkit" / "bin" / "python"))
    parser.add_argument("--out", default="outputs/bench_endpoints.json", help="Where the JSON report goes.")
    return parser.parse_args(argv)


def build_model(folder: Path, tiny: bool, data_dir: str | None) -> str:
    """A 3-task model (random heads) saved to `folder` with `onnx/model.onnx`; returns the encoder's name."""
    from transformers import AutoTokenizer

    from polyhead import MultitaskModel
    from polyhead.encoders import local_encoder_path
    from polyhead.exporters.onnx import export_onnx
    from polyhead.saving import save_model_folder

    encoder = save_tiny_encoder(folder.parent / "tiny-encoder") if tiny else local_encoder_path("all-MiniLM-L6-v2")
    torch.manual_seed(0)
    model = MultitaskModel.from_encoder_pretrained(encoder, task_label_sets(3, data_dir)).eval()
    save_model_folder(model, AutoTokenizer.from_pretrained(encoder), folder)
    export_onnx(folder)
    return "tiny random BERT" if tiny else "all-MiniLM-L6-v2"


def measure_clients(server, texts: list[str], clients: int, seconds: float) -> dict:
    requests = [{"inputs": text} for text in texts]
    run_load(server.port, requests, clients, seconds=min(5.0, seconds))  # warm-up
    result = run_load(server.port, requests, clients, seconds=seconds)
    statuses = sorted({record[2] for record in result.records})
    return {
        "requests": len(result.records),
        "seconds": result.seconds,
        "requests_per_second": result.requests_per_second,
        "p50_ms": 1000 * result.latency_percentile(50),
        "p99_ms": 1000 * result.latency_percentile(99),
        "statuses": statuses,
        "connection_errors": len(result.errors),
        "rss_mib": server.rss_bytes() / 2**20,
    }


def measure_batches(server, texts: list[str], batch_sizes: list[int], repeats: int, max_inputs: int) -> dict:
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=600)
    timings = {}
    for batch_size in batch_sizes:
        seconds = []
        for _ in range(repeats):
            start = time.perf_counter()
            status, answer = post(connection, {"inputs": texts, "parameters": {"batch_size": batch_size}})
            seconds.append(time.perf_counter() - start)
            assert status == 200, answer
        median = statistics.median(seconds)
        timings[batch_size] = {"seconds": median, "texts_per_second": len(texts) / median}
    largest = (texts * (max_inputs // len(texts) + 1))[:max_inputs]
    start = time.perf_counter()
    status, answer = post(connection, {"inputs": largest})  # the handler's default batch size
    assert status == 200, answer
    return {"list_size": len(texts), "by_batch_size": timings, "max_inputs_request_s": time.perf_counter() - start}


def run(args: argparse.Namespace) -> dict:
    data_dir = None if args.tiny or not Path(args.data_dir, "tweet_emotion").is_dir() else args.data_dir
    texts = load_texts(max(256, args.list_size), data_dir) if data_dir else synthetic_texts(256)
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpu": _cpu_model(),
        "cores": _cores(),
        "python": platform.python_version(),
        "clients": args.clients,
        "seconds": args.seconds,
        "cpu_flags": _cpu_flags(),
        "load_average_at_start": os.getloadavg()[0],  # other processes on the host
        "texts": "tweet" if data_dir else "synthetic text",
        "results": [],
        "batches": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "model"
        report["encoder"] = build_model(folder, args.tiny, data_dir)
        for backend in args.backends:
            for index, threads in enumerate(args.threads):
                env = {"POLYHEAD_BACKEND": backend}
                if threads != "default":
                    env["POLYHEAD_NUM_THREADS"] = threads
                with toolkit_server(args.toolkit_python, folder, Path(tmp) / f"{backend}-{threads}", env) as server:
                    row = {"backend": backend, "threads": threads}
                    row.update(measure_clients(server, texts, args.clients, args.seconds))
                    report["results"].append(row)
                    print(_row(row), flush=True)
                    if index == 0:  # the list defaults are measured once per backend, with the default threads
                        sample = texts[: args.list_size]
                        report["batches"][backend] = measure_batches(
                            server, sample, args.batch_sizes, args.repeats, args.max_inputs
                        )
    return report


def _row(row: dict) -> str:
    return (
        f"| {row['backend']} | {row['threads']} | {row['requests_per_second']:.1f} | {row['p50_ms']:.0f} | "
        f"{row['p99_ms']:.0f} | {row['requests']} | {row['statuses']} | {row['connection_errors']} |"
    )


def format_report(report: dict) -> str:
    lines = [
        f"{report['date']}, {report['cpu']} ({report['cores']} cores), {report['encoder']}, 3 tasks, "
        f"{report['clients']} clients x {report['seconds']:.0f} s, one {report['texts']} a request",
        f"CPU flags: {', '.join(report['cpu_flags']) or 'no AMX/AVX-512 bf16'}; 1-minute load average "
        f"{report['load_average_at_start']:.1f} at the start, {report.get('load_average_at_end', float('nan')):.1f} "
        "at the end",
        "",
        "| backend | POLYHEAD_NUM_THREADS | req/s | p50 ms | p99 ms | requests | statuses | connection errors |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
        *(_row(row) for row in report["results"]),
    ]
    for backend, batches in report["batches"].items():
        lines += ["", f"{backend}: one list of {batches['list_size']} texts, by batch_size", ""]
        lines += ["| batch_size | seconds | texts/s |", "| --- | --- | --- |"]
        for size, timing in batches["by_batch_size"].items():
            lines.append(f"| {size} | {timing['seconds']:.2f} | {timing['texts_per_second']:.0f} |")
        lines.append(f"\nA request of the largest allowed list took {batches['max_inputs_request_s']:.2f} s.")
    return "\n".join(lines)


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def _cpu_flags() -> list[str]:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            return sorted(set(line.split(":", 1)[1].split()) & {"amx_bf16", "avx512_bf16", "avx512f", "avx2"})
    return []


def _cores() -> int:
    return len(os.sched_getaffinity(0))


def check_arguments(args: argparse.Namespace) -> None:
    """Raises a `ValueError` naming the fix when the report cannot be written or there is no toolkit Python: before
    the model is built."""
    check_outputs(args.out, "--out")
    if not Path(args.toolkit_python).is_file():
        raise ValueError(
            f"no toolkit Python at {args.toolkit_python}: run `bash scripts/toolkit_env.sh` or pass --toolkit-python."
        )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    with one_line_errors():  # no toolkit, an unwritable --out, missing data: one line, exit status 1
        check_arguments(args)
        measure(args)


def measure(args: argparse.Namespace) -> None:
    report = run(args)
    report["load_average_at_end"] = os.getloadavg()[0]
    print(format_report(report))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
