"""scripts/eval_zero_shot.py and polyhead.benchmark.zero_shot on a tiny NLI model and tiny data: bad arguments, models
and data end in a one-line error (exit status 1) before the model loads; a good run scores and writes its report."""

import json
import re
from pathlib import Path

import pytest
import torch
from helpers import script_main

from polyhead import MultitaskModel
from polyhead.benchmark import zero_shot
from polyhead.saving import save_model_folder
from polyhead.testing_utils import TINY_NLI_TASKS, tiny_encoder_config, tiny_multitask_config, tiny_tokenizer


ROOT = Path(__file__).resolve().parents[1]
SENTIMENT = [("i love this movie", "positive"), ("bad phone", "negative"), ("good game", "positive")]
QUESTIONS = [("where is the team", "LOC"), ("who won the game", "HUM"), ("how many books", "NUM")]


def _write_set(folder: Path, train: list[dict], test: list[dict]) -> None:
    folder.mkdir(parents=True)
    for split, rows in (("train", train), ("test", test)):
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


def _rows(pairs, repeat=3):
    return [{"text": text, "label": label} for text, label in pairs * repeat]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """`(nli model, model without an NLI task, plain BERT folder)`."""
    root = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    nli, no_nli = (
        save_model_folder(MultitaskModel(tiny_multitask_config(tasks=tasks)), tiny_tokenizer(), root / name)
        for name, tasks in (("nli", TINY_NLI_TASKS), ("no_nli", {"topic": TINY_NLI_TASKS["topic"]}))
    )
    bert = root / "bert"
    tiny_encoder_config("bert").save_pretrained(bert)
    tiny_tokenizer().save_pretrained(bert)
    return nli, no_nli, bert


@pytest.fixture
def data_dir(tmp_path):
    data = tmp_path / "data"
    _write_set(data / "sst2", _rows(SENTIMENT), _rows(SENTIMENT, 2))
    _write_set(data / "trec", _rows(QUESTIONS), _rows(QUESTIONS, 2))
    emotions = [{"text": "i love this", "labels": ["joy", "love"]}] * 3
    _write_set(data / "go_emotions", emotions, emotions)
    pairs = [{"text": "a man plays", "text_pair": "a man is playing", "label": "entailment"}] * 3
    _write_set(data / "sick_nli", pairs, pairs)
    return data


@pytest.fixture
def main(monkeypatch):
    """The script's `main`, whose model loading fails loudly: a refusal must come before the model loads."""
    main = script_main("eval_zero_shot")

    class NotLoaded:
        @staticmethod
        def from_pretrained(*args, **kwargs):
            raise AssertionError("the model loaded before the arguments were checked")

    monkeypatch.setitem(main.__globals__, "MultitaskModel", NotLoaded)
    return main


def _refused(main, argv) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main([str(arg) for arg in argv])
    message = exit_info.value.code
    assert isinstance(message, str) and message.startswith("error: ") and "\n" not in message, message
    return message


def test_a_model_that_is_not_a_polyhead_folder_is_refused(main, folders, data_dir):
    _, _, bert = folders
    message = _refused(main, [bert, "--data-dir", data_dir])
    assert "is not a polyhead multitask model folder" in message
    message = _refused(main, ["nope", "--data-dir", data_dir])  # no such folder, and no Hub to load it from
    assert message.startswith("error: nope: no such local folder")


def test_missing_datasets_and_data_folders_are_refused(main, folders, data_dir, tmp_path):
    nli = folders[0]
    message = _refused(main, [nli, "--data-dir", data_dir, "--datasets", "sst3"])
    assert "dataset 'sst3': no folder" in message and "sst2, trec" in message  # what is there to score
    assert "data dir" in _refused(main, [nli, "--data-dir", tmp_path / "missing"])
    (data_dir / "trec" / "test.jsonl").unlink()
    assert "has no test.jsonl" in _refused(main, [nli, "--data-dir", data_dir])
    assert "has an empty name" in _refused(main, [nli, "--data-dir", data_dir, "--datasets", "sst2,"])


@pytest.mark.parametrize("option", ["--max-samples", "--batch-size"])
@pytest.mark.parametrize("value", ["0", "-1"])
def test_counts_below_one_are_refused(main, folders, data_dir, option, value):
    message = _refused(main, [folders[0], "--data-dir", data_dir, option, value])
    assert message == f"error: {option} must be an integer >= 1, got {value}."


