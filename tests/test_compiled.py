"""The compiled serving path (`polyhead.serving.compiled`): the same labels as the eager model, one graph per shape
bucket, and the eager path (with one warning) wherever compiling cannot run."""

import re
import sys
import warnings
from pathlib import Path

import pytest
import torch
from torch._dynamo.testing import CompileCounter
from transformers import AutoTokenizer

from polyhead import MultitaskModel
from polyhead.benchmark.inputs import save_tiny_encoder
from polyhead.saving import save_model_folder
from polyhead.serving import compiled
from polyhead.serving.compiled import BucketedEncoder, bucket, compile_model, is_compiled, resolve_dtype
from polyhead.serving.inference import load_pipeline
from polyhead.testing_utils import TINY_TASKS


TEXTS = [
    "good",
    "the team win the game today and people are happy",
    "bad phone",
    "i love this movie so much",
    "angry people hate the market news",
]


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> str:
    encoder = save_tiny_encoder(tmp_path_factory.mktemp("encoder") / "tiny")
    torch.manual_seed(0)
    model = MultitaskModel.from_encoder_pretrained(encoder, tasks=TINY_TASKS).eval()
    return str(save_model_folder(model, AutoTokenizer.from_pretrained(encoder), tmp_path_factory.mktemp("m") / "m"))


def counted(folder, **kwargs):
    """A pipeline whose model is 'compiled' by a backend that only counts graphs (fast, no C++)."""
    counter = CompileCounter()
    classifier = load_pipeline(folder)
    compile_model(classifier.model, "float32", backend=counter, **kwargs)
    return classifier, counter


def assert_close(ours: list[dict], theirs: list[dict], tolerance: float = 1e-5) -> None:
    """The same tasks and labels per text, scores within `tolerance` (padding and kernels change the sums' order)."""
    assert len(ours) == len(theirs)
    for mine, expected in zip(ours, theirs):
        assert list(mine) == list(expected)
        for task, items in mine.items():
            scores = {item["label"]: item["score"] for item in expected[task]}
            assert {item["label"]: item["score"] for item in items} == pytest.approx(scores, abs=tolerance), task


def test_bucket_rounds_up_and_beyond_the_last_to_its_multiples():
    assert [bucket(n, (1, 8, 32)) for n in (1, 2, 8, 9, 32, 33, 65)] == [1, 8, 8, 32, 32, 64, 96]


def test_lengths_and_batch_sizes_in_one_bucket_reuse_one_graph(folder):
    classifier, counter = counted(folder, batch_buckets=(4, 8), sequence_buckets=(16, 32))
    eager = load_pipeline(folder)
    # batches of 2 and 3 (bucket 4), every text shorter than 16 tokens: one graph for all of them.
    for batch_size in (2, 3):
        assert_close(
            classifier(TEXTS, batch_size=batch_size, top_k=None), eager(TEXTS, batch_size=batch_size, top_k=None)
        )
    assert counter.frame_count == 1
    assert classifier.model.encode.compiled_buckets == {(4, 16)}
    classifier(["a long text " * 6], batch_size=1)  # ~20 tokens: the (4, 32) bucket
    classifier(TEXTS + TEXTS, batch_size=8)  # 8 rows: the (8, 16) bucket
    classifier(TEXTS * 4, batch_size=20)  # 20 rows, beyond the largest bucket: chunks of 8 (8, 8, 4)
    assert counter.frame_count == 3
    assert classifier.model.encode.compiled_buckets == {(4, 16), (4, 32), (8, 16)}


def test_padding_changes_no_answer(folder):
    classifier, _ = counted(folder, batch_buckets=(8,), sequence_buckets=(64,))
    eager = load_pipeline(folder)
    for batch_size in (1, 2, 5):
        ours, theirs = classifier(TEXTS, batch_size=batch_size), eager(TEXTS, batch_size=batch_size)
        assert ours == theirs or assert_close(ours, theirs)  # top labels; scores to the last few bits


