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
    ids = frame["id"].astype(str) if source == ".csv" else frame["id"]  # a CSV cell is text, as the file holds it
    assert list(result.columns[:3]) == ["id", "text", "pair"] and result["id"].tolist() == ids.tolist()
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
        # the flag as spelled: the message said "Use --max_length 80 or less", a flag predict.py does not have
        (["--max-length", "2"], "--max-length=2 leaves no room for text .* use --max-length >= 5"),
        (["--max-length", "100000"], "--max-length=100000 is more than the encoder of .* Use --max-length 80 or less"),
        (["--max-length", "0"], "--max-length must be an integer >= 1, got 0"),
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


@pytest.mark.parametrize("column", ["text", "pair"])
def test_a_text_that_is_not_valid_unicode_is_refused_with_its_rows(model_dir, tmp_path, capsys, column):
    # {"text": "bad \ud800 text"} (a lone surrogate, as a bad decode writes it) failed inside the tokenizers library
    # with a TypeError traceback, after the rows of the chunks before it were written (--chunk-size 1).
    import predict as script

    source, output = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    rows = [{"text": "good movie", "pair": "a"}, {"text": "ok", "pair": "b"}, {"text": "fine", "pair": "c"}]
    rows[1][column] = "bad \ud800 text"
    rows[2][column] = "\udfff"
    source.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    for chunk_size, found in (("1", "[1]"), ("4096", "[1, 2]")):  # the rows of the first chunk with one
        argv = [str(model_dir), str(source), str(output), "--chunk-size", chunk_size, "--no-progress"]
        assert script.main([*argv, "--text-pair-column", "pair"]) == 1
        error = _refusal(capsys)
        assert error.startswith(f"{source}: column {column!r} has texts that are not valid Unicode at rows {found}")
        assert "row 1: surrogates not allowed at character 4" in error and "decode the file's bytes as UTF-8" in error
        assert _nothing_written(output)


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


def _refusal(capsys) -> str:
    """The one error line of a refused scripts/predict.py run (after any loading bars)."""
    errors = re.findall(r"error: ([^\n]*)", capsys.readouterr().err)
    assert len(errors) == 1, errors
    return errors[0]


def _rows(output) -> list[dict]:
    """The output's rows as Python values, exactly as written (no dtype inference on the way back)."""
    if output.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(output).to_pylist()
    return [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]


def _nothing_written(output):
    return not output.exists() and not output.with_name(output.name + ".parts").exists()


@pytest.mark.parametrize(
    ("content", "problem"),
    [  # the first data row: pandas took `text` as the index and scored the label column, reported as success
        ("text,label\ni love this movie,positive,\nthe phone is bad,negative,\n", "the first data row has 3 fields"),
        ("text,label\ni love this movie,positive\nbad,negative\nsad,neutral,\n", "line 4 has 3 fields"),
    ],
)
def test_a_csv_row_with_more_fields_than_the_header_is_refused(model_dir, tmp_path, capsys, content, problem):
    import predict as script

    source = tmp_path / "in.csv"
    source.write_text(content, encoding="utf-8")
    for output in (tmp_path / "out.jsonl", tmp_path / "out.parquet"):
        for chunk_size in ("1", "4096"):
            argv = [str(model_dir), str(source), str(output), "--chunk-size", chunk_size, "--no-progress"]
            assert script.main(argv) == 1
            error = _refusal(capsys)
            assert error.startswith(f"{source}") and problem in error and "but the header names 2" in error
            assert "trailing comma" in error and _nothing_written(output)
    source.write_bytes(b"text\ngood\n\xff\xfe bad\n")
    assert script.main([str(model_dir), str(source), str(tmp_path / "out.jsonl"), "--no-progress"]) == 1
    assert _refusal(capsys).startswith(f"{source} is not UTF-8 text")


