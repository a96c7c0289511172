"""scripts/predict.py and polyhead.serving.predict on a tiny model: formats, order, pairs, ONNX, resuming, no
duplicates."""

import importlib.util
import json
import re
import sys
import warnings
from pathlib import Path

import pandas as pd
import pytest
import torch
from transformers import pipeline

from polyhead import MultitaskModel
from polyhead.benchmark.heads import synthetic_tasks
from polyhead.remote_code import normalize_task
from polyhead.saving import save_model_folder
from polyhead.serving import predict as predict_module
from polyhead.testing_utils import tiny_multitask_config, tiny_tokenizer


sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
HAS_ONNX = all(importlib.util.find_spec(name) for name in ("onnx", "onnxscript", "onnxruntime"))
TEXTS = [
    "i love this movie so much",
    "bad",
    "the team win the game today",
    "what is the price of this phone and the book",
    "sad news",
    "i hate it",
    "people enjoy the market",
]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("predict") / "model"
    return save_model_folder(MultitaskModel(tiny_multitask_config()).eval(), tiny_tokenizer(), folder)


@pytest.fixture
def frame():
    return pd.DataFrame({"id": range(100, 100 + len(TEXTS)), "text": TEXTS, "pair": TEXTS[::-1]})


def _write(frame, path):
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    elif path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_json(path, orient="records", lines=True)
    return path


def _read(path):
    return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_json(path, lines=True, dtype=False)


@pytest.mark.parametrize(("source", "target"), [(".csv", ".jsonl"), (".jsonl", ".parquet"), (".parquet", ".jsonl")])
def test_predictions_keep_columns_and_order_and_match_the_pipeline(model_dir, frame, tmp_path, source, target):
    import predict as script  # scripts/predict.py

    output = tmp_path / f"out{target}"
    argv = [str(model_dir), str(_write(frame, tmp_path / f"in{source}")), str(output), "--batch-size", "3"]
    assert script.main(argv + ["--chunk-size", "4", "--no-progress"]) == 0
    result = _read(output)
    assert list(result.columns[:3]) == ["id", "text", "pair"] and result["id"].tolist() == frame["id"].tolist()
    classifier = pipeline("multitask-classification", model=MultitaskModel.from_pretrained(model_dir).eval(),
                          tokenizer=tiny_tokenizer())  # fmt: skip
    for row, answer in zip(result.to_dict("records"), classifier(TEXTS, batch_size=1)):
        for task in ("sentiment", "topic"):
            assert row[task] == answer[task][0]["label"]
            assert row[f"{task}_score"] == pytest.approx(answer[task][0]["score"], abs=1e-5)
        assert list(row["emotions"]) == [item["label"] for item in answer["emotions"]]
        assert list(row["emotions_score"]) == pytest.approx([item["score"] for item in answer["emotions"]], abs=1e-5)


def test_text_pairs_are_encoded_together(model_dir, frame, tmp_path):
    single = predict_module.predict_texts(
        predict_module.load_model(model_dir), tiny_tokenizer(), TEXTS, None, batch_size=4
    )
    paired = predict_module.predict_file(
        model_dir, _write(frame, tmp_path / "in.csv"), tmp_path / "out.jsonl", text_pair_column="pair", progress=False
    )
    result = _read(paired.output)
    model = MultitaskModel.from_pretrained(model_dir).eval()
    expected = model(**tiny_tokenizer()(TEXTS, TEXTS[::-1], padding=True, return_tensors="pt")).logits["sentiment"]
    torch.testing.assert_close(
        torch.tensor(result["sentiment_score"].tolist()), expected.softmax(-1).max(-1).values, atol=1e-5, rtol=0
    )
    assert not (result["sentiment_score"].to_numpy() == single["sentiment"].max(axis=1)).all()


