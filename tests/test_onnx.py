"""ONNX export and OnnxMultitaskModel on tiny random encoders: parity with torch, the same pipeline, bad input."""

import importlib.util
import re
import sys
import warnings
from pathlib import Path

import pytest
import torch
from transformers import pipeline

from polyhead import MultitaskModel
from polyhead.saving import save_model_folder
from polyhead.testing_utils import tiny_multitask_config, tiny_tokenizer


HAS_ONNX = all(importlib.util.find_spec(name) for name in ("onnx", "onnxscript", "onnxruntime"))
requires_onnx = pytest.mark.skipif(not HAS_ONNX, reason="needs the onnx extra: pip install 'polyhead[onnx]'")
TEXTS = [
    "i love this movie",
    "bad",
    "the team win the game today and people are happy so happy",
    "what is the price of this phone",
]


def _saved_model(folder, family="bert"):
    torch.manual_seed(0)
    return save_model_folder(MultitaskModel(tiny_multitask_config(family)).eval(), tiny_tokenizer(), folder)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    if not HAS_ONNX:
        pytest.skip("needs the onnx extra: pip install 'polyhead[onnx]'")
    from polyhead.exporters.onnx import export_onnx

    folder = _saved_model(tmp_path_factory.mktemp("onnx") / "model")
    return folder, export_onnx(folder, int8=True)


def _torch_logits(folder, texts):
    model = MultitaskModel.from_pretrained(folder).eval()
    with torch.inference_mode():
        return model(**tiny_tokenizer()(texts, padding=True, return_tensors="pt")).logits


@requires_onnx
def test_export_writes_one_graph_per_precision_with_named_task_outputs(exported):
    folder, result = exported
    assert result.files == [folder / "onnx" / "model.onnx", folder / "onnx" / "model_quantized.onnx"]
    assert all(path.is_file() for path in result.files)
    assert result.output_names == ["logits.sentiment", "logits.topic", "logits.emotions"]
    assert result.input_names == ["input_ids", "token_type_ids", "attention_mask"]
    assert max(result.max_abs_diff.values()) <= 1e-4
    assert not [p.name for p in (folder / "onnx").iterdir() if p.name.startswith(".")]  # no staging leftovers


@requires_onnx
@pytest.mark.parametrize("batch", [TEXTS, TEXTS[2:3]], ids=["padded-batch", "one-text"])
def test_onnx_logits_match_torch_for_every_task(exported, batch):
    from polyhead.serving import OnnxMultitaskModel

    folder, _ = exported
    onnx_model = OnnxMultitaskModel.from_pretrained(folder, num_threads=1)
    found = onnx_model(**tiny_tokenizer()(batch, padding=True, return_tensors="pt")).logits
    expected = _torch_logits(folder, batch)
    assert list(found) == list(expected)
    for task in expected:
        assert found[task].dtype == torch.float32 and found[task].shape == expected[task].shape
        torch.testing.assert_close(found[task], expected[task], atol=1e-4, rtol=0)


@requires_onnx
def test_int8_graph_runs_every_task(exported):
    from polyhead.serving import OnnxMultitaskModel

    folder, result = exported
    model = OnnxMultitaskModel.from_pretrained(folder, "onnx/model_quantized.onnx")
    logits = model(**tiny_tokenizer()(TEXTS, padding=True, return_tensors="pt"), task="topic").logits
    assert list(logits) == ["topic"] and logits["topic"].shape == (4, 4)
    assert set(result.int8_max_abs_diff) == {"sentiment", "topic", "emotions"}


@requires_onnx
def test_the_same_pipeline_runs_the_onnx_model(exported):
    from polyhead.serving import OnnxMultitaskModel

    folder, _ = exported
    tokenizer = tiny_tokenizer()
    onnx_pipe = pipeline(
        "multitask-classification", model=OnnxMultitaskModel.from_pretrained(folder), tokenizer=tokenizer
    )
    torch_pipe = pipeline(
        "multitask-classification", model=MultitaskModel.from_pretrained(folder), tokenizer=tokenizer
    )
    for kwargs in ({"batch_size": 3, "top_k": None}, {"tasks": ["topic"], "top_k": 2}, {"threshold": 0.2}):
        ours, theirs = onnx_pipe(TEXTS, **kwargs), torch_pipe(TEXTS, **kwargs)
        assert _labels(ours) == _labels(theirs)
        for row_ours, row_theirs in zip(ours, theirs):
            for task in row_theirs:
                assert [i["score"] for i in row_ours[task]] == pytest.approx(
                    [i["score"] for i in row_theirs[task]], abs=1e-5
                )
    assert _labels([onnx_pipe(TEXTS[0])]) == _labels([torch_pipe(TEXTS[0])])
    with pytest.raises(ValueError, match="Unknown task"):
        onnx_pipe(TEXTS, tasks=["nope"])
    with pytest.raises(
        ValueError,
        match="dtype=torch.bfloat16 is not the model's: it runs in torch.float32; an ONNX graph runs in its exported",
    ):
        pipeline(
            "multitask-classification",
            OnnxMultitaskModel.from_pretrained(folder),
            tokenizer=tokenizer,
            dtype="bfloat16",
        )