@pytest.mark.parametrize("source", [".jsonl", ".csv", ".parquet"])
def test_the_output_is_never_the_input(model_dir, frame, tmp_path, capsys, source):
    # --overwrite deleted the input, then failed on the missing input
    import predict as script

    path = _write(frame, tmp_path / f"in{source}")
    before = path.read_bytes()
    outputs = [path] if source != ".csv" else []
    (tmp_path / "link.jsonl").symlink_to(path)
    for output in [*outputs, tmp_path / "link.jsonl"]:
        for flag in ("--overwrite", "--resume", None):
            assert (
                script.main([str(model_dir), str(path), str(output), *([flag] if flag else []), "--no-progress"]) == 1
            )
            assert f"would replace the input {path}: name another output file" in _refusal(capsys)
            assert path.read_bytes() == before


@pytest.mark.parametrize("target", [".jsonl", ".parquet"])
@pytest.mark.parametrize("chunk_size", [1, 4096])
def test_input_columns_come_back_as_the_file_holds_them(model_dir, tmp_path, target, chunk_size):
    # CSV 00123 came back 123 (or "00123" and 123 by chunk), an empty cell as "" (documented: null); a JSONL integer
    # beside a null became a float (1.2345678901234568e+18), a date-like text a timestamp.
    csv = tmp_path / "in.csv"
    csv.write_text("id,text,zip,flag\n00123,i love this movie,01234,True\n7,good food,,NA\n", encoding="utf-8")
    output = predict_module.predict_file(
        model_dir, csv, tmp_path / f"c{target}", chunk_size=chunk_size, progress=False
    ).output
    rows = [{key: row[key] for key in ("id", "zip", "flag")} for row in _rows(output)]
    assert rows == [{"id": "00123", "zip": "01234", "flag": "True"}, {"id": "7", "zip": None, "flag": "NA"}]
    jsonl = tmp_path / "in.jsonl"
    lines = [
        {"id": 1234567890123456789, "text": "i love", "created_at": "2023-01-01", "score": 0.1},
        {"id": None, "text": "the film", "created_at": None, "score": 2.5},
    ]
    jsonl.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    output = predict_module.predict_file(
        model_dir, jsonl, tmp_path / f"j{target}", chunk_size=chunk_size, progress=False
    ).output
    assert [{key: row[key] for key in lines[0]} for row in _rows(output)] == lines
    assert [type(row["id"]) for row in _rows(output)] == [int, type(None)]


@pytest.mark.parametrize(("source", "value"), [(".csv", "2023"), (".csv", "True"), (".jsonl", 2023)])
def test_a_text_that_looks_like_a_number_is_treated_alike_at_every_chunk_size(model_dir, tmp_path, source, value):
    # CSV: refused as non-text with --chunk-size 1, accepted with the default (the type was guessed per chunk). JSON
    # Lines: a number in the text column is not a text, whatever the chunk size.
    path = _write(pd.DataFrame({"text": [value, "great movie"]}), tmp_path / f"in{source}")
    for chunk_size in (1, 4096):
        output = tmp_path / f"out{chunk_size}.jsonl"
        if source == ".csv":
            predict_module.predict_file(model_dir, path, output, chunk_size=chunk_size, progress=False)
            assert _read(output)["text"].tolist() == [value, "great movie"]
        else:
            with pytest.raises(ValueError, match=r"column 'text' has missing, non-text or empty values at rows \[0\]"):
                predict_module.predict_file(model_dir, path, output, chunk_size=chunk_size, progress=False)
            assert _nothing_written(output)