def test_the_model_forward_runs_compiled_too(folder):
    # bulk prediction calls model(**inputs), whose forward calls encode positionally
    classifier, counter = counted(folder)
    inputs = AutoTokenizer.from_pretrained(folder)(TEXTS[:3], padding=True, return_tensors="pt")
    with torch.inference_mode():
        ours = classifier.model(**inputs).logits
        theirs = load_pipeline(folder).model(**inputs).logits
    assert counter.frame_count == 1
    for task in theirs:
        torch.testing.assert_close(ours[task], theirs[task], atol=1e-5, rtol=1e-4)


def test_training_and_unusual_inputs_run_eagerly(folder):
    classifier, counter = counted(folder)
    model = classifier.model
    inputs = AutoTokenizer.from_pretrained(folder)(TEXTS[:2], padding=True, return_tensors="pt")
    model(**inputs)  # gradients on: eager
    with torch.no_grad():
        model.encode(inputs_embeds=torch.zeros(1, 3, model.config.encoder.hidden_size))
    assert counter.frame_count == 0


def test_a_failing_compile_warns_once_and_answers_eagerly(folder):
    def broken(graph, example_inputs):
        raise RuntimeError("no compiler today")

    classifier = load_pipeline(folder)
    compile_model(classifier.model, "float32", backend=broken)
    expected = load_pipeline(folder)(TEXTS, batch_size=2)
    with pytest.warns(UserWarning, match="compiling failed .*no compiler today.*eager"):
        assert classifier(TEXTS, batch_size=2) == expected
    assert not is_compiled(classifier.model) and "no compiler today" in classifier.model.encode.fallback
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no second warning, no second try
        assert classifier(TEXTS, batch_size=2) == expected


def test_no_cxx_compiler_or_old_torch_means_eager_with_a_warning(folder, monkeypatch):
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr(compiled.shutil, "which", lambda name: None)
    with pytest.warns(UserWarning, match="no C\\+\\+ compiler was found .*install g\\+\\+ or set CXX"):
        classifier = load_pipeline(folder, compile=True, dtype="float32")
    assert not is_compiled(classifier.model)
    assert classifier(TEXTS) == load_pipeline(folder)(TEXTS)
    monkeypatch.undo()
    monkeypatch.setattr(compiled.torch, "__version__", "2.1.0+cpu")
    assert "older than 2.4: upgrade torch" in compiled.compile_unavailable()


def test_bfloat16_only_where_the_cpu_has_it(monkeypatch):
    monkeypatch.setattr(compiled, "native_bf16", lambda: False)
    assert resolve_dtype("auto") == "float32" and resolve_dtype(None) == "float32"
    with pytest.warns(UserWarning, match="no native bfloat16 matrix instructions"):
        assert resolve_dtype("bfloat16") == "float32"
    monkeypatch.setattr(compiled, "native_bf16", lambda: True)
    monkeypatch.setattr(compiled.torch.cpu, "_is_amx_tile_supported", lambda: True, raising=False)
    assert resolve_dtype("auto") == "bfloat16" and resolve_dtype("float32") == "float32"
    with pytest.raises(ValueError, match=r"dtype must be one of \['auto', 'float32', 'bfloat16'\], got 'float16'"):
        resolve_dtype("float16")


@pytest.mark.parametrize(
    ("amx", "vendor", "auto"),
    [
        (True, "GenuineIntel", "bfloat16"),  # AMX tiles
        (False, "AuthenticAMD", "bfloat16"),  # Zen 4's AVX512-BF16: twice float32's matmul rate
        (False, "GenuineIntel", "float32"),  # AVX512-BF16 without AMX: half float32's rate
        (False, "", "float32"),  # vendor unknown: nothing measured says bfloat16 is faster
    ],
)
def test_auto_serves_bfloat16_only_where_it_is_faster_than_float32(monkeypatch, amx, vendor, auto):
    monkeypatch.setattr(compiled, "native_bf16", lambda: True)
    monkeypatch.setattr(compiled.torch.cpu, "_is_amx_tile_supported", lambda: amx, raising=False)
    monkeypatch.setattr(compiled, "cpu_vendor", lambda: vendor)
    assert compiled.faster_bf16() == (auto == "bfloat16") and resolve_dtype("auto") == auto
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert resolve_dtype("bfloat16") == "bfloat16"  # asked for: kept, with a warning where it is slower
    assert [str(w.message).split(":")[0] for w in caught] == ([] if auto == "bfloat16" else ["bfloat16 was asked for"])