def _labels(rows):
    return [{task: [item["label"] for item in items] for task, items in row.items()} for row in rows]


@requires_onnx
def test_export_refuses_an_existing_file_unless_overwrite(exported, capsys):
    script = _export_script()
    folder, _ = exported
    before = (folder / "onnx" / "model.onnx").stat().st_mtime_ns
    assert script.main([str(folder)]) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert (folder / "onnx" / "model.onnx").stat().st_mtime_ns == before
    assert script.main([str(folder), "--overwrite", "--int8"]) == 0  # --int8: keeps the shared folder's int8 graph
    assert "fp32 parity" in capsys.readouterr().out


@requires_onnx
def test_encoder_without_token_type_ids_exports_with_parity(tmp_path):
    from polyhead.exporters.onnx import export_onnx
    from polyhead.serving import OnnxMultitaskModel

    folder = _saved_model(tmp_path / "distilbert", family="distilbert")
    result = export_onnx(folder)
    assert result.input_names == ["input_ids", "attention_mask"] and max(result.max_abs_diff.values()) <= 1e-4
    inputs = tiny_tokenizer()(TEXTS, padding=True, return_tensors="pt")  # token_type_ids given, graph ignores them
    found = OnnxMultitaskModel.from_pretrained(folder)(**inputs).logits
    for task, expected in _torch_logits(folder, TEXTS).items():
        torch.testing.assert_close(found[task], expected, atol=1e-4, rtol=0)


@requires_onnx
def test_clear_errors_for_a_missing_graph_and_mismatched_tasks(exported, tmp_path):
    from polyhead.serving import OnnxMultitaskModel

    folder, _ = exported
    bare = _saved_model(tmp_path / "bare")
    with pytest.raises(FileNotFoundError, match="export_onnx.py"):
        OnnxMultitaskModel.from_pretrained(bare)
    with pytest.raises(FileNotFoundError, match="--int8"):
        OnnxMultitaskModel.from_pretrained(bare, "onnx/model_quantized.onnx")
    # A misspelt name: both export commands, and the graphs the folder has.
    with pytest.raises(
        FileNotFoundError, match=r"has \['model.onnx', 'model_quantized.onnx'\].*export_onnx.py .* --int8"
    ):
        OnnxMultitaskModel.from_pretrained(folder, "onnx/model_quantised.onnx")
    other = tiny_multitask_config(tasks={"sentiment": {"labels": ["negative", "positive"]}})
    with pytest.raises(ValueError, match="config.tasks.*--overwrite"):
        OnnxMultitaskModel.from_pretrained(folder, config=other)
    with pytest.raises(ValueError, match="providers"):
        OnnxMultitaskModel.from_pretrained(folder).to("cuda")


@requires_onnx
def test_session_options_are_checked_before_onnxruntime_sees_them(exported, capfd):
    # onnxruntime reads a string as one provider per letter, runs on CPU after only a warning for a provider it
    # lacks, and raises a pybind TypeError for threads that are not an int: each is refused here, naming the fix.
    import onnxruntime

    from polyhead.serving import OnnxMultitaskModel

    folder, _ = exported
    capfd.readouterr()
    model = OnnxMultitaskModel.from_pretrained(folder, providers="CPUExecutionProvider")
    assert model.session.get_providers() == ["CPUExecutionProvider"]
    assert "Provider" not in "".join(capfd.readouterr())  # not "EP Error Unknown Provider Type: C", letter by letter
    unavailable = ["CPUExecutionProvder"] + [
        name for name in ("CUDAExecutionProvider",) if name not in onnxruntime.get_available_providers()
    ]
    for name in unavailable:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # not onnxruntime's own warning: the error comes first
            with pytest.raises(ValueError, match=rf"\['{name}'\] are not available.*from \[.*'CPUExecutionProvider'"):
                OnnxMultitaskModel.from_pretrained(folder, providers=[name])
    with pytest.raises(ValueError, match="providers must be a list"):
        OnnxMultitaskModel.from_pretrained(folder, providers={"CPUExecutionProvider": {}})
    for threads in ("2", 2.5, 0, -1, True):
        with pytest.raises(ValueError, match=f"num_threads must be an integer >= 1.*got {re.escape(repr(threads))}"):
            OnnxMultitaskModel.from_pretrained(folder, num_threads=threads)
    with pytest.raises(ValueError, match="num_threads or session_options"):
        OnnxMultitaskModel.from_pretrained(folder, num_threads=2, session_options=onnxruntime.SessionOptions())
    model = OnnxMultitaskModel.from_pretrained(folder, num_threads=2, providers=[("CPUExecutionProvider", {})])
    assert model.session.get_session_options().intra_op_num_threads == 2


