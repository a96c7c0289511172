"""Task specs, data loading and validation (errors raise before training), tokenization and collation."""

import json

import datasets
import pytest
import torch
import yaml

from polyhead.data import MultitaskCollator, class_weights, load_task_data, tokenize_task_data
from polyhead.remote_code import check_task_name
from polyhead.tasks import TaskSpec, load_task_specs, parse_task


MULTI = "multi_label_classification"


def _dataset(texts, labels, label_column="label"):
    return datasets.Dataset.from_dict({"text": texts, label_column: labels})


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return str(path)


@pytest.fixture
def folder(tmp_path):
    rows = [{"text": f"i love this movie {i}", "label": ["pos", "neg"][i % 2]} for i in range(10)]
    _write_jsonl(tmp_path / "train.jsonl", rows)
    _write_jsonl(tmp_path / "validation.jsonl", rows[:4])
    _write_jsonl(tmp_path / "test.jsonl", rows[4:8])
    return tmp_path


def test_local_jsonl_folder_and_label_inference(folder):
    spec = parse_task(f"sentiment={folder}")
    data = load_task_data([spec])["sentiment"]
    assert sorted(data.splits) == ["eval", "test", "train"]
    assert data.labels == ["neg", "pos"]  # sorted, deterministic
    assert data.problem_type == "single_label_classification"
    assert data.label_ids("train")[:2] == [1, 0]


def test_short_form_names_columns_two_tasks_from_one_file(tmp_path):
    # MELD-style: one file of utterances, an emotion and a sentiment label per row.
    rows = [
        {"utterance": f"line {i}", "emotion": ["joy", "anger", "neutral"][i % 3], "sentiment": ["pos", "neg"][i % 2]}
        for i in range(12)
    ]
    _write_jsonl(tmp_path / "train.jsonl", rows)
    _write_jsonl(tmp_path / "test.jsonl", rows[:6])
    specs = load_task_specs(
        [
            f"emotion={tmp_path}:text=utterance,label=emotion",
            f"sentiment={tmp_path}:text_column=utterance,label_column=sentiment,max_train_samples=8,loss_weight=0.5",
        ]
    )
    assert [(s.text_column, s.label_column) for s in specs] == [("utterance", "emotion"), ("utterance", "sentiment")]
    assert specs[1].max_train_samples == 8 and specs[1].loss_weight == 0.5
    data = load_task_data(specs)
    assert data["emotion"].labels == ["anger", "joy", "neutral"] and data["sentiment"].labels == ["neg", "pos"]
    assert len(data["sentiment"].splits["train"]) == 8


def test_short_form_rejects_unknown_options_and_keeps_colon_paths(tmp_path):
    with pytest.raises(ValueError, match="label_column"):
        parse_task(f"t={tmp_path}/train.jsonl:colour=red")
    with pytest.raises(ValueError, match="max_train_samples"):
        parse_task(f"t={tmp_path}/train.jsonl:max_train_samples=many")
    assert parse_task("t=C:/data/train.csv").data_files == {"train": "C:/data/train.csv"}


@pytest.mark.parametrize("extension", ["csv", "parquet"])
def test_csv_and_parquet_files(tmp_path, extension):
    dataset = _dataset(["good day", "bad day", "good game"], ["pos", "neg", "pos"])
    path = str(tmp_path / f"train.{extension}")
    dataset.to_csv(path, index=False) if extension == "csv" else dataset.to_parquet(path)
    data = load_task_data([TaskSpec("t", data_files=path)])["t"]
    assert data.labels == ["neg", "pos"] and len(data.splits["train"]) == 3


def test_missing_column_names_task_column_and_available(folder):
    with pytest.raises(ValueError, match=r"'sentiment'.*\['sentence'\].*available columns: \['text', 'label'\]"):
        load_task_data([TaskSpec("sentiment", data_files=str(folder / "train.jsonl"), text_column="sentence")])


def test_label_outside_given_map(folder):
    spec = TaskSpec("sentiment", data_files=str(folder / "train.jsonl"), labels=["pos", "neutral"])
    with pytest.raises(ValueError, match=r"label\(s\) \['neg'\].*not in its label map \['pos', 'neutral'\]"):
        load_task_data([spec])


def test_eval_label_unseen_in_train_is_an_error():
    dd = datasets.DatasetDict(train=_dataset(["a", "b"], ["x", "y"]), validation=_dataset(["c"], ["z"]))
    with pytest.raises(ValueError, match=r"\['z'\] in its eval split"):
        load_task_data([TaskSpec("t", dataset=dd)])


def test_empty_split_and_bad_texts():
    with pytest.raises(ValueError, match="train split is empty"):
        load_task_data([TaskSpec("t", dataset=_dataset([], []))])
    with pytest.raises(ValueError, match=r"non-string or empty text.*rows \[1, 2\]"):
        load_task_data([TaskSpec("t", dataset=_dataset(["fine", "  ", None], ["x", "y", "x"]))])