def test_cpu_vendor_reads_cpuinfo_or_platform(monkeypatch):
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            expected = next((line.split(":")[1].strip() for line in handle if line.startswith("vendor_id")), "")
    except OSError:
        expected = ""
    assert compiled.cpu_vendor() == expected or not expected
    monkeypatch.setattr(compiled, "_cpuinfo", lambda field: "")
    monkeypatch.setattr(compiled.platform, "processor", lambda: "AMD64 Family 25 Model 17 Stepping 1, AuthenticAMD")
    assert compiled.cpu_vendor() == "AuthenticAMD"


def test_native_bf16_reads_cpuinfo_without_torch_checks(monkeypatch, tmp_path):
    monkeypatch.delattr(compiled.torch.cpu, "_is_amx_tile_supported", raising=False)
    with open("/proc/cpuinfo", encoding="utf-8") as handle:
        flags = next(line for line in handle if line.startswith("flags")).split()
    assert compiled.native_bf16() == any(flag in flags for flag in compiled.BF16_FLAGS)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["float32", "auto"])
def test_inductor_gives_the_eager_labels(folder, dtype):
    # The real backend (C++ kernels, frozen weights): two buckets, (1, 16) and (4, 16).
    classifier = load_pipeline(folder, compile=True, dtype=dtype)
    eager = load_pipeline(folder)
    assert isinstance(classifier.model.encode, BucketedEncoder)
    for batch_size in (1, 4):
        tolerance = 0.02 if classifier.model.dtype == torch.bfloat16 else 1e-4  # bfloat16: ~3 significant digits
        ours, theirs = (
            classifier(TEXTS, batch_size=batch_size, top_k=None),
            eager(TEXTS, batch_size=batch_size, top_k=None),
        )
        assert_close(ours, theirs, tolerance)
    assert is_compiled(classifier.model) and classifier.model.encode.compiled_buckets == {(1, 16), (4, 16)}
    assert classifier.model.encode.options_for(1)["cpp_wrapper"]  # batch 1 ran through the C++ wrapper