@pytest.mark.parametrize("target", [".jsonl", ".parquet"])
def test_an_interrupted_run_resumes_without_duplicates(model_dir, frame, tmp_path, monkeypatch, target):
    source = _write(frame, tmp_path / "in.jsonl")
    reference = predict_module.predict_file(model_dir, source, tmp_path / f"ref{target}", chunk_size=2, progress=False)
    real, calls = predict_module.predict_texts, []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt  # the third chunk never gets written
        return real(*args, **kwargs)

    output = tmp_path / f"out{target}"
    monkeypatch.setattr(predict_module, "predict_texts", interrupted)
    with pytest.raises(KeyboardInterrupt):
        predict_module.predict_file(model_dir, source, output, chunk_size=2, progress=False)
    if target == ".jsonl":
        with open(output, "a", encoding="utf-8") as handle:
            handle.write('{"id": 104, "te')  # a line cut mid-write
    monkeypatch.setattr(predict_module, "predict_texts", real)
    with pytest.raises(FileExistsError, match="--resume"):
        predict_module.predict_file(model_dir, source, output, chunk_size=2, progress=False)
    resumed = predict_module.predict_file(model_dir, source, output, chunk_size=2, resume=True, progress=False)
    assert (resumed.rows_resumed, resumed.rows_written) == (4, 3)
    pd.testing.assert_frame_equal(_read(output), _read(reference.output))
    assert not output.with_name(output.name + ".parts").exists()


def test_bad_input_is_a_clear_error(model_dir, frame, tmp_path, capsys):
    import predict as script

    source = _write(frame, tmp_path / "in.csv")
    assert script.main([str(model_dir), str(source), str(tmp_path / "o.jsonl"), "--text-column", "body"]) == 1
    assert "No column 'body'" in capsys.readouterr().err
    assert script.main([str(model_dir), str(source), str(tmp_path / "o.csv")]) == 1
    assert "Unsupported output" in capsys.readouterr().err
    holes = _write(frame.assign(text=["ok", None, "fine", "", "x", "y", "z"]), tmp_path / "holes.jsonl")
    with pytest.raises(
        ValueError, match=r"holes.jsonl: column 'text' has missing, non-text or empty values at rows \[1, 3\]"
    ):
        predict_module.predict_file(model_dir, holes, tmp_path / "h.jsonl", progress=False)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--batch-size", "-3"], "batch_size must be an integer >= 1, got -3"),  # wrote every row unpredicted
        (["--chunk-size", "0"], "chunk_size must be an integer >= 1, got 0"),
        (["--num-threads", "-1"], "num_threads must be an integer >= 1, got -1"),
        (["--max-length", "2"], "max_length=2 leaves no room for text .* max_length >= 5"),
        (["--max-length", "100000"], "max_length=100000 is more than the encoder of"),
        (["--text-pair-column", "nope"], "No column 'nope' .*: pass --text-pair-column"),
    ],
)
def test_bad_options_are_refused_before_the_output_is_written(model_dir, frame, tmp_path, capsys, options, message):
    import predict as script

    source = _write(frame.assign(text=[" ".join(["good movie"] * 300)] * len(frame)), tmp_path / "in.csv")
    assert script.main([str(model_dir), str(source), str(tmp_path / "o.jsonl"), *options]) == 1
    errors = re.findall(r"error: ([^\n]*)", capsys.readouterr().err)  # after any progress bar
    assert len(errors) == 1 and re.search(message, errors[0]), errors
    assert not (tmp_path / "o.jsonl").exists()