def _export_script():
    scripts = str(Path(__file__).resolve().parents[1] / "scripts")
    if scripts not in sys.path:
        sys.path.insert(0, scripts)
    import export_onnx as script

    return script


@requires_onnx
@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["--opset", "5"], r"opset=5: the torchscript exporter writes opsets 11 to \d+"),  # "auto" picks torchscript
        (["--exporter", "torchscript", "--opset", "99"], "opset=99: the torchscript exporter"),
        (["--exporter", "dynamo", "--opset", "99"], r"opset=99: the dynamo exporter writes opsets 17 to \d+"),
        (["--exporter", "dynamo", "--opset", "0"], "opset=0: the dynamo exporter"),  # wrote opset 18 silently
        (["--exporter", "dynamo", "--opset", "10"], "opset=10: the dynamo exporter"),  # wrote opset 18 silently
        (["--atol", "-1"], "atol must be a finite number >= 0.*got -1.0"),  # said the exporter traced wrongly
        (["--atol", "nan"], "atol must be a finite number >= 0.*got nan"),
    ],
)
def test_export_refuses_an_opset_or_atol_out_of_range_before_writing(tmp_path, capsys, args, problem):
    folder = _saved_model(tmp_path / "model")
    capsys.readouterr()
    assert _export_script().main([str(folder), *args]) == 1
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]  # beside progress bars (--opset 5)
    assert len(errors) == 1 and re.search(problem, errors[0]) and "Traceback" not in err, err
    assert not (folder / "onnx").exists()


@requires_onnx
def test_export_writes_the_opset_asked_for_or_nothing(tmp_path, monkeypatch):
    import onnx

    from polyhead.exporters import onnx as exporters

    def opset_of(path):
        return {entry.domain: entry.version for entry in onnx.load(str(path)).opset_import}[""]

    folder = _saved_model(tmp_path / "model")
    newest = exporters.supported_opsets("torchscript").stop - 1  # the TorchScript graph was at 17, whatever was asked
    cases = [("torchscript", newest, newest), ("dynamo", 17, 17), ("torchscript", None, 17), ("dynamo", None, 18)]
    for exporter, opset, written in cases:
        result = exporters.export_onnx(folder, exporter=exporter, opset=opset, overwrite=True)
        assert result.opset == written and opset_of(result.files[0]) == written, (exporter, opset)
    # An exporter that falls back to another opset (dynamo keeps 18 where it cannot convert): refused, nothing kept.
    export_graph = exporters.export_graph
    monkeypatch.setattr(exporters, "export_graph", lambda *args: export_graph(*args[:3], 18, args[4]))
    before = (folder / "onnx" / "model.onnx").read_bytes()
    with pytest.raises(ValueError, match="wrote opset 18, not the 17 asked for.*nothing was written"):
        exporters.export_onnx(folder, exporter="dynamo", opset=17, overwrite=True)
    assert (folder / "onnx" / "model.onnx").read_bytes() == before


@requires_onnx
def test_overwrite_without_int8_removes_the_int8_graph_of_the_replaced_model(tmp_path, capsys):
    from polyhead.exporters.onnx import export_onnx

    folder = _saved_model(tmp_path / "model")
    quantized = folder / "onnx" / "model_quantized.onnx"
    export_onnx(folder, int8=True)
    (folder / "onnx" / "model.onnx").unlink()  # only the int8 graph left: a new fp32 graph would not match it
    with pytest.raises(FileExistsError, match="model_quantized.onnx.*--overwrite.*removed"):
        export_onnx(folder)
    assert quantized.is_file() and not (folder / "onnx" / "model.onnx").exists()
    assert _export_script().main([str(folder), "--overwrite"]) == 0
    assert f"removed {quantized}" in capsys.readouterr().out
    assert not quantized.exists() and (folder / "onnx" / "model.onnx").is_file()
    result = export_onnx(folder, int8=True, overwrite=True)
    assert result.removed == [] and quantized.is_file()