def test_the_inductor_options_hold_while_dynamo_traces():
    # Dynamo reads `freezing` from inductor's global config while it traces: the backend's options come too late.
    from torch._inductor import config as inductor_config

    seen = []
    encoder = BucketedEncoder(lambda **inputs: inputs["input_ids"].float())
    encoder.compiled = lambda *inputs: seen.append(inductor_config.freezing) or inputs[0].float()
    with torch.inference_mode():
        encoder(torch.ones(2, 3, dtype=torch.long), torch.ones(2, 3, dtype=torch.long))
    assert encoder.options == compiled.INDUCTOR_OPTIONS and seen == [True] and not inductor_config.freezing


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_inductor_prepacks_every_linear_layer(folder, dtype):
    # Freezing must reach dynamo's tracing: otherwise the weights stay graph inputs and every linear layer runs as
    # a plain `addmm` on unpacked weights (what the first compiled path did: docs/cpu-acceleration.md).
    from torch._inductor.utils import run_and_get_code

    if dtype == "bfloat16" and not (compiled.native_bf16() and torch.ops.mkldnn._is_mkldnn_bf16_supported()):
        pytest.skip("this CPU has no native bfloat16 matmuls (amx_bf16 / avx512_bf16): bfloat16 is not served here")
    if not torch.backends.mkldnn.is_available():
        pytest.skip("this torch build has no oneDNN (mkldnn): inductor has no packed linear kernels to use")
    classifier = load_pipeline(folder)
    compile_model(classifier.model, dtype)
    ids = classifier.tokenizer(TEXTS[:2], padding=True, return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        _, codes = run_and_get_code(classifier.model.encode, ids, torch.ones_like(ids))
    code = "\n".join(codes)
    packed = r"mkldnn\._linear_pointwise" if dtype == "bfloat16" else r"mkldnn\._linear_pointwise|mkl\._mkl_linear"
    linears = sum(isinstance(module, torch.nn.Linear) for module in classifier.model.encoder.modules())
    assert "extern_kernels.addmm" not in code, code
    assert len(re.findall(rf"= torch\.ops\.({packed})\.", code)) == linears, code


def test_bulk_prediction_runs_compiled_and_refuses_it_for_onnx(folder, tmp_path, monkeypatch, capsys):
    import functools
    import json

    from polyhead.serving.predict import predict_file

    counter = CompileCounter()
    monkeypatch.setattr(compiled, "compile_model", functools.partial(compile_model, backend=counter))
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"text": text}) + "\n" for text in TEXTS))
    ours = predict_file(folder, source, tmp_path / "c.jsonl", compile=True, dtype="float32", progress=False)
    eager = predict_file(folder, source, tmp_path / "e.jsonl", progress=False)
    rows = [[json.loads(line) for line in result.output.read_text().splitlines()] for result in (ours, eager)]
    assert counter.frame_count == 1  # 5 texts in one batch: one bucket
    for mine, theirs in zip(*rows, strict=True):
        assert mine["topic"] == theirs["topic"] and mine["topic_score"] == pytest.approx(theirs["topic_score"])
    with pytest.raises(ValueError, match="compile=True is for the torch model"):
        predict_file(folder, source, tmp_path / "o.jsonl", onnx_file="onnx/model.onnx", compile=True, progress=False)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    import predict as script  # scripts/predict.py

    with pytest.raises(SystemExit):
        script.main([folder, str(source), str(tmp_path / "o.jsonl"), "--onnx", "--compile"])
    assert "--compile is for the torch model" in capsys.readouterr().err


def recording_compile(calls: list, runs: list, setting: str = "max_autotune", filters: list | None = None):
    """A stand-in for `torch.compile`: records each compiled object's options (its guard filter apart, in
    `filters`), and on each call which object ran with which of inductor's global settings (`freezing` and
    `setting`) in force."""
    from torch._inductor import config as inductor_config

    def fake_compile(fn, backend=None, options=None, dynamic=None):
        index = len(calls)
        calls.append({key: value for key, value in options.items() if key != "guard_filter_fn"})
        if filters is not None:
            filters.append(options.get("guard_filter_fn"))

        def run(*inputs):
            runs.append((index, inputs[0].shape[0], inductor_config.freezing, getattr(inductor_config, setting)))
            return inputs[0].float()

        return run

    return fake_compile


def test_small_batch_buckets_take_their_own_options_and_compiled_function(monkeypatch):
    from torch._inductor import config as inductor_config

    calls, runs = [], []
    monkeypatch.setattr(compiled.torch, "compile", recording_compile(calls, runs))
    encoder = BucketedEncoder(
        lambda **inputs: inputs["input_ids"].float(),
        batch_buckets=(1, 2, 4),
        small_batch_options=compiled.AUTOTUNE_OPTIONS,
        small_batch_max=2,
    )
    # one compiled object per distinct option set: the default set first, then the small-batch set
    assert calls == [compiled.INDUCTOR_OPTIONS, compiled.AUTOTUNE_OPTIONS]
    assert [encoder.options_for(rows) for rows in (1, 2, 4)] == [compiled.AUTOTUNE_OPTIONS] * 2 + [calls[0]]
    with torch.inference_mode():
        for rows in (1, 2, 3, 1):  # buckets 1, 2, 4, 1
            encoder(torch.ones(rows, 3, dtype=torch.long), torch.ones(rows, 3, dtype=torch.long))
    # (compiled object, padded rows, freezing, max_autotune) as seen while each call ran
    assert runs == [(1, 1, True, True), (1, 2, True, True), (0, 4, True, False), (1, 1, True, True)]
    assert encoder.compiled_buckets == {(1, 16), (2, 16), (4, 16)}
    assert not inductor_config.freezing and not inductor_config.max_autotune  # the global config is restored