def test_multiple_choice_tasks_get_no_columns(tmp_path, frame):
    from test_multiple_choice import MIXED_TASKS

    torch.manual_seed(0)
    model = MultitaskModel(tiny_multitask_config(tasks=MIXED_TASKS)).eval()
    folder = save_model_folder(model, tiny_tokenizer(), tmp_path / "model")
    out = predict_module.predict_file(folder, _write(frame, tmp_path / "in.csv"), tmp_path / "o.jsonl", progress=False)
    columns = list(_read(out.output).columns)
    assert "copa" not in columns and "copa_score" not in columns
    others = [task for task, spec in MIXED_TASKS.items() if spec.get("problem_type") != "multiple_choice"]
    assert all(task in columns for task in others)
    only = {"copa": MIXED_TASKS["copa"]}
    folder = save_model_folder(
        MultitaskModel(tiny_multitask_config(tasks=only)).eval(), tiny_tokenizer(), tmp_path / "mc"
    )
    with pytest.raises(ValueError, match=r"Every task of this model is multiple-choice \(\['copa'\]\)"):
        predict_module.predict_file(folder, tmp_path / "in.csv", tmp_path / "mc.jsonl", progress=False)
    # --onnx: the message named an export that refuses such a model
    with pytest.raises(ValueError, match=r"has no ONNX graph: models with .* multiple-choice tasks are not exported"):
        predict_module.predict_file(folder, tmp_path / "in.csv", tmp_path / "x.jsonl", onnx_file="onnx/model.onnx")


@pytest.mark.skipif(not HAS_ONNX, reason="needs the onnx extra: pip install 'polyhead[onnx]'")
def test_onnx_predictions_match_torch(model_dir, frame, tmp_path):
    import shutil

    from polyhead.exporters.onnx import export_onnx

    folder = shutil.copytree(model_dir, tmp_path / "model")
    export_onnx(folder)
    source = _write(frame, tmp_path / "in.parquet")
    torch_out = predict_module.predict_file(folder, source, tmp_path / "t.parquet", progress=False).output
    onnx_out = predict_module.predict_file(
        folder, source, tmp_path / "o.parquet", onnx_file="onnx/model.onnx", progress=False
    ).output
    ours, theirs = _read(onnx_out), _read(torch_out)
    assert ours["topic"].tolist() == theirs["topic"].tolist()
    assert ours["topic_score"].to_numpy() == pytest.approx(theirs["topic_score"].to_numpy(), abs=1e-5)
    assert json.loads(ours.to_json(orient="records"))[0]["id"] == 100


def test_bfloat16_runs_the_torch_model_in_bfloat16(model_dir, frame, tmp_path):
    assert predict_module.load_model(model_dir, dtype="bfloat16").dtype == torch.bfloat16
    source = _write(frame, tmp_path / "in.jsonl")
    full = _read(predict_module.predict_file(model_dir, source, tmp_path / "f.jsonl", progress=False).output)
    half = _read(
        predict_module.predict_file(model_dir, source, tmp_path / "b.jsonl", dtype="bfloat16", progress=False).output
    )
    assert half["id"].tolist() == full["id"].tolist()
    for task in ("sentiment", "topic"):  # bfloat16 keeps ~3 significant digits
        assert half[f"{task}_score"].to_numpy() == pytest.approx(full[f"{task}_score"].to_numpy(), abs=0.02)


def test_a_bad_dtype_is_refused_before_the_output_is_touched(model_dir, frame, tmp_path, capsys):
    import predict as script

    source = _write(frame, tmp_path / "in.jsonl")
    with pytest.raises(ValueError, match=r"dtype must be one of \['float32', 'bfloat16'\], got 'float16'"):
        predict_module.predict_file(model_dir, source, tmp_path / "o.jsonl", dtype="float16", progress=False)
    with pytest.raises(ValueError, match="is for the torch model"):
        predict_module.predict_file(
            model_dir, source, tmp_path / "o.jsonl", onnx_file="onnx/model.onnx", dtype="bfloat16", progress=False
        )
    assert not (tmp_path / "o.jsonl").exists()
    with pytest.raises(SystemExit):
        script.main([str(model_dir), str(source), str(tmp_path / "o.jsonl"), "--onnx", "--dtype", "bfloat16"])
    assert "--dtype is for the torch model" in capsys.readouterr().err


