"""The benchmark on a tiny random encoder: structure of the report, table and JSON (no timing assertions)."""

import json
import re
import statistics
import sys
from pathlib import Path

import pytest

from polyhead import benchmark


ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory) -> str:
    return benchmark.save_tiny_encoder(tmp_path_factory.mktemp("encoder"))


def test_throughput_has_every_variant_and_positive_speeds(tiny_encoder, tmp_path):
    texts = benchmark.synthetic_texts(12)
    onnx = benchmark.onnx_available()
    shared = {}
    rows = benchmark.measure_throughput(
        tiny_encoder, texts, [2, 4], [1, 4], repeats=2, data_dir=None, int8=True,
        onnx_dir=tmp_path if onnx else None, shared=shared, bf16=True,
    )  # fmt: skip
    found = {(row.num_tasks, row.batch_size, row.variant) for row in rows}
    multitask_variants = ("multitask", "separate", "multitask-int8", "multitask-bf16")
    multitask_variants += ("onnx-fp32", "onnx-int8") if onnx else ()
    for batch_size in (1, 4):
        assert {(2, batch_size, v) for v in ("single", "encoder", "encoder+tok")} <= found
        for tasks in (2, 4):
            assert {(tasks, batch_size, v) for v in multitask_variants} <= found
    assert (2, 4, "multitask-unsorted") in found and (2, 1, "multitask-unsorted") not in found
    for row in rows:  # timings are kept unrounded: the rate is exactly texts over the median run, on any machine
        assert row.texts_per_second > 0 and len(row.runs) == 2
        assert row.texts_per_second == row.num_texts / statistics.median(row.runs)
    if onnx:
        assert set(shared["onnx"]) == {2, 4}
        assert all(max(export.max_abs_diff.values()) <= 1e-4 for export in shared["onnx"].values())


def test_memory_runs_in_a_fresh_process(tiny_encoder):
    result = benchmark.measure_memory(tiny_encoder, 3, benchmark.synthetic_texts(8), "multitask", 4, data_dir=None)
    assert result.variant == "multitask" and result.num_tasks == 3
    # Loading and running a model grows the process (a peak inherited from the parent would read as 0 growth).
    assert result.baseline_mb > 0 and result.peak_mb > 1


def test_task_label_sets_from_real_data_or_synthetic():
    synthetic = benchmark.task_label_sets(6, None)
    assert len(synthetic) == 6
    assert synthetic["go_emotions"]["problem_type"] == "multi_label_classification"
    with pytest.raises(ValueError, match="At most 6 tasks"):
        benchmark.task_label_sets(7, None)
    if (benchmark.DEFAULT_DATA_DIR / "tweet_emotion").is_dir():
        real = benchmark.task_label_sets(3)
        assert real["tweet_hate"]["labels"] == ["hate", "not-hate"]


def test_script_tiny_run_prints_tables_and_writes_json(tmp_path, capsys):
    import benchmark as script  # scripts/benchmark.py

    output = tmp_path / "bench.json"
    argv = ["--tiny", "--tasks", "2,3", "--batch-sizes", "1,4", "--num-texts", "8", "--repeats", "1"]
    argv += ["--skip-accuracy", "--skip-int8", "--output", str(output)]
    argv += [] if benchmark.onnx_available() else ["--skip-onnx"]
    script.main(argv)
    printed = capsys.readouterr().out
    assert "### Inference throughput" in printed and "### Peak memory" in printed
    assert "(a) multitask pipeline, all T tasks" in printed and "(c) T text-classification pipelines" in printed
    report = json.loads(output.read_text())
    assert report["settings"]["task_counts"] == [2, 3] and report["accuracy"] is None
    assert {row["variant"] for row in report["memory"]} == {"multitask", "single", "separate"}
    for row in report["throughput"]:  # unrounded in the JSON
        assert row["texts_per_second"] == row["num_texts"] / statistics.median(row["runs"])
    if benchmark.onnx_available():
        assert "(a) multitask on ONNX Runtime int8" in printed and "### ONNX exports" in printed
        assert [row["num_tasks"] for row in report["onnx"]] == [2, 3]
        assert {"model.safetensors", "onnx/model.onnx", "onnx/model_quantized.onnx"} <= set(
            report["onnx"][0]["file_mib"]
        )
    _check_ratios(printed, report)
    # the plots the docs' benchmarks page shows, next to the JSON (no memory of int8: no accuracy plot here)
    written = {path.name for path in tmp_path.glob("*.png")}
    assert {"bench_throughput.png", "bench_memory.png"} <= written and "bench_accuracy.png" not in written
    assert ("bench_runtimes.png" in written) is benchmark.onnx_available()


def _check_ratios(printed: str, report: dict) -> None:
    # The "vs (b)" and "vs (a)" columns are each row's JSON texts/s over (b)'s / (a)'s, rounded to 2 decimals.
    from polyhead.benchmark.tables import LABELS

    variants = {label: variant for variant, label in LABELS.items()}
    speeds = {(r["num_tasks"], r["batch_size"], r["variant"]): r["texts_per_second"] for r in report["throughput"]}
    checked = 0
    for line in printed.splitlines():
        match = re.match(r"\| (\d+) \| (\d+) \| (.+?) \| [\d.]+ \| ([\d.]+)x \|.* \| ([\d.]+)x \|$", line)
        if match:
            tasks, batch, variant = int(match[1]), int(match[2]), variants[match[3]]
            rate = speeds[(tasks, batch, variant)]
            assert float(match[4]) == pytest.approx(rate / speeds[(2, batch, "single")], abs=0.0051)
            assert float(match[5]) == pytest.approx(rate / speeds[(tasks, batch, "multitask")], abs=0.0051)
            checked += 1
    assert checked == len(report["throughput"])