def test_batch_one_adds_cpp_wrapper_by_default_and_one_option_set_compiles_one_function(monkeypatch):
    from torch._inductor import config as inductor_config

    calls, runs = [], []
    monkeypatch.setattr(compiled.torch, "compile", recording_compile(calls, runs, "cpp_wrapper"))
    encoder = BucketedEncoder(lambda **inputs: inputs["input_ids"].float(), batch_buckets=(1, 4))
    with torch.inference_mode():
        for rows in (1, 4):
            encoder(torch.ones(rows, 3, dtype=torch.long), torch.ones(rows, 3, dtype=torch.long))
    assert calls == [compiled.INDUCTOR_OPTIONS, {"freezing": True, "cpp_wrapper": True}]
    assert runs == [(1, 1, True, True), (0, 4, True, False)] and not inductor_config.cpp_wrapper
    # the extra goes on top of the caller's options; the caller's options again for batch 1: one function
    custom = BucketedEncoder(lambda **inputs: inputs["input_ids"].float(), options={"freezing": False})
    assert custom.options_for(1) == {"freezing": False, "cpp_wrapper": True}
    same = BucketedEncoder(lambda **inputs: inputs["input_ids"].float(), small_batch_options={"freezing": True})
    assert len(calls) == 5 and same.compiled_small is same.compiled  # a small-batch set equal to the default: reused


def test_a_bad_option_set_is_refused_before_anything_compiles(folder):
    model = load_pipeline(folder).model
    with pytest.raises(TypeError, match="small_batch_options must be a dict of inductor settings .* got list"):
        compile_model(model, "float32", small_batch_options=["max_autotune"])
    with pytest.raises(TypeError, match="options must be a dict of inductor settings .* got str"):
        compile_model(model, "float32", options="max-autotune")
    with pytest.raises(ValueError, match=r"inductor does not know: \['max_autotun'\]"):
        compile_model(model, "float32", small_batch_options={"freezing": True, "max_autotun": True})
    with pytest.raises(ValueError, match=r"small_batch_max=3 is not one of the batch buckets \(1, 2, 4, 8"):
        compile_model(model, "float32", small_batch_options=compiled.AUTOTUNE_OPTIONS, small_batch_max=3)
    with pytest.raises(ValueError, match="small_batch_options are inductor settings, but backend="):
        compile_model(model, "float32", backend=CompileCounter(), small_batch_options=compiled.AUTOTUNE_OPTIONS)
    assert "encode" not in model.__dict__  # nothing was compiled


def test_small_batch_options_fall_back_like_the_rest_where_compiling_cannot_run(folder, monkeypatch):
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr(compiled.shutil, "which", lambda name: None)
    classifier = load_pipeline(folder)
    with pytest.warns(UserWarning, match="compiled path unavailable: no C\\+\\+ compiler"):
        compile_model(classifier.model, "float32", small_batch_options=compiled.AUTOTUNE_OPTIONS)
    assert not is_compiled(classifier.model)
    assert classifier(TEXTS, batch_size=1) == load_pipeline(folder)(TEXTS, batch_size=1)


