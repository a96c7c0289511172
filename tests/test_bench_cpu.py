"""The CPU acceleration benchmark (`polyhead.benchmark.cpu`, `scripts/bench_cpu.py`) on the tiny encoder: FLOPs as
counted match the encoder's arithmetic, the rows and their fractions of the peak are consistent, one process per
runtime. Nothing here depends on the machine's speed."""

import re

import pytest
import torch
from helpers import script_main
from transformers import AutoTokenizer

from polyhead import MultitaskModel
from polyhead.benchmark import cpu
from polyhead.benchmark.inputs import save_tiny_encoder, synthetic_texts
from polyhead.saving import save_model_folder
from polyhead.testing_utils import TINY_TASKS


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> str:
    encoder = save_tiny_encoder(tmp_path_factory.mktemp("encoder") / "tiny")
    torch.manual_seed(0)
    model = MultitaskModel.from_encoder_pretrained(encoder, tasks=TINY_TASKS, pooling="native").eval()
    return str(save_model_folder(model, AutoTokenizer.from_pretrained(encoder), tmp_path_factory.mktemp("m") / "m"))


def test_counted_flops_are_the_encoders_matmuls(folder):
    texts = synthetic_texts(6)
    model = MultitaskModel.from_pretrained(folder)
    config, tokenizer = model.config.encoder, AutoTokenizer.from_pretrained(folder)
    h, inner, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    labels = sum(len(spec["labels"]) for spec in model.config.tasks.values())
    expected = 0
    for batch in cpu.pipeline_batches(tokenizer, texts, 3, 512):
        rows, length = batch["input_ids"].shape
        per_layer = 2 * rows * length * (4 * h * h + 2 * h * inner) + 2 * 2 * rows * length * length * h
        expected += layers * per_layer + 2 * rows * h * h + 2 * rows * h * labels  # + native pooler + heads
    assert cpu.encoder_flops(folder, texts, 3) == expected


def test_pipeline_batches_are_sorted_and_padded_per_batch(folder):
    tokenizer = AutoTokenizer.from_pretrained(folder)
    texts = ["a b c d e f", "a", "a b c"]
    assert [b["input_ids"].shape[1] for b in cpu.pipeline_batches(tokenizer, texts, 2, 512)] == [5, 8]
    assert [b["input_ids"].shape for b in cpu.pipeline_batches(tokenizer, texts, 1, 512)][1] == (1, 3)


def test_matmul_peak_and_training_speed_report_rates():
    assert cpu.matmul_peak("float32", size=64, seconds=0.05) > 0
    assert cpu.matmul_peak("int8", size=64, seconds=0.05) > 0
    assert cpu.layer_peak("float32", (8, 16, 32), seconds=0.05) > 0
    assert cpu.peak_dtype("onnx-int8", "int8 (onnxruntime)") == "int8"
    assert cpu.peak_dtype("torch-compiled", "float32 compiled") == "float32"  # a CPU without bfloat16


def test_layer_shapes_are_the_batches_mean_tokens_and_the_encoders_widths(folder):
    tokenizer, config = AutoTokenizer.from_pretrained(folder), MultitaskModel.from_pretrained(folder).config.encoder
    texts = ["a b c d e f", "a", "a b c", "a b"]
    lengths = [b["input_ids"].numel() for b in cpu.pipeline_batches(tokenizer, texts, 2, 512)]
    assert len(set(lengths)) == 2  # two batches of different padded sizes: the mean is not one of them
    shapes = cpu.layer_shapes(folder, texts, 2)
    assert shapes == (round(sum(lengths) / 2), config.hidden_size, config.intermediate_size)


@pytest.fixture
def compile_options(monkeypatch):
    """`torch.compile` replaced by a stand-in that records the inductor options each call gets (without the guard
    filter of lean guards) and returns the function uncompiled; the list of recorded option sets."""
    from polyhead.serving import compiled

    options = []
    monkeypatch.setattr(compiled, "compile_unavailable", lambda: None)

    def fake_compile(fn, **kwargs):
        options.append({key: value for key, value in kwargs["options"].items() if key != "guard_filter_fn"})
        return fn

    monkeypatch.setattr(compiled.torch, "compile", fake_compile)
    return options