def test_bad_rows_are_named_as_read_even_when_rows_are_held_out(tmp_path):
    """Rows are checked before validation / test rows are carved from train: the row named is the file's, and a bad
    row is found whichever split it would have landed in."""
    rows = [{"text": f"text {i}", "label": ["a", "b"][i % 2]} for i in range(40)]
    rows[19]["text"] = "  "
    spec = TaskSpec("t", data_files=_write_jsonl(tmp_path / "train.jsonl", rows))
    with pytest.raises(ValueError, match=r"1 row\(s\) of its train split .*rows \[19\], counted from 0"):
        load_task_data([spec])
    rows[19]["text"], rows[33]["label"] = "fine", None
    spec = TaskSpec("t", data_files=_write_jsonl(tmp_path / "train.jsonl", rows))
    with pytest.raises(ValueError, match=r"missing label .*rows \[33\]"):
        load_task_data([spec])


def test_csv_cells_are_read_as_written(tmp_path):
    """ "NA", "None", "null" are a text or a label like any other; only an empty cell is missing."""
    lines = ["text,label", "NA,None", "null,joy", "None,None", "nan,joy"]
    (tmp_path / "train.csv").write_text("\n".join(lines) + "\n")
    spec = TaskSpec("t", data_files=str(tmp_path / "train.csv"), test_size=0, validation_size=0)
    data = load_task_data([spec])["t"]
    assert data.labels == ["None", "joy"] and data.splits["train"]["text"] == ["NA", "null", "None", "nan"]
    (tmp_path / "train.csv").write_text("\n".join([*lines, "empty label,"]) + "\n")
    with pytest.raises(ValueError, match=r"missing label .*rows \[4\]"):
        load_task_data([spec])


def test_header_only_csv_is_named(tmp_path):
    (tmp_path / "train.csv").write_text("text,label\n")
    with pytest.raises(ValueError, match=r"train\.csv: a header line \['text', 'label'\] and no rows"):
        load_task_data([TaskSpec("t", data_files=str(tmp_path / "train.csv"))])


def test_a_named_split_that_is_missing_is_an_error(folder):
    """A typo in eval_split / test_split must not fall back to holding out train rows (the real split unused)."""
    with pytest.raises(ValueError, match=r"eval_split=valid names no split.*\['test', 'train', 'validation'\]"):
        load_task_data([parse_task(f"sentiment={folder}:eval_split=valid")])
    with pytest.raises(ValueError, match=r"test_split=tst names no split"):
        load_task_data([parse_task(f"sentiment={folder}:test_split=tst")])
    (folder / "validation.jsonl").unlink()  # the default name, missing: rows are held out of train, as before
    assert "validation" in load_task_data([parse_task(f"sentiment={folder}")])["sentiment"].held_out


def test_a_task_whose_data_is_a_json_file_is_not_read_as_a_tasks_file(tmp_path):
    rows = [{"text": f"text {i}", "label": ["a", "b"][i % 2]} for i in range(4)]
    (tmp_path / "data.json").write_text(json.dumps(rows))
    (tmp_path / "tasks.json").write_text(json.dumps([f"other={tmp_path / 'data.json'}"]))
    specs = load_task_specs([f"x={tmp_path / 'data.json'}", str(tmp_path / "tasks.json")])
    data_files = {"train": str(tmp_path / "data.json")}
    assert [(spec.name, spec.data_files) for spec in specs] == [("x", data_files), ("other", data_files)]
    data = load_task_data(specs[:1])["x"]
    assert data.labels == ["a", "b"]


def test_spec_errors():
    with pytest.raises(ValueError, match="exactly one of"):
        TaskSpec("t")
    with pytest.raises(ValueError, match="loss_weight"):
        TaskSpec("t", data_files="a.csv", loss_weight=0)
    with pytest.raises(ValueError, match="class_weights"):
        TaskSpec("t", data_files="a.csv", class_weights="inverse")
    with pytest.raises(ValueError, match=r"Unknown task key\(s\) \['colour'\]"):
        TaskSpec.from_dict({"name": "t", "data_files": "a.csv", "colour": 1})
    # entries of a tasks file of the wrong type: each a ValueError naming the task (TypeErrors from deep inside before)
    for entry, message in [
        ({"data_files": "a.csv"}, "A task needs a 'name'"),
        (
            {"name": "t", "data_files": "a.csv", "loss_weight": None},
            "Task 't': loss_weight must be a number > 0, got None",
        ),
        (
            {"name": "t", "data_files": "a.csv", "max_train_samples": 2.7},
            "max_train_samples must be None or an integer",
        ),
        (
            {"name": "t", "data_files": "a.csv", "labels": "pos"},
            "labels must be a list of label names, got the string",
        ),
    ]:
        with pytest.raises(ValueError, match=message):
            load_task_specs([entry])
    with pytest.raises(ValueError, match="A task is a TaskSpec, a dict or a string, got int"):
        load_task_specs([5])
    with pytest.raises(FileNotFoundError, match="not found"):
        load_task_data([TaskSpec("t", data_files="/nonexistent/train.jsonl")])
    with pytest.raises(ValueError, match="Duplicate task names"):
        load_task_specs([{"name": "t", "data_files": "a.csv"}, {"name": "t", "data_files": "b.csv"}])


