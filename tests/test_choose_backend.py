"""The serving-path chooser (`polyhead.benchmark.choose`, `scripts/benchmark.py --choose`) and the `serving.json`
it writes, as the Inference Endpoints handler and bulk prediction read it."""

import functools
import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch
from torch._dynamo.testing import CompileCounter

from polyhead import MultitaskModel
from polyhead.benchmark import choose
from polyhead.benchmark.choose import (
    COMPILED,
    DEFAULT_PATHS,
    PATHS,
    BackendChoice,
    PathResult,
    check_min_agreement,
    choose_backend,
    fastest_agreeing,
    format_choice,
    label_agreement,
    sample_texts,
    write_choice,
)
from polyhead.benchmark.inputs import synthetic_texts
from polyhead.saving import save_model_folder
from polyhead.serving import handler
from polyhead.serving.compiled import compile_model, resolve_dtype
from polyhead.serving.handler import CHOICE_VARIABLES, SETTINGS_FILE, read_serving_file
from polyhead.serving.predict import chosen_backend, predict_file
from polyhead.serving.settings import read_serving_file as library_reader
from polyhead.testing_utils import tiny_multitask_config, tiny_tokenizer


ROOT = Path(__file__).resolve().parent.parent
HAS_ONNX = all(importlib.util.find_spec(name) for name in ("onnx", "onnxscript", "onnxruntime"))


@pytest.fixture(autouse=True)
def no_choice_in_the_environment(monkeypatch):
    for name in CHOICE_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def folder(tmp_path):
    torch.manual_seed(0)
    return save_model_folder(MultitaskModel(tiny_multitask_config()).eval(), tiny_tokenizer(), tmp_path / "model")


def _script():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import benchmark
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    return benchmark


def answer(**labels) -> dict:
    return {task: [{"label": label, "score": 0.9} for label in names] for task, names in labels.items()}


def test_label_agreement_compares_top_labels_and_label_sets():
    reference = [answer(sentiment=["pos"], emotions=["joy", "fear"])] * 4
    ours = [
        answer(sentiment=["pos"], emotions=["fear", "joy"]),  # the same set in another order agrees
        answer(sentiment=["neg"], emotions=["joy", "fear"]),
        answer(sentiment=["pos"], emotions=["joy"]),
        answer(sentiment=["pos"], emotions=["joy", "fear"]),
    ]
    assert label_agreement(ours, reference) == {"sentiment": 0.75, "emotions": 0.75}


def test_the_fastest_path_that_agrees_on_every_task_is_chosen():
    def measured(name, speed, *agreement):
        return PathResult(name, PATHS[name], speed, dict(zip(("a", "b"), agreement)))

    results = [
        measured("torch-fp32", 10.0, 1.0, 1.0),
        measured("torch-bf16", 30.0, 1.0, 0.99),  # fastest, but one task disagrees on 1% of the texts
        measured("onnx-fp32", 20.0, 1.0, 1.0),
        measured("onnx-int8", 25.0, 0.996, 0.995),
        PathResult("onnx-int8", PATHS["onnx-int8"], skipped="not installed"),
    ]
    assert fastest_agreeing(results).name == "onnx-int8"
    assert fastest_agreeing(results, min_agreement=0.999).name == "onnx-fp32"
    assert fastest_agreeing(results[:1], min_agreement=1.0).name == "torch-fp32"


def test_sample_texts_from_files(tmp_path):
    (tmp_path / "a.txt").write_text("one\n\ntwo\nthree\n")
    assert sorted(sample_texts(10, tmp_path / "a.txt")) == ["one", "three", "two"]
    (tmp_path / "a.jsonl").write_text('{"body": "x"}\n{"body": "y"}\n')
    assert sorted(sample_texts(5, tmp_path / "a.jsonl", "body")) == ["x", "y"]
    with pytest.raises(KeyError, match="No column 'text' .* pass --text-column"):
        sample_texts(1, tmp_path / "a.jsonl")
    with pytest.raises(FileNotFoundError, match="pass --texts"):
        sample_texts(1, data_dir=tmp_path)