def test_missing_onnxruntime_names_the_extra(tmp_path, monkeypatch):
    from polyhead.exporters.onnx import check_onnx_installed
    from polyhead.serving import OnnxMultitaskModel

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime now raises ImportError
    with pytest.raises(ImportError, match=r"polyhead\[onnx\]"):
        OnnxMultitaskModel.from_pretrained(tmp_path)
    with pytest.raises(ImportError, match="onnxruntime.*polyhead\\[onnx\\]"):
        check_onnx_installed()


@requires_onnx
@pytest.mark.parametrize("family", ["bert", "roberta", "xlm-roberta", "electra", "distilbert", "deberta-v2"])
def test_every_family_exports_with_parity_through_its_exporter(tmp_path, family):
    from polyhead.exporters.onnx import export_onnx
    from polyhead.serving import OnnxMultitaskModel

    folder = _saved_model(tmp_path / family, family=family)
    result = export_onnx(folder)
    # DeBERTa-v2 reads a 4D mask as 0/1, not additive: it goes through the dynamo exporter.
    assert result.exporter == ("dynamo" if family == "deberta-v2" else "torchscript")
    for batch in (TEXTS, TEXTS[1:2]):
        inputs = tiny_tokenizer()(batch, padding=True, return_tensors="pt")
        found = OnnxMultitaskModel.from_pretrained(folder)(**inputs).logits
        for task, expected in _torch_logits(folder, batch).items():
            torch.testing.assert_close(found[task], expected, atol=1e-4, rtol=0)


@requires_onnx
def test_both_exporters_agree_and_torchscript_is_refused_where_the_mask_would_be_wrong(tmp_path):
    from polyhead.exporters.onnx import export_onnx
    from polyhead.serving import OnnxMultitaskModel

    folder = _saved_model(tmp_path / "bert")
    logits = {}
    for exporter in ("dynamo", "torchscript"):
        assert export_onnx(folder, exporter=exporter, overwrite=True).exporter == exporter
        logits[exporter] = OnnxMultitaskModel.from_pretrained(folder)(
            **tiny_tokenizer()(TEXTS, padding=True, return_tensors="pt")
        ).logits
    for task in logits["dynamo"]:
        torch.testing.assert_close(logits["torchscript"][task], logits["dynamo"][task], atol=1e-5, rtol=0)
    deberta = _saved_model(tmp_path / "deberta", family="deberta-v2")
    with pytest.raises(ValueError, match="deberta-v2.*'dynamo'"):
        export_onnx(deberta, exporter="torchscript")
    with pytest.raises(ValueError, match="exporter='fast'"):
        export_onnx(folder, exporter="fast", overwrite=True)
    assert not (deberta / "onnx" / "model.onnx").exists()


def test_additive_mask_is_zero_on_tokens_and_the_minimum_on_padding():
    from polyhead.exporters.onnx import additive_attention_mask

    mask = additive_attention_mask(torch.tensor([[1, 1, 0], [1, 1, 1]]))
    assert mask.shape == (2, 1, 3, 3) and mask.dtype == torch.float32
    assert torch.equal(mask[0, 0], torch.tensor([[0.0, 0.0, torch.finfo(torch.float32).min]] * 3))
    assert torch.equal(mask[1], torch.zeros(1, 3, 3))


@requires_onnx
def test_torchscript_graph_is_one_onnxruntime_fuses_into_bert_attention(exported, tmp_path):
    # What makes the exported graph fast: onnxruntime's BERT fusions recognise its attention (mask included), GELU
    # and LayerNorm patterns. A change to the wrapper's mask or the exporter that breaks them fails here.
    from onnxruntime.transformers.optimizer import optimize_model

    folder, result = exported
    assert result.exporter == "torchscript"
    optimized = optimize_model(str(result.files[0]), model_type="bert", num_heads=4, hidden_size=32, opt_level=0)
    fused = optimized.get_fused_operator_statistics()
    assert fused["Attention"] == 2 and fused["SkipLayerNormalization"] >= 2 and fused["BiasGelu"] == 2