@pytest.mark.parametrize("name, kind", [("go_emotions", "multi-label"), ("sick_nli", "sentence-pair")])
def test_multi_label_and_pair_datasets_are_refused_naming_the_scorable_ones(main, folders, data_dir, name, kind):
    message = _refused(main, [folders[0], "--data-dir", data_dir, "--datasets", f"sst2,{name}"])
    assert f"{name} is a {kind} dataset" in message and "scores single" in message
    assert message.split("those in ")[1].startswith(f"{data_dir} are sst2, trec.")


def test_malformed_rows_are_named_by_file_and_line(main, folders, data_dir):
    test = data_dir / "sst2" / "test.jsonl"
    lines = test.read_text().splitlines()
    for bad, expected in [
        ("{not json", "line 2: not JSON"),
        (json.dumps({"text": "", "label": "positive"}), "line 2: Text is empty"),
        (json.dumps({"text": "fine", "label": 1}), "line 2: 'label' must be a non-empty string"),
        (json.dumps(["fine", "positive"]), "line 2: a row must be a JSON object"),
    ]:
        test.write_text("\n".join([lines[0], bad, *lines[2:]]) + "\n")
        assert f"{test}, {expected}" in _refused(main, [folders[0], "--data-dir", data_dir])
    test.write_text("\n")
    assert f"{test} has no rows" in _refused(main, [folders[0], "--data-dir", data_dir])


def test_nli_task_and_template_problems_are_refused_before_the_model_loads(main, folders, data_dir):
    nli, no_nli, _ = folders
    assert "needs an NLI task" in _refused(main, [no_nli, "--data-dir", data_dir])
    assert "nli_task='topic' cannot classify zero-shot" in _refused(
        main, [nli, "--data-dir", data_dir, "--nli-task", "topic"]
    )
    assert "has no '{}'" in _refused(main, [nli, "--data-dir", data_dir, "--template", "This example is."])


def test_an_output_that_cannot_be_written_is_refused_before_any_work(main, folders, data_dir, tmp_path):
    nli = folders[0]
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    assert "is a file, not a folder" in _refused(main, [nli, "--data-dir", data_dir, "--output", blocker / "o.json"])
    assert "is a folder: give a file path" in _refused(main, [nli, "--data-dir", data_dir, "--output", tmp_path])
    config = nli / "config.json"
    assert "is a file this run reads" in _refused(main, [nli, "--data-dir", data_dir, "--output", config])
    assert json.loads(config.read_text())["model_type"] == "multitask"


def test_a_run_scores_every_set_and_writes_the_report_into_a_new_folder(folders, data_dir, tmp_path, capsys):
    output = tmp_path / "new" / "folder" / "zero_shot.json"
    argv = [folders[0], "--data-dir", data_dir, "--datasets", "sst2, trec", "--max-samples", 4, "--output", output]
    report = script_main("eval_zero_shot")([str(arg) for arg in argv])
    assert json.loads(output.read_text()) == report and list(report) == ["sst2", "trec"]
    assert report["sst2"]["n"] == report["trec"]["n"] == 4
    assert report["sst2"]["candidates"] == ["negative", "positive"]
    assert report["trec"]["candidates"] == ["person", "location", "number"]  # readable names of HUM, LOC, NUM
    assert report["sst2"]["majority_label"] == "positive"
    assert "sst2 {" in capsys.readouterr().out


def test_the_module_refuses_what_it_cannot_score(data_dir, tmp_path):
    with pytest.raises(ValueError, match="max_samples must be an integer >= 1, got -1"):
        zero_shot.load_zero_shot_set(data_dir, "sst2", -1)
    with pytest.raises(ValueError, match="needs rows to score"):
        zero_shot.zero_shot_accuracy(None, [], {"a": "a"}, ["a"])
    # every label of the set is a candidate, test-only ones too (a label that is no candidate is never predicted)
    (data_dir / "sst2" / "test.jsonl").write_text(json.dumps({"text": "so so", "label": "neutral"}) + "\n")
    assert list(zero_shot.load_zero_shot_set(data_dir, "sst2").names) == ["negative", "neutral", "positive"]


def test_the_documented_command_reproduces_the_documented_sample_size():
    text = (ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    section = text.split("## Zero-shot through an NLI head")[1].split("\n## ")[0]
    documented = int(re.search(r"on (\d+) seeded test\s+texts", section).group(1))
    command = re.search(r"`(scripts/eval_zero_shot\.py [^`]+)`", section).group(1)
    flag = re.search(r"--max-samples (\d+)", command)
    assert flag and int(flag.group(1)) == documented, command
