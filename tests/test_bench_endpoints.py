"""scripts/bench_endpoints.py's arithmetic and table (the server runs in tests/test_toolkit_server.py)."""

import importlib.util
import math
import re
from pathlib import Path

import pytest

from polyhead.benchmark.endpoints import LoadResult


def _bench_script():
    path = Path(__file__).resolve().parent.parent / "scripts" / "bench_endpoints.py"
    spec = importlib.util.spec_from_file_location("bench_endpoints", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_latency_percentiles_and_rate_count_only_answered_requests():
    records = [(0, 0, 200, latency / 100, {}) for latency in range(1, 101)]  # 0.01 s ... 1.00 s
    result = LoadResult(seconds=10.0, records=[*records, (1, 0, 400, 50.0, {"error": "x"})])
    assert result.requests_per_second == 10.1
    assert result.latency_percentile(50) == 0.5 and result.latency_percentile(99) == 0.99
    assert result.latency_percentile(100, statuses=(400,)) == 50.0
    assert math.isnan(LoadResult(seconds=1.0).latency_percentile(50))


def test_the_report_table_has_a_row_per_setting_and_the_batch_sweep():
    bench = _bench_script()
    row = {"requests": 600, "requests_per_second": 20.0, "p50_ms": 350.0, "p99_ms": 650.0, "statuses": [200]}
    report = {
        "date": "2026-12-05 20:42 UTC", "cpu": "Some CPU", "cores": 2, "encoder": "all-MiniLM-L6-v2", "clients": 8,
        "seconds": 30.0, "texts": "tweet", "cpu_flags": [], "load_average_at_start": 16.0, "load_average_at_end": 17.0,
        "results": [{"backend": "onnx", "threads": "default", "connection_errors": 0, **row}],
        "batches": {"onnx": {"list_size": 64, "by_batch_size": {8: {"seconds": 2.0, "texts_per_second": 32.0}},
                             "max_inputs_request_s": 4.5}},
    }  # fmt: skip
    table = bench.format_report(report)
    assert "| onnx | default | 20.0 | 350 | 650 | 600 | [200] | 0 |" in table
    assert "| 8 | 2.00 | 32 |" in table and "took 4.50 s" in table and "load average 16.0" in table


def test_the_script_needs_the_toolkit_python_and_a_writable_out_before_building_the_model(tmp_path, monkeypatch):
    bench = _bench_script()
    monkeypatch.setattr(bench, "build_model", lambda *args: pytest.fail("the model was built"))
    missing = tmp_path / "venv" / "bin" / "python"
    expected = f"^error: no toolkit Python at {re.escape(str(missing))}: run `bash scripts/toolkit_env.sh` or pass"
    with pytest.raises(SystemExit, match=expected + " --toolkit-python"):
        bench.main(["--tiny", "--toolkit-python", str(missing), "--out", str(tmp_path / "ep.json")])
    python = tmp_path / "python"
    python.write_text("")
    with pytest.raises(SystemExit, match=r"^error: --out '.*' is a folder: give a file path"):
        bench.main(["--tiny", "--toolkit-python", str(python), "--out", str(tmp_path)])


def test_the_script_refuses_bad_lists_with_its_usage(capsys):
    bench = _bench_script()
    for flags, message in (
        (["--backends", "onnx,tf"], "argument --backends: 'tf' in 'onnx,tf': choose from onnx, torch"),
        (["--threads", "default,-1"], "argument --threads: '-1' in 'default,-1': give default or an integer >= 0"),
        (["--batch-sizes", "8,x"], "argument --batch-sizes: 'x' in '8,x': not an integer >= 1"),
    ):
        with pytest.raises(SystemExit) as stopped:
            bench.parse_args(flags)
        error = capsys.readouterr().err
        assert stopped.value.code == 2 and error.startswith("usage: ") and message in error
    assert bench.parse_args(["--threads", "default,0,2"]).threads == ["default", "0", "2"]