def test_parquet_output_refuses_a_column_of_mixed_types_before_the_run(model_dir, tmp_path, capsys, monkeypatch):
    # Numbers in one chunk and texts in the next: pyarrow failed to merge the parts after every row had run, with a
    # traceback, and left OUT.parquet.parts/ that --resume failed on the same way.
    import predict as script

    source, output = tmp_path / "in.jsonl", tmp_path / "out.parquet"
    lines = [{"code": 1, "text": "i love"}, {"code": 2, "text": "the film"}, {"code": "a", "text": "bad"}]
    source.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    for chunk_size, found in (("2", "int64 values in earlier rows and string values in row 2"), ("3", "rows 0-2")):
        assert (
            script.main([str(model_dir), str(source), str(output), "--chunk-size", chunk_size, "--no-progress"]) == 1
        )
        error = _refusal(capsys)
        assert error.startswith(f"{source}: column 'code' ") and found in error and "write a .jsonl output" in error
        assert _nothing_written(output)
    assert script.main([str(model_dir), str(source), str(tmp_path / "out.jsonl"), "--chunk-size", "2"]) == 0
    assert _read(tmp_path / "out.jsonl")["code"].tolist() == [1, 2, "a"]  # JSONL holds any mix
    numbers = _write(pd.DataFrame({"v": pd.Series([1, 2.5, None], dtype=object), "text": TEXTS[:3]}), source)
    predict_module.predict_file(model_dir, numbers, output, chunk_size=1, progress=False)  # int64 and double merge
    assert _read(output)["v"].tolist()[:2] == [1.0, 2.5]
    # parts that do not merge (an earlier version's run): one line naming the fix, not a traceback
    csv = _write(pd.DataFrame({"code": ["1", "a"], "text": TEXTS[:2]}), tmp_path / "in.csv")
    real = predict_module.predict_texts
    monkeypatch.setattr(predict_module, "predict_texts", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        predict_module.predict_file(model_dir, csv, tmp_path / "p.parquet", chunk_size=1, progress=False)
    monkeypatch.setattr(predict_module, "predict_texts", real)
    predict_module.predict_file(model_dir, csv, tmp_path / "q.parquet", chunk_size=1, progress=False)
    parts = tmp_path / "p.parquet.parts"
    first = pd.read_parquet(tmp_path / "q.parquet").iloc[:1].assign(code=1)
    first.to_parquet(parts / "part-000000.parquet", index=False)  # code as int64, as the old reader typed it
    argv = [str(model_dir), str(csv), str(tmp_path / "p.parquet"), "--chunk-size", "1", "--resume", "--no-progress"]
    assert script.main(argv) == 1
    error = _refusal(capsys)
    assert error.startswith(f"The parts in {parts} do not merge into one Parquet file") and "--overwrite" in error


@pytest.mark.parametrize("target", [".jsonl", ".parquet"])
@pytest.mark.parametrize(
    ("options", "rows", "message"),
    [
        (["--max-length", "3"], None, "--max-length=3 leaves no room for text"),
        (["--text-column", "body"], None, "No column 'body'"),
        ([], {"text": "fine", "sentiment": "x"}, r"input columns \['sentiment'\] would be overwritten by predictions"),
        ([], {"text": ""}, r"column 'text' has missing, non-text or empty values at rows \[7\]"),  # the last chunk
        ([], {"text": "{broken"}, "line 8 is not valid JSON"),
    ],
)
def test_a_refused_run_leaves_nothing_behind(model_dir, frame, tmp_path, capsys, target, options, rows, message):
    # The writer was made before the checks: a refused run left OUT.parquet.parts/ (the corrected run was then refused
    # with "OUT.parquet already exists"), and a bad row in a later chunk came after the rows before it were written.
    import predict as script

    source = _write(frame, tmp_path / "in.jsonl")
    if rows:
        line = json.dumps({"id": 107, **rows}) if rows.get("text") != "{broken" else "{broken"
        source.write_text(source.read_text(encoding="utf-8") + line + "\n", encoding="utf-8")
    output = tmp_path / f"out{target}"
    argv = [str(model_dir), str(source), str(output), "--chunk-size", "2", "--no-progress"]
    assert script.main([*argv, *options]) == 1
    assert re.search(message, _refusal(capsys)) and _nothing_written(output)
    assert script.main([*argv, *options, "--resume"]) == 1 and _nothing_written(output)
    _refusal(capsys)
    _write(frame.iloc[:2], tmp_path / "old.jsonl")
    predict_module.predict_file(model_dir, tmp_path / "old.jsonl", output, progress=False)
    before = output.read_bytes()
    assert script.main([*argv, *options, "--overwrite"]) == 1 and output.read_bytes() == before  # kept when refused
    _refusal(capsys)
    if not rows:  # corrected, the run goes through
        assert script.main([*argv, "--overwrite"]) == 0 and len(_read(output)) == len(frame)


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("in.json", '[{"text": "i love this"}, {"text": "bad"}]', "is a JSON array, not JSON Lines"),
        ("in.json", '[\n  {"text": "i love this"}\n]\n', "is a JSON array, not JSON Lines"),
        ("in.jsonl", '{"text": "a b"}\n"just a string"\n', "line 2 is a string, not a JSON object"),
        ("in.jsonl", '{"text": "a b"}\n\n[1, 2]\n', "line 3 is an array, not a JSON object"),
        ("in.jsonl", '{"text": "a b"}\n{"text": "c"\n', "line 2 is not valid JSON (Expecting ',' delimiter"),
    ],
)
def test_an_input_that_is_not_json_lines_is_named_with_its_line(model_dir, tmp_path, capsys, name, content, problem):
    # "No column 'text' in the input (columns: [0, 1])", "Expected object or value at position 1", "dictionary update
    # sequence element #0 has length 1; 2 is required": no file, no line, no fix.
    import predict as script

    source = tmp_path / name
    source.write_text(content, encoding="utf-8")
    output = tmp_path / "out.jsonl"
    assert script.main([str(model_dir), str(source), str(output), "--chunk-size", "1", "--no-progress"]) == 1
    error = _refusal(capsys)
    assert error.startswith(f"{source} {problem}") and "the input must be JSON Lines, one JSON object a line" in error
    assert _nothing_written(output)