@pytest.mark.skipif(not HAS_ONNX, reason="needs the onnx extra (pip install 'polyhead[onnx]')")
def test_choose_measures_every_path_and_writes_what_the_handler_serves(folder, tmp_path, capsys):
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(synthetic_texts(24)))
    script = _script()
    command = ["--choose", str(folder), "--texts", str(texts), "--time-budget", "0", "--batch-size", "4", "--write"]
    script.main([*command, "--min-agreement", "90"])
    printed = capsys.readouterr().out
    saved = json.loads((folder / SETTINGS_FILE).read_text())
    measured = {row["name"]: row for row in saved["measured"]["results"]}
    assert list(measured) == list(DEFAULT_PATHS)  # the compiled path only when asked
    assert all(len(row["runs"]) == 1 and row["texts_per_second"] > 0 for row in measured.values())  # one round
    assert set(measured["torch-fp32"]["agreement"].values()) == {1.0}
    assert saved["measured"]["min_agreement"] == pytest.approx(0.9)
    qualifying = [row for row in measured.values() if min(row["agreement"].values()) >= 0.9]
    assert saved["chosen"] == max(qualifying, key=lambda row: row["texts_per_second"])["name"]
    assert f"chosen: {saved['chosen']}" in printed and "| onnx-int8 |" in printed
    assert "at least 90.0% of the texts for every task" in printed
    # The folder serves the pick: settings readable, an ONNX pick's graph copied in, nothing else exported there.
    assert read_serving_file(str(folder)) == PATHS[saved["chosen"]]
    onnx_files = sorted(p.relative_to(folder).as_posix() for p in folder.glob("onnx/*"))
    assert onnx_files == ([PATHS[saved["chosen"]]["onnx_file"]] if saved["chosen"].startswith("onnx") else [])
    endpoint = handler.EndpointHandler(str(folder))
    assert endpoint.backend == PATHS[saved["chosen"]]["backend"]
    assert set(endpoint({"inputs": ["good movie", "bad"]})[0]) == {"sentiment", "topic", "emotions"}


def test_choose_refuses_a_missing_folder_or_texts_clearly(folder, tmp_path):
    script = _script()
    with pytest.raises(SystemExit, match="is not a complete multitask model folder"):
        script.main(["--choose", str(tmp_path / "nope")])
    with pytest.raises(SystemExit, match="Sample texts must be a .jsonl, .csv or .txt file"):
        script.main(["--choose", str(folder), "--texts", str(tmp_path / "texts.parquet")])


@pytest.mark.parametrize("value", [0, -0.1, 1.5, 99.5, float("nan"), "0.9", True])
def test_a_least_agreement_outside_0_to_1_is_refused_before_anything_loads(folder, value):
    with pytest.raises(ValueError, match=r"share of the texts in \(0, 1\]"):
        check_min_agreement(value)
    with pytest.raises(ValueError, match=r"share of the texts in \(0, 1\]"):
        choose_backend(folder / "not-loaded", ["a text"], min_agreement=value)


@pytest.mark.parametrize("percent", ["0", "100.5", "-3"])
def test_the_script_takes_the_least_agreement_in_percent(folder, percent):
    with pytest.raises(SystemExit, match=r"--min-agreement is a percent of texts in \(0, 100\]"):
        _script().main(["--choose", str(folder), "--min-agreement", percent])


def compiled_row(choice: BackendChoice) -> PathResult:
    return next(result for result in choice.results if result.name == COMPILED)


