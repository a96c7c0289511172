"""A model folder served by the real Hugging Face Inference Toolkit, and concurrent clients to load it.

[`toolkit_server`] starts the toolkit's `webservice_starlette` app as its container entrypoint does (`uvicorn
webservice_starlette:app` in an app folder holding a copy of that module, `HF_MODEL_DIR` naming the model folder) with
the interpreter of an environment that has the toolkit (`scripts/toolkit_env.sh` builds `.venv-toolkit/`), on
127.0.0.1 only. [`post`] sends one request; [`run_load`] runs bounded concurrent clients and records each answer's
status, latency and body. Used by `tests/test_toolkit_server.py` and `scripts/bench_endpoints.py`; only the standard
library talks HTTP here.
"""

import http.client
import json
import math
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


TOOLKIT_APP = "webservice_starlette"
HOST = "127.0.0.1"  # never another address: load tests stay on this machine


@dataclass
class ToolkitServer:
    """A running toolkit server: its port, process and log file."""

    port: int
    process: subprocess.Popen
    log: Path

    def rss_bytes(self) -> int:
        """The server process's resident memory (Linux /proc)."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError(f"no VmRSS for process {self.process.pid}")

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


@contextmanager
def toolkit_server(
    python: str | os.PathLike,
    model_dir: str | os.PathLike,
    workdir: str | os.PathLike,
    env: dict[str, str] | None = None,
    start_timeout: float = 300.0,
) -> Iterator[ToolkitServer]:
    """Serves `model_dir` with the toolkit installed for `python`; stops the server on exit.

    The environment is this process's without PYTHONPATH/VIRTUAL_ENV (so nothing of this project is importable), with
    `HF_MODEL_DIR`, offline Hub settings, `HF_HOME` under `workdir`, and `env` on top (e.g. `POLYHEAD_BACKEND`).
    """
    workdir = Path(workdir)
    app_dir = workdir / "app"
    app_dir.mkdir(parents=True, exist_ok=True)
    source = _toolkit_module_file(python, TOOLKIT_APP)
    shutil.copy(source, app_dir / f"{TOOLKIT_APP}.py")  # the container copies it to /app, uvicorn imports it there
    port = free_port()
    server_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    server_env.update(
        HF_MODEL_DIR=str(Path(model_dir).resolve()),
        HF_HUB_OFFLINE="1",
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HOME=str(workdir / "hf_home"),
        TOKENIZERS_PARALLELISM="false",
        **(env or {}),
    )
    uvicorn = Path(python).parent / "uvicorn"
    log = workdir / f"server-{port}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [str(uvicorn), f"{TOOLKIT_APP}:app", "--host", HOST, "--port", str(port)],
            cwd=app_dir,
            env=server_env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    server = ToolkitServer(port, process, log)
    try:
        _wait_healthy(server, start_timeout)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _toolkit_module_file(python: str | os.PathLike, module: str) -> str:
    code = f"import importlib.util; print(importlib.util.find_spec('huggingface_inference_toolkit.{module}').origin)"
    done = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"{python} has no huggingface_inference_toolkit: {done.stderr[-2000:]}")
    return done.stdout.strip()


def _wait_healthy(server: ToolkitServer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"the toolkit server exited with {server.process.returncode}:\n{server.log_tail()}")
        try:
            connection = http.client.HTTPConnection(HOST, server.port, timeout=5)
            connection.request("GET", "/health")
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"the toolkit server did not answer /health within {timeout:.0f} s:\n{server.log_tail()}")


def post(
    connection: http.client.HTTPConnection, body: Any, raw: bytes | None = None, content_type: str = "application/json"
) -> tuple[int, Any]:
    """POSTs `body` as JSON (or `raw` bytes) to `/`; returns the status and the decoded JSON answer."""
    data = raw if raw is not None else json.dumps(body).encode()
    connection.request("POST", "/", body=data, headers={"Content-Type": content_type})
    response = connection.getresponse()
    payload = response.read()
    try:
        return response.status, json.loads(payload)
    except ValueError:
        return response.status, payload.decode(errors="replace")


@dataclass
class LoadResult:
    """Per request, in completion order: (client, request index, status, latency in seconds, answer)."""

    seconds: float
    records: list[tuple[int, int, int, float, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # connection failures, not HTTP statuses

    @property
    def requests_per_second(self) -> float:
        return len(self.records) / self.seconds

    def latency_percentile(self, percent: float, statuses: tuple[int, ...] = (200,)) -> float:
        latencies = sorted(record[3] for record in self.records if record[2] in statuses)
        if not latencies:
            return float("nan")
        return latencies[max(0, math.ceil(percent / 100 * len(latencies)) - 1)]  # nearest rank


def run_load(port: int, requests: list[Any], clients: int, seconds: float, timeout: float = 120.0) -> LoadResult:
    """`clients` threads, each with its own keep-alive connection, send `requests` round-robin (client i starts at
    request i) for `seconds` (a request under way then still finishes)."""
    result = LoadResult(seconds=seconds)
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def client(number: int) -> None:
        connection = http.client.HTTPConnection(HOST, port, timeout=timeout)
        index = number
        while time.monotonic() < stop_at:
            request = requests[index % len(requests)]
            start = time.perf_counter()
            try:
                status, answer = post(connection, request)
            except (OSError, http.client.HTTPException) as error:
                with lock:
                    result.errors.append(f"client {number}: {type(error).__name__}: {error}")
                connection.close()
                connection = http.client.HTTPConnection(HOST, port, timeout=timeout)
                continue
            with lock:
                result.records.append((number, index % len(requests), status, time.perf_counter() - start, answer))
            index += 1
        connection.close()

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(number,), daemon=True) for number in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + timeout)
    result.seconds = time.monotonic() - started
    return result