@pytest.mark.parametrize("name", ["a.b", " a", "", "my task", "type", "é", 3])
def test_spec_names_follow_the_config_rule(name):
    """A task name the model config would refuse is refused by the spec, with the config's message (one rule)."""
    with pytest.raises(ValueError, match="Invalid task name"):
        check_task_name(name)
    with pytest.raises(ValueError, match="Invalid task name"):
        TaskSpec(name, data_files="a.csv")


def test_single_label_needs_two_classes():
    with pytest.raises(ValueError, match="at least 2 labels"):
        load_task_data([TaskSpec("t", dataset=_dataset(["a", "b"], ["x", "x"]))])


def test_multi_label_inferred_from_lists_and_multi_hot():
    dataset = _dataset(["a", "b", "c"], [["joy"], ["fear", "joy"], []], label_column="labels")
    data = load_task_data([TaskSpec("emo", dataset=dataset, label_column="labels", threshold=0.3)])["emo"]
    assert data.problem_type == MULTI and data.labels == ["fear", "joy"]
    assert data.head == {"labels": ["fear", "joy"], "problem_type": MULTI, "threshold": 0.3}
    assert data.label_ids("train") == [[0.0, 1.0], [1.0, 1.0], [0.0, 0.0]]


def test_class_label_feature_gives_names():
    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["b", "a"])})
    dataset = datasets.Dataset.from_dict({"text": ["x", "y"], "label": [1, 0]}, features=features)
    data = load_task_data([TaskSpec("t", dataset=dataset)])["t"]
    assert data.labels == ["b", "a"] and data.label_ids("train") == [1, 0]


def test_shared_dataset_two_label_columns(tokenizer):
    dataset = datasets.Dataset.from_dict(
        {"text": ["i love it", "bad news", "great game"], "sentiment": ["pos", "neg", "pos"], "topic": ["a", "b", "c"]}
    )
    specs = [
        TaskSpec("sentiment", dataset=dataset, label_column="sentiment"),
        TaskSpec("topic", dataset=dataset, label_column="topic"),
    ]
    data = load_task_data(specs)
    assert data["sentiment"].labels == ["neg", "pos"] and data["topic"].labels == ["a", "b", "c"]
    encoded = {name: tokenize_task_data(task, tokenizer)["train"] for name, task in data.items()}
    assert encoded["sentiment"]["input_ids"] == encoded["topic"]["input_ids"]  # same rows, same text
    assert encoded["sentiment"]["labels"] == [1, 0, 1] and encoded["topic"]["labels"] == [0, 1, 2]


def test_subsample_is_seeded_and_shared_sources_stay_aligned():
    dataset = datasets.Dataset.from_dict(
        {"text": [f"t{i}" for i in range(50)], "a": ["x", "y"] * 25, "b": [str(i % 3) for i in range(50)]}
    )
    specs = [TaskSpec(n, dataset=dataset, label_column=n, max_train_samples=10) for n in ("a", "b")]
    first, second = load_task_data(specs, seed=3), load_task_data(specs, seed=3)
    assert (
        first["a"].splits["train"]["text"] == first["b"].splits["train"]["text"] == second["a"].splits["train"]["text"]
    )
    assert len(first["a"].splits["train"]) == 10


def test_tokenize_and_collate(tokenizer):
    dataset = _dataset(["i love this movie", "bad"], [["joy"], ["anger", "joy"]])
    data = load_task_data([TaskSpec("emo", dataset=dataset)])["emo"]
    encoded = tokenize_task_data(data, tokenizer, max_length=8)["train"]
    assert {"input_ids", "attention_mask", "labels", "task"} <= set(encoded.column_names)
    batch = MultitaskCollator(tokenizer)([encoded[0], encoded[1]])
    assert batch["task"] == "emo" and batch["labels"].dtype == torch.float32
    assert batch["input_ids"].shape[0] == 2 and batch["attention_mask"][1].sum() < batch["attention_mask"][0].sum()
    with pytest.raises(ValueError, match="one task"):
        MultitaskCollator(tokenizer)([encoded[0], {**encoded[1], "task": "other"}])


def test_balanced_class_weights():
    dataset = _dataset(["a", "b", "c", "d"], ["x", "x", "x", "y"])
    data = load_task_data([TaskSpec("t", dataset=dataset, class_weights="balanced")])["t"]
    assert class_weights(data) == pytest.approx([4 / 6, 2.0])


def test_task_file_yaml(tmp_path, folder):
    path = tmp_path / "tasks.yaml"
    path.write_text(yaml.safe_dump({"tasks": [{"name": "s", "data_files": str(folder / "train.jsonl")}]}))
    specs = load_task_specs([str(path), f"other={folder}"])
    assert [spec.name for spec in specs] == ["s", "other"]
    assert json.loads(json.dumps(specs[1].to_dict()))["data_files"]["validation"].endswith("validation.jsonl")