@pytest.mark.skipif(not (benchmark.DEFAULT_DATA_DIR / "tweet_emotion").is_dir(), reason="needs ../shared/data")
def test_accuracy_with_the_training_code(tmp_path):
    config = benchmark.accuracy_config("unused", tmp_path, max_train_samples=64, max_eval_samples=32, tiny=True)
    onnx = benchmark.onnx_available()
    result = benchmark.measure_accuracy(config, int8=True, onnx=onnx)
    assert set(result.multitask) == set(result.single_task) == {"emotion", "hate", "offensive", "average"}
    assert set(result.int8) == set(result.multitask)
    if onnx:
        assert set(result.onnx_fp32) == set(result.onnx_int8) == set(result.multitask)
        # fp32 ONNX scores what torch scores (logits agree within 1e-4)
        assert result.onnx_fp32["average"]["accuracy"] == pytest.approx(
            result.multitask["average"]["accuracy"], abs=2e-3
        )
        assert benchmark.onnx_accuracy_table(result).count("\n") == 5
    assert result.multitask_train_examples_per_second > 0
    assert set(result.single_task_train_examples_per_second) == {"emotion", "hate", "offensive"}
    table = benchmark.accuracy_table(result)
    assert table.count("\n") == 5 and "int8 multitask acc" in table
    assert result.single_task_combined_examples_per_second > 0
    assert "multitask (all tasks, one model)" in benchmark.training_table(result)


def test_accuracy_plot_has_one_bar_per_task_and_model(tmp_path):
    from polyhead.benchmark.plots import plot_accuracy

    scores = {"emotion": {"accuracy": 0.5, "f1_macro": 0.4}, "hate": {"accuracy": 0.6, "f1_macro": 0.5}}
    path = plot_accuracy({"multitask": scores, "single_task": scores, "int8": None}, tmp_path / "accuracy.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_scripts_list_types_parse_and_refuse_in_one_place():
    import argparse

    from polyhead.benchmark.cli import int_at_least, int_list, name_list, pair_list

    assert int_list(1, 6)("3, 6") == [3, 6] and int_list(0)("0,2") == [0, 2]
    for bad, message in (
        ("3,,6", "no empty item"),
        ("3,3", "3 repeated"),
        ("0", "'0': must be an integer from 1 to 6"),
    ):
        with pytest.raises(argparse.ArgumentTypeError, match=message):
            int_list(1, 6)(bad)
    with pytest.raises(argparse.ArgumentTypeError, match="'x' in '3,x': not an integer"):
        int_list(1, 6)("3,x")
    assert name_list(("a", "b"))("b,a") == ["b", "a"] and name_list(allow_empty=True)("") == []
    with pytest.raises(argparse.ArgumentTypeError, match="'c' in 'a,c': choose from a, b"):
        name_list(("a", "b"))("a,c")
    assert pair_list("task", "folder")("a=x, b=y") == {"a": "x", "b": "y"} and pair_list("task", "folder")("") == {}
    for bad, message in (("a", "'a': write task=folder"), ("a=x,a=y", "task a given twice")):
        with pytest.raises(argparse.ArgumentTypeError, match=message):
            pair_list("task", "folder")(bad)
    assert int_at_least(1)("4") == 4
    with pytest.raises(argparse.ArgumentTypeError, match="'0': must be an integer >= 1"):
        int_at_least(1)("0")


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--tasks", "0"], "argument --tasks: '0': must be an integer from 1 to 6"),
        (["--tasks", "3,x"], "argument --tasks: 'x' in '3,x': not an integer from 1 to 6"),
        (["--tasks", "9"], "argument --tasks: '9': must be an integer from 1 to 6"),
        (["--batch-sizes", "0"], "argument --batch-sizes: '0': must be an integer >= 1"),
    ],
)
def test_script_refuses_bad_lists_with_its_usage_before_any_work(flags, message, monkeypatch, capsys):
    import benchmark as script  # scripts/benchmark.py

    monkeypatch.setattr(script, "run_benchmark", lambda **kwargs: pytest.fail("the benchmark ran"))
    with pytest.raises(SystemExit) as stopped:
        script.main(["--tiny", *flags])
    error = capsys.readouterr().err
    assert stopped.value.code == 2 and error.startswith("usage: ") and message in error


def test_script_checks_the_output_path_before_any_work(tmp_path, monkeypatch):
    import benchmark as script  # scripts/benchmark.py

    monkeypatch.setattr(script, "run_benchmark", lambda **kwargs: pytest.fail("the benchmark ran"))
    (tmp_path / "folder.json").mkdir()
    (tmp_path / "file").write_text("")
    for flags, message in (
        (["--output", str(tmp_path / "folder.json")], "--output .*folder.json' is a folder: give a file path"),
        (["--output", str(tmp_path / "file" / "b.json")], "--output .*: .*file is a file, not a folder"),
        (["--work-dir", str(tmp_path / "file")], "--work-dir .*: .*file is a file, not a folder"),
    ):
        with pytest.raises(SystemExit, match=f"^error: {message}"):
            script.main(["--tiny", "--output", str(tmp_path / "b.json"), *flags])