def test_multi_label_rows_use_the_tuned_per_label_thresholds_as_the_pipeline_does(tmp_path, frame):
    torch.manual_seed(0)
    model = MultitaskModel(tiny_multitask_config()).eval()
    # far from the task threshold (0.4) on both sides, so the answers differ from the task threshold's
    spec = normalize_task("emotions", {**model.config.tasks["emotions"], "thresholds": [0.05, 0.95, 0.05, 0.95]})
    model.config.tasks = {**model.config.tasks, "emotions": spec}
    folder = save_model_folder(model, tiny_tokenizer(), tmp_path / "tuned")
    result = _read(
        predict_module.predict_file(folder, _write(frame, tmp_path / "in.csv"), tmp_path / "out.jsonl",
                                    progress=False).output
    )  # fmt: skip
    classifier = pipeline("multitask-classification", model=MultitaskModel.from_pretrained(folder).eval(),
                          tokenizer=tiny_tokenizer())  # fmt: skip
    answers = classifier(TEXTS)
    expected = [[item["label"] for item in answer["emotions"]] for answer in answers]
    assert [list(row) for row in result["emotions"]] == expected
    assert [list(row) for row in result["emotions_score"]] == [
        pytest.approx([item["score"] for item in answer["emotions"]], abs=1e-5) for answer in answers
    ]
    at_task_threshold = classifier(TEXTS, threshold=0.4)
    assert [answer["emotions"] for answer in answers] != [answer["emotions"] for answer in at_task_threshold]


@pytest.mark.parametrize("target", [".jsonl", ".parquet"])
def test_hundreds_of_columns_match_the_pipeline_without_fragmenting_the_frame(tmp_path, frame, target):
    # 80 tasks (every third multi-label): 160 prediction columns, which inserted one by one made pandas warn
    # "DataFrame is highly fragmented" for every chunk; multi-label rows are now cut from one ranking per task.
    torch.manual_seed(0)
    model = MultitaskModel(tiny_multitask_config(tasks=synthetic_tasks(80))).eval()
    folder = save_model_folder(model, tiny_tokenizer(), tmp_path / "many")
    with warnings.catch_warnings():
        warnings.simplefilter("error", pd.errors.PerformanceWarning)
        output = predict_module.predict_file(
            folder, _write(frame, tmp_path / "in.csv"), tmp_path / f"out{target}", chunk_size=5, progress=False
        ).output
    rows = _read(output).to_dict("records")
    classifier = pipeline("multitask-classification", model=model, tokenizer=tiny_tokenizer())
    answers = classifier(TEXTS, top_k=1)
    counts = set()
    for row, answer in zip(rows, answers, strict=True):
        for task, spec in model.config.tasks.items():
            labels, scores = [item["label"] for item in answer[task]], [item["score"] for item in answer[task]]
            if spec["problem_type"] == "multi_label_classification":
                counts.add(len(labels))
                assert list(row[task]) == labels
                assert list(row[f"{task}_score"]) == pytest.approx(scores, abs=1e-5)
            else:
                assert [row[task]] == labels and row[f"{task}_score"] == pytest.approx(scores[0], abs=1e-5)
    assert 0 in counts and max(counts) >= 3  # rows with no label and with several, cut from the same ranking


@pytest.mark.parametrize("source", [".jsonl", ".parquet"])
def test_missing_input_values_are_written_as_json_null(model_dir, tmp_path, source):
    # A null in a numeric or text column of the input reaches pandas as NaN, which json.dumps writes as `NaN`: not
    # JSON (jq, JSON.parse and strict parsers reject the line).
    frame = pd.DataFrame({"id": [1, None, 3], "note": ["a", None, "c"], "text": ["i love this movie", "bad", "sad"]})
    output = predict_module.predict_file(
        model_dir, _write(frame, tmp_path / f"in{source}"), tmp_path / "out.jsonl", progress=False
    ).output

    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")

    rows = [json.loads(line, parse_constant=refuse) for line in output.read_text(encoding="utf-8").splitlines()]
    assert [row["id"] for row in rows] == [1, None, 3] and [row["note"] for row in rows] == ["a", None, "c"]
    assert [row["text"] for row in rows] == ["i love this movie", "bad", "sad"]