def test_the_compiled_path_is_compiled_before_it_is_timed_in_this_cpus_dtype(folder, monkeypatch):
    counter = CompileCounter()  # dynamo traces every bucket as inductor would, the graphs run eagerly (fast)
    monkeypatch.setattr(choose, "compile_model", functools.partial(compile_model, backend=counter))
    frames_at_call = []  # graphs compiled so far, as each call of the compiled runner begins
    real_time_paths = choose._time_paths

    class Recorded:
        def __init__(self, runner):
            self.runner, self.model = runner, runner.model

        def __call__(self, *args, **kwargs):
            frames_at_call.append(counter.frame_count)
            return self.runner(*args, **kwargs)

    def time_paths(runners, *args):
        runners[COMPILED] = Recorded(runners[COMPILED])
        return real_time_paths(runners, *args)

    monkeypatch.setattr(choose, "_time_paths", time_paths)
    texts = synthetic_texts(11) + ["word " * 40]  # 42 tokens: the last batch meets a bucket (48) no other batch does
    choice = choose_backend(folder, texts, batch_size=4, time_budget=0, paths=("torch-fp32", COMPILED))
    row = compiled_row(choice)
    assert row.settings == {"backend": "torch", "dtype": resolve_dtype("auto"), "compile": True}
    assert row.texts_per_second > 0 and len(row.runs) == 1 and set(row.agreement) == {"sentiment", "topic", "emotions"}
    # The warm-up pass over every text compiled every bucket: the timed round compiled nothing more.
    assert frames_at_call == [0, counter.frame_count] and counter.frame_count >= 1  # warm-up call, then one round
    assert PATHS[COMPILED] == {"backend": "torch", "compile": True}  # the dtype is filled in per machine, not stored


def test_the_compiled_path_is_skipped_with_why_where_it_cannot_run(folder, monkeypatch):
    monkeypatch.setattr(choose, "compile_unavailable", lambda: "no C++ compiler was found: install g++ or set CXX")
    choice = choose_backend(folder, synthetic_texts(8), batch_size=4, time_budget=0, paths=("torch-fp32", COMPILED))
    assert compiled_row(choice).texts_per_second is None and choice.chosen == "torch-fp32"
    assert "| torch-compiled | | | | | skipped: no C++ compiler was found: install g++ or set CXX |" in format_choice(
        choice
    )


def test_a_compiled_path_that_falls_back_to_eager_is_not_timed(folder, monkeypatch):
    def broken(graph, example_inputs):
        raise RuntimeError("no compiler today")

    monkeypatch.setattr(choose, "compile_model", functools.partial(compile_model, backend=broken))
    with pytest.warns(UserWarning, match="compiling failed"):
        choice = choose_backend(
            folder, synthetic_texts(8), batch_size=4, time_budget=0, paths=("torch-fp32", COMPILED)
        )
    row = compiled_row(choice)
    assert row.runs == [] and row.skipped.startswith("it runs eager here: compiling failed (")
    assert "no compiler today" in row.skipped
    assert choice.chosen == "torch-fp32"


def test_a_compiled_pick_is_what_the_handler_serves(folder):
    settings = {"backend": "torch", "dtype": "bfloat16", "compile": True}
    row = PathResult(COMPILED, settings, 100.0, {"sentiment": 1.0}, [0.1])
    write_choice(folder, BackendChoice(COMPILED, settings, [row], 8, 4, 2, "a CPU", 0.995, 1.0, "2026-12-06"))
    assert library_reader(str(folder)) == settings  # what bulk prediction reads
    assert read_serving_file(str(folder)) == settings  # the handler's copy (handler.py runs without polyhead)


def test_the_script_times_the_compiled_path_only_when_asked(folder, tmp_path, monkeypatch):
    asked = []

    def recorded(*args, **kwargs):
        asked.append(kwargs["paths"])
        raise KeyboardInterrupt  # stop before anything is timed

    monkeypatch.setattr(choose, "choose_backend", recorded)
    (tmp_path / "texts.txt").write_text("a text\nanother text\n")
    texts = ["--texts", str(tmp_path / "texts.txt")]
    for flags in ([], ["--compiled"]):
        with pytest.raises(KeyboardInterrupt):
            _script().main(["--choose", str(folder), *texts, *flags])
    assert asked == [DEFAULT_PATHS, (*DEFAULT_PATHS, COMPILED)]