@pytest.mark.slow
def test_inductor_autotunes_the_small_batch_buckets_only(folder):
    # Real inductor with max-autotune's GEMM templates at batch 1: the linear layers' kernel choice (lowering) sees
    # max_autotune for the batch-1 bucket and not for the batch-4 one; the labels stay the eager ones.
    from torch._inductor import config as inductor_config
    from torch._inductor.select_algorithm import AlgorithmSelectorCache

    if not (compiled.native_bf16() and torch.ops.mkldnn._is_mkldnn_bf16_supported()):
        pytest.skip("this CPU has no native bfloat16 matmuls (amx_bf16 / avx512_bf16): bf16 templates do not apply")
    if compiled.compile_unavailable():
        pytest.skip(f"inductor cannot run here: {compiled.compile_unavailable()}")
    classifier, eager = load_pipeline(folder), load_pipeline(folder)
    compile_model(classifier.model, "bfloat16", small_batch_options=compiled.AUTOTUNE_OPTIONS)
    seen = []
    select = AlgorithmSelectorCache.__call__

    def recording(self, name, choices, *args, **kwargs):
        seen.append((name, inductor_config.max_autotune))
        return select(self, name, choices, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch, inductor_config.patch(force_disable_caches=True):
        patch.setattr(AlgorithmSelectorCache, "__call__", recording)
        tuned = []
        for batch_size in (1, 4):
            seen.clear()
            assert_close(
                classifier(TEXTS[:4], batch_size=batch_size, top_k=None),
                eager(TEXTS[:4], batch_size=batch_size, top_k=None),
                0.02,  # bfloat16: ~3 significant digits
            )
            tuned.append({autotune for name, autotune in seen if name.startswith("linear")})
    assert tuned == [{True}, {False}]
    assert is_compiled(classifier.model) and classifier.model.encode.compiled_buckets == {(1, 16), (4, 16)}


def test_one_graph_per_bucket_whatever_the_inputs_kind_or_the_callers_mode(folder):
    # A text of exactly a bucket's length is not padded: it must not reach dynamo as another kind of tensor (normal
    # against inference tensors), which compiled the bucket a second time.
    classifier, counter = counted(folder, batch_buckets=(1,), sequence_buckets=(16,))
    encode, eager = classifier.model.encode, load_pipeline(folder).model.encode
    with torch.inference_mode():
        inference_ids = torch.full((1, 16), 5)
    answers = []
    for mode in (torch.inference_mode, torch.no_grad):
        with mode():
            for ids in (torch.full((1, 16), 5), torch.full((1, 9), 5), inference_ids):
                answers.append((encode(ids, torch.ones_like(ids)), eager(ids, torch.ones_like(ids))))
    assert counter.frame_count == 1 and encode.compiled_buckets == {(1, 16)}
    for ours, theirs in answers:
        torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-4)
    assert not any(ours.is_inference() for ours, _ in answers[3:])  # a caller under no_grad gets normal tensors


def test_lean_guards_by_default_and_an_opt_out(monkeypatch):
    calls, filters = [], []
    monkeypatch.setattr(compiled.torch, "compile", recording_compile(calls, [], filters=filters))
    options = {"freezing": True}
    lean = BucketedEncoder(lambda **inputs: inputs["input_ids"].float(), options=options)
    full = BucketedEncoder(lambda **inputs: inputs["input_ids"].float(), options=options, lean_guards=False)
    lean_filter = getattr(torch.compiler, compiled.LEAN_GUARD_FILTER)
    assert lean.lean_guards and not full.lean_guards
    assert filters == [lean_filter, lean_filter, None, None]  # (all buckets, batch 1) of each encoder
    assert calls[:2] == calls[2:] == [options, {**options, **compiled.SMALL_BATCH_EXTRA}]
    assert options == {"freezing": True}  # the caller's dict is not handed to torch.compile, which pops from it


def test_lean_guards_still_see_the_weights_dtype_and_global_state(folder):
    classifier, counter = counted(folder)
    model, eager = classifier.model, load_pipeline(folder).model
    assert model.encode.lean_guards
    ids = torch.full((1, 7), 5)

    def both():
        return model.encode(ids, torch.ones_like(ids)), eager.encode(ids, torch.ones_like(ids))

    with torch.inference_mode():
        both()
        both()
    assert counter.frame_count == 1
    first = model.encode.compiled
    model.double(), eager.double()  # the weights' dtype: new graphs (frozen weights are not guarded by dynamo)
    with torch.inference_mode():
        ours, theirs = both()
        assert counter.frame_count == 2 and ours.dtype == torch.float64 and model.encode.compiled is not first
        torch.testing.assert_close(ours, theirs)
        with torch.autocast("cpu", dtype=torch.bfloat16):  # global state: a new graph
            ours, theirs = both()
        assert counter.frame_count == 3
        torch.testing.assert_close(ours, theirs)
    model.train(), eager.train()  # dropout on: the eager model, which lean guards would not see
    with torch.inference_mode():
        torch.manual_seed(0)
        ours = model.encode(ids, torch.ones_like(ids))
        torch.manual_seed(0)
        torch.testing.assert_close(ours, eager.encode(ids, torch.ones_like(ids)))
        assert counter.frame_count == 3
    ours, theirs = both()  # gradients on: eager, as before
    assert counter.frame_count == 3 and ours.requires_grad