def test_the_autotune_small_variant_compiles_batch_1_with_max_autotune(folder, compile_options):
    from polyhead.serving import compiled

    runner = cpu.build_runner("torch-compiled-autotune-small", folder, None, torch.get_num_threads())
    assert compile_options == [compiled.INDUCTOR_OPTIONS, compiled.AUTOTUNE_OPTIONS]
    encode = runner.model.encode
    assert encode.options_for(1) == compiled.AUTOTUNE_OPTIONS and encode.options_for(2) == compiled.INDUCTOR_OPTIONS
    assert cpu._dtype_of(runner).endswith(" compiled, autotune at batch <= 1")
    compile_options.clear()
    plain = cpu.build_runner("torch-compiled", folder, None, torch.get_num_threads())
    assert cpu._dtype_of(plain).endswith(" compiled, cpp_wrapper at batch <= 1")
    # the default compiled row: no autotune, the C++ wrapper at batch 1
    assert compile_options == [compiled.INDUCTOR_OPTIONS, {**compiled.INDUCTOR_OPTIONS, **compiled.SMALL_BATCH_EXTRA}]


def test_the_compiled_rows_profile_names_inductors_generated_kernels(folder, compile_options):
    plain = cpu.build_runner("torch-compiled", folder, None, torch.get_num_threads())
    compile_options.clear()
    twin = cpu.kernel_profiled(plain, folder)
    assert twin is not plain and twin.model.dtype == plain.model.dtype
    # the twin's every option set is the timed runner's plus the kernel profile; the timed runner is untouched
    assert compile_options == [
        {**opts, **cpu.KERNEL_PROFILE} for opts in (plain.model.encode.options_for(b) for b in (32, 1))
    ]
    assert not any("cpp.enable_kernel_profile" in plain.model.encode.options_for(b) for b in (32, 1))
    eager = cpu.build_runner("torch-bf16", folder, None, torch.get_num_threads())
    assert cpu.kernel_profiled(eager, folder) is eager  # nothing generated to list: profiled as it is
    profile = cpu._profile_call(lambda: eager(synthetic_texts(4), batch_size=4))
    assert "aten::" in profile and "self CPU time of every event:" in profile.splitlines()[-1]


def test_training_speed_times_both_precisions(folder):
    speed = cpu.training_speed(folder, synthetic_texts(16), batch_size=4, steps=2, repeats=1, profile=["train-bf16"])
    assert set(speed) == {"train-fp32", "train-bf16"}
    assert "aten::mm" in speed["train-bf16"]["profile"] and "profile" not in speed["train-fp32"]  # backward's matmuls
    assert all(row["texts_per_second"] > 0 and len(row["runs"]) == 1 for row in speed.values())
    # the Trainer's own optimizer (fused AdamW from torch 2.8), not a hand-built unfused one
    assert all(row["optimizer"].startswith("AdamW(") and "fused=True" in row["optimizer"] for row in speed.values())


def test_training_speed_repeats_the_texts_when_there_are_fewer_than_a_run(folder):
    speed = cpu.training_speed(folder, synthetic_texts(3), batch_size=4, steps=2, repeats=1)
    for row in speed.values():  # 2 steps of 4 texts from 3 texts: cycled, not an empty batch
        assert row["texts"] == 8 and row["texts_per_second"] == 8 / row["runs"][0]
    with pytest.raises(ValueError, match="needs texts"):
        cpu.training_speed(folder, [], batch_size=4, steps=2, repeats=1)