def test_the_handler_reads_serving_json_and_the_environment_overrides_it(folder, monkeypatch):
    (folder / SETTINGS_FILE).write_text(json.dumps({"backend": "torch", "dtype": "bfloat16", "measured": {}}))
    endpoint = handler.EndpointHandler(str(folder))
    assert endpoint.backend == "torch" and endpoint.pipeline.model.dtype == torch.bfloat16
    monkeypatch.setenv("POLYHEAD_BACKEND", "torch")  # overrides the backend only: the file's bfloat16 still applies
    assert handler.EndpointHandler(str(folder)).pipeline.model.dtype == torch.bfloat16
    monkeypatch.setenv("POLYHEAD_DTYPE", "float32")  # each variable overrides its one setting
    assert handler.EndpointHandler(str(folder)).pipeline.model.dtype == torch.float32


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "is not valid JSON"),
        ('{"backend": "torch", "dtype": "float64"}', "must hold"),
        ('{"backend": "tensorflow"}', "must hold"),
        ('["torch"]', "must hold"),
        ('{"backend": "onnx", "onnx_file": "onnx/model_quantized.onnx"}', "chooses onnx/model_quantized.onnx, which"),
    ],
)
def test_a_bad_serving_json_is_refused_with_the_fix(folder, content, message):
    (folder / SETTINGS_FILE).write_text(content)
    with pytest.raises(ValueError, match=message) as error:
        handler.EndpointHandler(str(folder))
    assert "run the chooser again or delete it" in str(error.value)


def test_bulk_prediction_follows_serving_json_unless_told(folder, tmp_path):
    assert chosen_backend(folder, None, None) == (None, "float32", False)  # no file: torch float32, as before
    (folder / SETTINGS_FILE).write_text(json.dumps({"backend": "torch", "dtype": "bfloat16"}))
    assert chosen_backend(folder, None, None) == (None, "bfloat16", False)
    assert chosen_backend(folder, None, "float32") == (None, "float32", False)
    assert chosen_backend(folder, "onnx/model.onnx", None) == ("onnx/model.onnx", "float32", False)
    assert chosen_backend(folder, None, None, compile=True) == (None, "auto", True)
    source = tmp_path / "in.jsonl"
    source.write_text('{"text": "good movie"}\n{"text": "the team win the game today"}\n')
    chosen = predict_file(folder, source, tmp_path / "chosen.jsonl", progress=False)
    full = predict_file(folder, source, tmp_path / "full.jsonl", dtype="float32", progress=False)
    rows = [[json.loads(line) for line in result.output.read_text().splitlines()] for result in (chosen, full)]
    for ours, theirs in zip(*rows, strict=True):
        assert ours["sentiment_score"] == pytest.approx(theirs["sentiment_score"], abs=0.02)
    assert rows[0] != rows[1]  # bfloat16 ran: its scores are not float32's


@pytest.mark.parametrize(
    "content",
    [
        '{"backend": "torch", "dtype": "bfloat16"}',
        '{"backend": "torch"}',
        '{"backend": "torch", "dtype": "bfloat16", "compile": true}',
        '{"backend": "torch", "compile": false}',
        '{"backend": "torch", "compile": "yes"}',
        '{"backend": "onnx", "onnx_file": "onnx/model.onnx"}',
        '{"backend": "onnx", "onnx_file": "onnx/missing.onnx"}',
        '{"backend": "gpu"}',
        "not json",
        "[1, 2]",
    ],
)
def test_handler_reads_serving_json_as_the_library_does(tmp_path, content):
    # handler.py runs without polyhead and keeps a copy of the library's reader: pinned here, answer and error alike.
    from polyhead.serving import settings

    (tmp_path / "onnx").mkdir()
    (tmp_path / "onnx" / "model.onnx").write_bytes(b"graph")
    (tmp_path / SETTINGS_FILE).write_text(content, encoding="utf-8")
    answers = []
    for reader in (settings.read_serving_file, read_serving_file):
        try:
            answers.append(("answer", reader(str(tmp_path))))
        except ValueError as error:
            answers.append(("error", str(error)))
    assert answers[0] == answers[1]
    assert settings.SETTINGS_FILE == SETTINGS_FILE and settings.TORCH_DTYPES == handler.DTYPES
