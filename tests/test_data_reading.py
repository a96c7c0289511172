"""Reading task data as written: missing and unlabelled labels refused, CSV cells as strings, task folders read by
split name, tasks sharing rows holding out the same rows, label names checked, suspicious labels warned about."""

import json
import math
import os

import datasets
import pytest
import yaml

from polyhead.data import load_task_data
from polyhead.tasks import SPLIT_ALIASES, SPLIT_KEYWORDS, TaskSpec, load_task_specs, parse_task


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return str(path)


def _write_csv(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def _rows(n, labels=("a", "b"), column="label", prefix="text"):
    return [{"text": f"{prefix} {i}", column: labels[i % len(labels)]} for i in range(n)]


def _load_one(spec_or_item, **kwargs):
    spec = parse_task(spec_or_item) if isinstance(spec_or_item, str) else spec_or_item
    return load_task_data([spec], **kwargs)[spec.name]


KEEP_ALL = {"test_size": 0, "validation_size": 0}


# --- 1. ClassLabel ids outside the names (GLUE's -1 of unlabelled test rows) ---------------------------------------


def test_classlabel_minus_one_is_refused_not_read_as_the_last_class():
    features = datasets.Features(
        {"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["neg", "pos"])}
    )

    def split(labels):
        return datasets.Dataset.from_dict({"text": [f"t{i}" for i in range(len(labels))], "label": labels}, features)

    glue = datasets.DatasetDict(train=split([0, 1] * 10), validation=split([0, 1] * 3), test=split([-1] * 4))
    with pytest.raises(ValueError, match=r"4 row\(s\) of its test split have label ids outside its ClassLabel names "):
        load_task_data([TaskSpec("sst", dataset=glue)])
    with pytest.raises(ValueError, match=r"-1 marks unlabelled rows .*drop them, or name a labelled split"):
        load_task_data([TaskSpec("sst", dataset=glue)])
    # Scoring the labelled validation split instead works, and ids still map to names.
    data = load_task_data([TaskSpec("sst", dataset=glue, test_split="validation")])["sst"]
    assert data.labels == ["neg", "pos"] and data.label_ids("test") == [0, 1] * 3
    unlabelled_train_rows = datasets.DatasetDict(train=split([0, 1, -1, 1]))
    with pytest.raises(ValueError, match=r"1 row\(s\) of its train split .*rows \[2\].*e\.g\. -1"):
        load_task_data([TaskSpec("sst", dataset=unlabelled_train_rows, **KEEP_ALL)])


# --- 2. / 3. NaN, empty and blank labels are missing ----------------------------------------------------------------


def test_nan_labels_are_missing_not_a_class(tmp_path):
    parquet = str(tmp_path / "train.parquet")
    datasets.Dataset.from_dict({"text": ["a", "b", "c", "d"], "label": [0.0, 1.0, math.nan, 1.0]}).to_parquet(parquet)
    with pytest.raises(
        ValueError, match=r"1 row\(s\) of its train split have a missing label .*rows \[2\].*e\.g\. nan"
    ):
        _load_one(TaskSpec("t", data_files=parquet, **KEEP_ALL))
    jsonl = tmp_path / "train.jsonl"
    jsonl.write_text('{"text": "a", "label": 0}\n{"text": "b", "label": NaN}\n{"text": "c", "label": 1}\n')
    with pytest.raises(ValueError, match=r"missing label .*rows \[1\]"):
        _load_one(TaskSpec("t", data_files=str(jsonl), **KEEP_ALL))


def test_word_labels_nan_and_inf_sort_after_numbers(tmp_path):
    """A CSV label "nan" is a word like "None" (read as written); it must not break the numeric order."""
    lines = ["text,label", "a,3", "b,nan", "c,10", "d,2", "e,1", "f,inf"]
    data = _load_one(TaskSpec("t", data_files=_write_csv(tmp_path / "train.csv", lines), **KEEP_ALL))
    assert data.labels == ["1", "2", "3", "10", "inf", "nan"]


def test_empty_and_blank_labels_are_missing(tmp_path):
    rows = _rows(6)
    rows[4]["label"] = ""
    with pytest.raises(ValueError, match=r"missing label \(null, NaN, empty or blank\) .*rows \[4\].*e\.g\. ''"):
        _load_one(TaskSpec("t", data_files=_write_jsonl(tmp_path / "train.jsonl", rows), **KEEP_ALL))
    path = _write_csv(tmp_path / "train.csv", ["text,label", "a,x", "b, ", "c,y"])
    with pytest.raises(ValueError, match=r"missing label .*rows \[1\].*e\.g\. ' '"):
        _load_one(TaskSpec("t", data_files=path, **KEEP_ALL))
    multi = [{"text": "a", "label": ["x", None]}, {"text": "b", "label": ["y"]}, {"text": "c", "label": ["x", ""]}]
    with pytest.raises(ValueError, match=r"missing label \(.* in a label list\) .*rows \[0, 2\]"):
        _load_one(TaskSpec("t", data_files=_write_jsonl(tmp_path / "multi.jsonl", multi), **KEEP_ALL))


# --- 4. CSV cells are strings ---------------------------------------------------------------------------------------


def test_csv_cells_are_strings_as_written(tmp_path):
    lines = ["text,label", "001,01", "2,1", "3,007", "4,7", "5,1.0"]
    data = _load_one(TaskSpec("t", data_files=_write_csv(tmp_path / "train.csv", lines), **KEEP_ALL))
    assert data.labels == ["01", "1", "1.0", "007", "7"]  # no merge of 01 / 1, no ints turned into floats
    assert data.splits["train"]["text"] == ["001", "2", "3", "4", "5"]  # a column of digits is text


def test_csv_label_numeric_for_a_whole_chunk_then_a_word(tmp_path):
    """pandas reads CSVs in 10,000-row chunks; a column of numbers in the first used to fail on a later word."""
    lines = ["text,label"] + [f"row {i},{i % 2}" for i in range(10_050)] + ["last row,other"]
    data = _load_one(TaskSpec("t", data_files=_write_csv(tmp_path / "train.csv", lines), **KEEP_ALL))
    assert data.labels == ["0", "1", "other"] and len(data.splits["train"]) == 10_051


# --- 5. tasks sharing rows hold out the same rows -------------------------------------------------------------------


def _meld(path, n=100):
    rows = [{"utterance": f"line {i}", "emotion": "xyz"[i % 3], "sentiment": "pn"[i % 2]} for i in range(n)]
    return _write_jsonl(path, rows)


def _leaks(first, second, column="utterance"):
    return {
        role: set(first.splits[role][column]) & set(second.splits["train"][column])
        for role in ("test", "eval")
        if role in first.splits
    }


def test_one_file_spelled_differently_is_one_source(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = _meld(tmp_path / "meld.jsonl")
    spellings = [
        ("meld.jsonl", "./meld.jsonl"),
        (path, "meld.jsonl"),
        ({"train": "meld.jsonl"}, path),
    ]
    for first, second in spellings:
        specs = [
            TaskSpec("emotion", data_files=first, text_column="utterance", label_column="emotion"),
            TaskSpec("sentiment", data_files=second, text_column="utterance", label_column="sentiment"),
        ]
        assert specs[0].source_key == specs[1].source_key, (first, second)
        data = load_task_data(specs)
        assert _leaks(data["emotion"], data["sentiment"]) == {"test": set(), "eval": set()}, (first, second)
        assert _leaks(data["sentiment"], data["emotion"]) == {"test": set(), "eval": set()}, (first, second)


def test_tasks_on_one_file_holding_out_different_rows_are_refused(tmp_path):
    path = _meld(tmp_path / "meld.jsonl")
    items = [f"emotion={path}:text=utterance,label=emotion", f"sentiment={path}:text=utterance,label=sentiment"]
    message = r"Tasks 'emotion' and 'sentiment' train on the same rows \(.*meld\.jsonl\) but hold out different ones"
    with pytest.raises(ValueError, match=message + r".*emotion: test 20% held out"):
        load_task_data(load_task_specs([items[0] + ",test_size=0.2", items[1]]))
    with pytest.raises(ValueError, match=message):  # one keeps every train row: it trains on the other's test rows
        load_task_data(load_task_specs([items[0], items[1] + ",test_size=0,validation_size=0"]))
    # The same train file, one task with a test file of its own: the other's carved test rows train the first.
    folder = tmp_path / "folder"
    folder.mkdir()
    os.symlink(path, folder / "train.jsonl")
    _meld(folder / "test.jsonl", 10)
    with pytest.raises(ValueError, match=r"emotion: validation 10% held out; sentiment: test 10% held out"):
        load_task_data(load_task_specs([f"emotion={folder}:text=utterance,label=emotion", items[1]]))
    same = load_task_data(load_task_specs([items[0] + ",test_size=0.2", items[1] + ",test_size=0.2"]))
    assert same["emotion"].splits["test"]["utterance"] == same["sentiment"].splits["test"]["utterance"]


# --- 6. a dev / valid split is the validation split -----------------------------------------------------------------


def test_dev_split_of_a_folder_is_its_validation_split(tmp_path, caplog):
    _write_jsonl(tmp_path / "train.jsonl", _rows(40))
    dev = _rows(6, prefix="dev")
    _write_jsonl(tmp_path / "dev.jsonl", dev)
    data = _load_one(f"t={tmp_path}")
    assert data.splits["eval"]["text"] == [row["text"] for row in dev]  # not carved from train
    assert set(data.held_out) == {"test"} and len(data.splits["train"]) == 36
    _write_jsonl(tmp_path / "valid.jsonl", dev)
    with pytest.raises(ValueError, match=r"no 'validation' split but several that mean one, \['valid', 'dev'\]"):
        _load_one(f"t={tmp_path}")
    assert len(_load_one(f"t={tmp_path}:eval_split=valid").splits["eval"]) == 6  # naming one is the fix
    # eval.jsonl is a test split for `datasets` and a validation split for eval_split: used only when named, and
    # named in the warning when validation rows are held out of train beside it.
    (tmp_path / "dev.jsonl").unlink()
    (tmp_path / "valid.jsonl").rename(tmp_path / "eval.jsonl")
    with caplog.at_level("WARNING", logger="polyhead.data"):
        assert "validation" in _load_one(f"t={tmp_path}").held_out
    assert "no validation split in its data (its split(s) ['eval'] are unused: to use one, set eval_split=NAME)" in (
        caplog.text
    )
    assert len(_load_one(f"t={tmp_path}:eval_split=eval").splits["eval"]) == 6


def test_split_file_names_are_the_ones_datasets_recognises():
    from datasets.data_files import SPLIT_KEYWORDS as DATASETS_KEYWORDS

    assert SPLIT_KEYWORDS == {str(split): tuple(words) for split, words in DATASETS_KEYWORDS.items()}
    assert all(set(SPLIT_ALIASES[split]) < set(SPLIT_KEYWORDS[split]) for split in SPLIT_ALIASES)


def test_dev_split_of_data_files_or_a_dataset_dict_is_its_validation_split():
    dd = datasets.DatasetDict(
        train=datasets.Dataset.from_list(_rows(20)), dev=datasets.Dataset.from_list(_rows(4, prefix="dev"))
    )
    data = load_task_data([TaskSpec("t", dataset=dd, test_size=0)])["t"]
    assert data.held_out == {} and data.splits["eval"]["text"] == [f"dev {i}" for i in range(4)]


# --- 7. comma-joined labels ----------------------------------------------------------------------------------------


def test_comma_joined_labels_are_warned_about_and_csv_label_lists_named(tmp_path, caplog):
    lines = ["text,labels", 'a,"joy,love"', "b,joy", "c,anger", 'd,"anger, joy"']
    path = _write_csv(tmp_path / "train.csv", lines)
    with caplog.at_level("WARNING", logger="polyhead.data"):
        data = _load_one(TaskSpec("t", data_files=path, label_column="labels", **KEEP_ALL))
    assert data.labels == ["anger", "anger, joy", "joy", "joy,love"]
    assert "labels ['anger, joy', 'joy,love'] look like comma-joined lists of labels" in caplog.text
    assert "give each row a list of labels in JSON Lines or Parquet" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="polyhead.data"):  # a comma inside a label of its own: no warning
        path = _write_csv(tmp_path / "plain.csv", ["text,label", 'a,"Arts, Culture"', "b,Sports"])
        _load_one(TaskSpec("t", data_files=path, **KEEP_ALL))
    assert "comma-joined" not in caplog.text
    spec = TaskSpec(
        "t", data_files=str(tmp_path / "train.csv"), label_column="labels", problem_type="multi_label_classification"
    )
    with pytest.raises(
        ValueError, match=r"do not hold a list of labels .*e\.g\. 'joy,love'\): a label list needs JSON"
    ):
        _load_one(spec)


# --- 10. labels that differ only in case or spaces ------------------------------------------------------------------


def test_labels_differing_only_in_case_or_spaces_are_warned_about(tmp_path, caplog):
    rows = [{"text": f"t{i}", "label": label} for i, label in enumerate(["joy", "Joy", "joy ", "sad", "sad"])]
    with caplog.at_level("WARNING", logger="polyhead.data"):
        data = _load_one(TaskSpec("t", data_files=_write_jsonl(tmp_path / "train.jsonl", rows), **KEEP_ALL))
    assert data.labels == ["Joy", "joy", "joy ", "sad"]
    assert "labels [['Joy', 'joy', 'joy ']] differ only in case or spaces" in caplog.text


# --- 14. task folders: only split files, any format per split, save_to_disk folders, upper-case extensions ----------


def test_task_folder_reads_only_its_split_files(tmp_path, caplog):
    _write_jsonl(tmp_path / "train.jsonl", _rows(20))
    _write_jsonl(tmp_path / "test.jsonl", _rows(4, prefix="test"))
    (tmp_path / "label_map.json").write_text(json.dumps({"a": 0, "b": 1}))
    _write_csv(tmp_path / "stats.csv", ["label,count", "a,10", "b,10"])
    (tmp_path / "README.md").write_text("notes")
    with caplog.at_level("WARNING", logger="polyhead.tasks"):
        data = _load_one(f"t={tmp_path}:validation_size=0")
    assert sorted(data.splits) == ["test", "train"] and data.labels == ["a", "b"]
    assert "['label_map.json', 'stats.csv'] not read (not named as a split" in caplog.text


def test_task_folder_splits_in_different_formats_and_upper_case_extensions(tmp_path):
    _write_csv(tmp_path / "train.CSV", ["text,label"] + [f"row {i},{'ab'[i % 2]}" for i in range(10)])
    _write_jsonl(tmp_path / "validation.JSONL", _rows(4, prefix="dev"))
    _write_jsonl(tmp_path / "test.jsonl", _rows(4, prefix="test"))
    data = _load_one(f"t={tmp_path}")
    assert {role: len(split) for role, split in data.splits.items()} == {"train": 10, "eval": 4, "test": 4}
    _write_jsonl(tmp_path / "train.jsonl", _rows(4))
    with pytest.raises(ValueError, match=r"two files for its 'train' split, train\.CSV and train\.jsonl: keep one"):
        parse_task(f"t={tmp_path}")


@pytest.mark.parametrize("kind", ["DatasetDict", "Dataset"])
def test_save_to_disk_folder_as_a_task_folder(tmp_path, kind):
    train = datasets.Dataset.from_list(_rows(20))
    saved = datasets.DatasetDict(train=train, test=datasets.Dataset.from_list(_rows(4, prefix="test")))
    (saved if kind == "DatasetDict" else train).save_to_disk(str(tmp_path / "saved"))
    for item in (f"t={tmp_path / 'saved'}", {"name": "t", "dataset": str(tmp_path / "saved")}):
        data = load_task_data(load_task_specs([item]))["t"]
        assert data.labels == ["a", "b"]
        assert ("test" in data.held_out) == (kind == "Dataset")


# --- 15. label names in a tasks file -------------------------------------------------------------------------------


def test_label_names_in_a_tasks_file_must_be_strings(tmp_path):
    def tasks_file(labels_yaml):
        path = tmp_path / "tasks.yaml"
        path.write_text(f"- name: t\n  data_files: {tmp_path / 'train.jsonl'}\n  labels: {labels_yaml}\n")
        return str(path)

    _write_jsonl(tmp_path / "train.jsonl", _rows(4, labels=("yes", "no")))
    with pytest.raises(
        ValueError, match=r"labels .* hold booleans: YAML reads unquoted yes/no.*labels: \['yes', 'no'\]"
    ):
        load_task_specs(tasks_file("[yes, no]"))
    with pytest.raises(ValueError, match=r"labels must be strings .*got \[0, 1\].*labels: \['0', '1'\]"):
        load_task_specs(tasks_file("[0, 1]"))
    assert yaml.safe_load("['yes', 'no']") == ["yes", "no"]
    specs = load_task_specs(tasks_file("['yes', 'no']"))
    assert load_task_data(specs)["t"].labels == ["yes", "no"]