@pytest.mark.parametrize("target", [".jsonl", ".parquet"])
def test_resuming_an_output_of_another_model_is_refused(model_dir, frame, tmp_path, monkeypatch, capsys, target):
    # Appending this model's rows to another model's output wrote rows with other columns and reported success.
    import predict as script

    torch.manual_seed(0)
    other = save_model_folder(
        MultitaskModel(tiny_multitask_config(tasks=synthetic_tasks(2))).eval(), tiny_tokenizer(), tmp_path / "other"
    )
    source, output = _write(frame, tmp_path / "in.csv"), tmp_path / f"out{target}"
    real, calls = predict_module.predict_texts, []

    def interrupted(*args, **kwargs):  # the other model's run stops after its first chunk
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(predict_module, "predict_texts", interrupted)
    with pytest.raises(KeyboardInterrupt):
        predict_module.predict_file(other, source, output, chunk_size=3, progress=False)
    monkeypatch.setattr(predict_module, "predict_texts", real)
    before = sorted(path.read_bytes() for path in tmp_path.glob("out*/*")) or output.read_bytes()
    assert script.main([str(model_dir), str(source), str(output), "--resume", "--no-progress"]) == 1
    error = capsys.readouterr().err.splitlines()[-1]  # after the models' loading bars
    assert error.startswith(f"error: {output} holds rows with the columns ") and "'sentiment_score'" in error
    assert "'task_0_score'" in error and "same model" in error and "--overwrite" in error
    assert (sorted(path.read_bytes() for path in tmp_path.glob("out*/*")) or output.read_bytes()) == before
    assert script.main([str(other), str(source), str(output), "--resume", "--no-progress"]) == 0  # the same model
    assert len(_read(output)) == len(TEXTS)


@pytest.mark.parametrize(("source", "value"), [(".jsonl", ""), (".jsonl", "   "), (".csv", ""), (".parquet", " \n")])
def test_empty_texts_are_refused_as_the_pipeline_refuses_them(model_dir, frame, tmp_path, source, value):
    texts = frame.assign(text=["ok", value, "fine", value, *TEXTS[4:]])
    path = _write(texts, tmp_path / f"in{source}")
    with pytest.raises(ValueError, match=rf"{path.name}: column 'text' has .*empty.* at rows \[1, 3\].*drop or fill"):
        predict_module.predict_file(model_dir, path, tmp_path / "out.jsonl", progress=False)
    pairs = _write(frame.assign(pair=[*TEXTS[:-1], value]), tmp_path / f"pairs{source}")
    with pytest.raises(ValueError, match=r"column 'pair' has .* at rows \[6\]"):
        predict_module.predict_file(model_dir, pairs, tmp_path / "p.jsonl", text_pair_column="pair", progress=False)


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("in.csv", "", "is empty (0 bytes)"),
        ("in.jsonl", "", "is empty (0 bytes)"),
        ("in.parquet", "", "is empty (0 bytes)"),
        ("in.csv", "\n\n", "has no data rows"),
        ("in.csv", "id,text\n", "has no data rows"),
        ("in.jsonl", "\n \n", "has no data rows"),
    ],
)
def test_an_input_without_rows_is_named_before_the_output_is_touched(
    model_dir, tmp_path, capsys, name, content, problem
):
    import predict as script

    source = tmp_path / name
    source.write_text(content, encoding="utf-8")
    for output in (tmp_path / "out.jsonl", tmp_path / "out.parquet"):
        assert script.main([str(model_dir), str(source), str(output), "--no-progress"]) == 1
        error = capsys.readouterr().err
        assert error.startswith(f"error: Input file {source} ") and "nothing to predict" in error
        assert problem in error and len(error.splitlines()) == 1
        assert not output.exists() and not output.with_name(output.name + ".parts").exists()
    empty = pd.DataFrame({"text": pd.Series([], dtype=str)})
    with pytest.raises(ValueError, match="has no data rows"):
        predict_module.predict_file(model_dir, _write(empty, tmp_path / "z.parquet"), tmp_path / "z.jsonl")