def test_resuming_checks_a_jsonl_output_before_touching_it(model_dir, frame, tmp_path):
    # The output is read before anything is written: a first row cut mid-write is dropped and predicted again, but a
    # file that is no prediction output is refused as it is (a last line without newline was cut away first).
    source, output = _write(frame, tmp_path / "in.jsonl"), tmp_path / "out.jsonl"
    output.write_text('{"id": 100, "te', encoding="utf-8")
    result = predict_module.predict_file(model_dir, source, output, resume=True, progress=False)
    assert (result.rows_resumed, result.rows_written) == (0, len(frame)) and len(_rows(output)) == len(frame)
    output.write_text("my notes", encoding="utf-8")
    with pytest.raises(ValueError, match="is not a prediction file"):
        predict_module.predict_file(model_dir, source, output, resume=True, progress=False)
    assert output.read_text(encoding="utf-8") == "my notes"


@pytest.mark.skipif(not HAS_ONNX, reason="needs the onnx extra: pip install 'polyhead[onnx]'")
def test_a_hub_model_is_served_as_its_folder_with_its_graph_and_serving_pick(
    model_dir, frame, tmp_path, monkeypatch
):
    """A Hub id's onnx/ graph was looked for on the local disk ("No ONNX graph at org/x/onnx/model.onnx: export it",
    a command that then failed) and its serving.json ignored: its snapshot is now served like the folder."""
    import shutil

    from huggingface_hub import constants

    from polyhead.exporters.onnx import export_onnx

    folder = shutil.copytree(model_dir, tmp_path / "model")
    export_onnx(folder)
    (folder / "serving.json").write_text(json.dumps({"backend": "onnx", "onnx_file": "onnx/model.onnx"}))
    repo = tmp_path / "hub-cache" / "models--org--served"
    shutil.copytree(folder, repo / "snapshots" / ("d" * 40))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("d" * 40)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    loaded, load_model = [], predict_module.load_model
    monkeypatch.setattr(predict_module, "load_model", lambda *a, **k: loaded.append(a[1]) or load_model(*a, **k))
    source = _write(frame, tmp_path / "in.parquet")
    local = predict_module.predict_file(folder, source, tmp_path / "f.parquet", progress=False)
    by_id = predict_module.predict_file("org/served", source, tmp_path / "h.parquet", progress=False)
    asked = predict_module.predict_file(
        "org/served", source, tmp_path / "o.parquet", onnx_file="onnx/model.onnx", progress=False
    )
    assert loaded == ["onnx/model.onnx"] * 3  # the pick of serving.json, by folder and by id; then as asked
    expected = _read(local.output)
    for output in (by_id.output, asked.output):
        assert _read(output)["topic_score"].tolist() == pytest.approx(expected["topic_score"].tolist(), abs=1e-6)