@pytest.mark.parametrize(
    "flags, status, message",
    [
        (["--test-sets", "sst2"], 2, "argument --test-sets: 'sst2': write task=data_folder"),
        (["--variants", "torch-fp32,bogus"], 2, "argument --variants: 'bogus' in 'torch-fp32,bogus': choose from"),
        (["--num-texts", "0"], 2, "argument --num-texts: '0': must be an integer >= 1"),
        (["--model", "{tmp}/missing"], 1, "error: {tmp}/missing: no such folder; give a multitask model folder"),
        (["--test-sets", "sst2={tmp}"], 1, "error: --test-sets sst2={tmp}: no {tmp}/test.jsonl"),
        (["--output", "{tmp}"], 1, "error: --output '{tmp}' is a folder: give a file path"),
    ],
)
def test_the_script_refuses_bad_arguments_before_any_model_is_built(
    flags, status, message, tmp_path, monkeypatch, capsys
):
    import polyhead.saving

    monkeypatch.setattr(polyhead.saving, "save_model_folder", lambda *args, **kwargs: pytest.fail("a model was built"))
    monkeypatch.setattr(cpu, "run_cpu_benchmark", lambda *args, **kwargs: pytest.fail("the benchmark ran"))
    flags = [flag.format(tmp=tmp_path) for flag in flags]
    with pytest.raises(SystemExit) as stopped:
        script_main("bench_cpu")(["--tiny", "--variants", "torch-fp32", "--output", str(tmp_path / "c.json"), *flags])
    message = message.format(tmp=tmp_path)
    if status == 2:  # argparse: the usage, then the option and the problem
        error = capsys.readouterr().err
        assert stopped.value.code == 2 and error.startswith("usage: ") and message in error
    else:  # one line, exit status 1
        assert re.match(re.escape(message), stopped.value.code)


@pytest.mark.slow
def test_rows_one_process_per_runtime(folder, tmp_path):
    texts = synthetic_texts(12)
    report = cpu.run_cpu_benchmark(
        folder, texts, batch_sizes=(4, 1), batch1_texts=3, repeats=2, variants=("torch-fp32", "torch-bf16"),
        training=False, profile=("torch-bf16",), test_sets={"topic": [{"text": t, "label": "tech"} for t in texts]},
    )  # fmt: skip
    rows = {(row["variant"], row["batch_size"]): row for row in report["rows"]}
    assert set(rows) == {(v, b) for v in ("torch-fp32", "torch-bf16") for b in (4, 1)}
    for (_, batch_size), row in rows.items():
        assert len(row["runs"]) == 2 and row["num_texts"] == (3 if batch_size == 1 else 12)
        assert row["gflops"] == pytest.approx(
            report["flops"][batch_size] / 1e9 * row["texts_per_second"] / row["num_texts"]
        )
        assert row["peak_fraction"] == pytest.approx(row["gflops"] / report["peaks_gflops"][row["dtype"]])
    assert rows[("torch-fp32", 4)]["speedup"] == 1.0 and rows[("torch-fp32", 4)]["agreement"]["topic"] == 1.0
    assert "aten::" in report["profiles"]["torch-bf16"]
    from polyhead.serving.inference import load_pipeline

    tech = sum(answer["topic"][0]["label"] == "tech" for answer in load_pipeline(folder)(texts)) / len(texts)
    assert report["test_accuracy"]["torch-fp32"] == {"topic": tech} and report["test_rows"] == {"topic": 12}
    table = cpu.format_cpu_report(report)
    assert "| torch-bf16 | bfloat16 | 4 |" in table
    assert set(report["layer_peaks_gflops"]) == {"float32", "bfloat16"}
    shapes = report["layer_shapes"]
    assert f"at batch {shapes['tokens']} tokens x hidden {shapes['hidden']}" in table and "bfloat16 / float32" in table
    assert cpu.plot_cpu_report(report, tmp_path / "cpu.png").stat().st_size > 0


def test_test_sets_must_name_the_models_tasks_before_any_timing(folder, monkeypatch):
    monkeypatch.setattr(cpu.multiprocessing, "get_context", lambda *args: pytest.fail("a worker started"))
    with pytest.raises(ValueError, match=r"Test set\(s\) \['emotion'\] name no task of .*its tasks: \["):
        cpu.run_cpu_benchmark(folder, ["a text"], test_sets={"emotion": [{"text": "a", "label": "joy"}]})