@pytest.mark.parametrize("lean_guards", [True, False])
def test_lean_guards_do_not_see_python_attributes_changed_after_compiling(folder, lean_guards):
    # The documented price of lean guards: an attribute changed after a bucket compiled (here a LayerNorm's eps) is
    # not seen by its graph; with every guard kept, dynamo compiles the bucket again.
    classifier, counter = counted(folder, lean_guards=lean_guards)
    model, eager = classifier.model, load_pipeline(folder).model
    ids = torch.full((1, 7), 5)
    with torch.inference_mode():
        before = model.encode(ids, torch.ones_like(ids))
        for changed in (model, eager):
            changed.encoder.embeddings.LayerNorm.eps = 10.0
        ours, theirs = model.encode(ids, torch.ones_like(ids)), eager.encode(ids, torch.ones_like(ids))
    assert counter.frame_count == (1 if lean_guards else 2)
    torch.testing.assert_close(ours, before if lean_guards else theirs)
    assert not torch.allclose(before, theirs)


def test_a_compiled_call_leaves_no_global_setting_changed(folder):
    from torch._dynamo import config as dynamo_config
    from torch._inductor import config as inductor_config

    classifier, _ = counted(folder)
    before = (dynamo_config.get_config_copy(), inductor_config.get_config_copy(), torch.is_grad_enabled())
    classifier(TEXTS, batch_size=1)
    with torch.inference_mode():
        classifier.model.encode(torch.full((2, 5), 5), torch.ones(2, 5, dtype=torch.long))
    assert (dynamo_config.get_config_copy(), inductor_config.get_config_copy(), torch.is_grad_enabled()) == before


def test_two_compiled_models_never_share_a_graph(folder):
    # With freezing each graph holds its model's weights: lean guards (input shapes only) must not hand one model's
    # graph to another of the same shapes, so each encoder compiles on a code object of its own (the real backend:
    # test_inductor_gives_the_eager_labels, a float32 and a bfloat16 model in one process).
    counter = CompileCounter()
    models = [load_pipeline(folder).model for _ in range(2)]
    torch.nn.init.normal_(models[1].encoder.embeddings.word_embeddings.weight)
    for model in models:
        compile_model(model, "float32", backend=counter)
    ids = torch.full((1, 7), 5)
    with torch.inference_mode():
        ours = [model.encode(ids, torch.ones_like(ids)) for model in models]
        theirs = [model.encode.encode(ids, torch.ones_like(ids)) for model in models]
    assert counter.frame_count == 2
    for mine, expected in zip(ours, theirs):
        torch.testing.assert_close(mine, expected)


@pytest.mark.slow
def test_inductor_follows_the_model_to_another_dtype(folder):
    # The frozen weights are not guarded by dynamo under lean guards: the encoder sees the dtype change itself and
    # compiles new graphs, instead of running the float32 graph with its float32 weights.
    if compiled.compile_unavailable():
        pytest.skip(f"inductor cannot run here: {compiled.compile_unavailable()}")
    classifier, eager = load_pipeline(folder, compile=True, dtype="float32"), load_pipeline(folder)
    assert_close(classifier(TEXTS[:2], batch_size=1, top_k=None), eager(TEXTS[:2], batch_size=1, top_k=None), 1e-4)
    classifier.model.double(), eager.model.double()
    ours, theirs = classifier(TEXTS[:2], batch_size=1, top_k=None), eager(TEXTS[:2], batch_size=1, top_k=None)
    assert_close(ours, theirs, 1e-6)
    assert is_compiled(classifier.model) and classifier.model.encode.compiled_buckets == {(1, 16)}