@requires_onnx
def test_evaluation_scores_the_onnx_model_like_the_torch_model(exported):
    # Evaluation encodes once and runs each head on its rows; a graph has no `encode`, so it falls back to the
    # graph's logits per distinct input. Both must give the torch model's logits.
    import datasets

    from polyhead.evaluation.scoring import predict_all_logits
    from polyhead.serving import OnnxMultitaskModel

    folder, _ = exported
    tokenizer = tiny_tokenizer()
    encoded = dict(tokenizer(TEXTS))
    tasks = {
        "sentiment": datasets.Dataset.from_dict({**encoded, "labels": [0, 1, 0, 1]}),
        "topic": datasets.Dataset.from_dict({**{k: v[1:] for k, v in encoded.items()}, "labels": [3, 2, 1]}),
    }
    torch_model = MultitaskModel.from_pretrained(folder).eval()
    expected = predict_all_logits(torch_model, tasks, tokenizer, batch_size=2, progress=False)
    found = predict_all_logits(
        OnnxMultitaskModel.from_pretrained(folder), tasks, tokenizer, batch_size=2, progress=False
    )
    assert list(found) == ["sentiment", "topic"]
    for task, (logits, labels) in expected.items():
        assert found[task][0].shape == logits.shape == (len(tasks[task]), 2 if task == "sentiment" else 4)
        assert (found[task][1] == labels).all()
        assert abs(found[task][0] - logits).max() <= 1e-4


@requires_onnx
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_a_half_precision_folder_exports_the_fp32_graph_of_its_upcast_model(tmp_path, dtype):
    import onnx

    from polyhead.exporters.onnx import export_onnx
    from polyhead.serving import OnnxMultitaskModel

    torch.manual_seed(0)
    model = MultitaskModel(tiny_multitask_config()).to(dtype).eval()
    folder = save_model_folder(model, tiny_tokenizer(), tmp_path / "model")
    result = export_onnx(folder)  # was: "expected m1 and m2 to have the same dtype", and an empty onnx/ left
    graph = onnx.load(str(result.files[0]))
    assert {tensor.data_type for tensor in graph.graph.initializer} == {onnx.TensorProto.FLOAT}
    upcast = MultitaskModel.from_pretrained(folder, dtype=torch.float32).eval()
    batch = tiny_tokenizer()(TEXTS, padding=True, return_tensors="pt")
    with torch.inference_mode():
        expected = upcast(**batch).logits
    found = OnnxMultitaskModel.from_pretrained(folder)(**batch).logits
    for task in expected:
        assert torch.allclose(torch.as_tensor(found[task]), expected[task], atol=1e-4), task


@requires_onnx
def test_a_refused_or_failed_export_leaves_no_onnx_folder_and_one_line(tmp_path, capsys, monkeypatch):
    from polyhead.exporters import onnx as exporters

    folder = _saved_model(tmp_path / "model")
    monkeypatch.setattr(exporters, "logit_differences", lambda model, *args: dict.fromkeys(model.config.tasks, 1.0))
    with pytest.raises(exporters.ParityError, match="nothing was written"):
        exporters.export_onnx(folder)
    assert not (folder / "onnx").exists()
    monkeypatch.undo()

    def broken(*args, **kwargs):
        raise RuntimeError("expected m1 and m2 to have the same dtype\nmore lines of the tracer")

    monkeypatch.setattr(torch.onnx, "export", broken)
    with pytest.raises(exporters.ExporterError, match="torchscript exporter failed") as raised:
        exporters.export_onnx(folder)
    assert isinstance(raised.value.__cause__, RuntimeError)  # the exporter's own error and traceback stay reachable
    capsys.readouterr()
    assert _export_script().main([str(folder)]) == 1
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]  # beside the loading progress bar
    assert "Traceback" not in err and len(errors) == 1, err
    assert re.search(
        r"^error: The torchscript exporter failed on the bert model .*model \(RuntimeError: expected m1 and m2 to "
        r"have the same dtype\): nothing was written\. Try the other exporter: --exporter dynamo\.$",
        errors[0],
    ), err
    assert not (folder / "onnx").exists()
    (folder / "onnx").mkdir()  # a folder that was there before stays
    with pytest.raises(exporters.ExporterError):
        exporters.export_onnx(folder, exporter="dynamo")
    assert (folder / "onnx").is_dir() and not list((folder / "onnx").iterdir())
