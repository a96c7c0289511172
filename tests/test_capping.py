"""`--max_train_samples_per_task`: every task's train rows capped (seeded, stratified for single-label), recorded."""

import json
from collections import Counter

import datasets
import numpy as np
import pytest
from helpers import labelled_split, tiny_task_specs, training_args

from polyhead.tasks import TaskSpec
from polyhead.testing_utils import tiny_tokenizer
from polyhead.training.arguments import DataArguments, ModelArguments, parse_args
from polyhead.training.capping import capped_rows
from polyhead.training.trainer import prepare_tasks, run


def _prepare(cap, specs=None, seed=0):
    data_args = DataArguments(tasks=specs or tiny_task_specs(48), max_train_samples_per_task=cap)
    return prepare_tasks(ModelArguments(), data_args, tiny_tokenizer(), seed=seed)


def _texts(prepared, task):
    return prepared.data[task].splits["train"]["text"]


def test_cap_cuts_only_the_tasks_above_it_and_reports_them():
    prepared = _prepare(30)  # sentiment: 48 train rows; topic: 22 (2 carved as its test split); emotions: 24
    sizes = {name: len(enc["train"]) for name, enc in prepared.encoded.items()}
    assert sizes == {"sentiment": 30, "topic": 22, "emotions": 24}
    assert prepared.train_cap == {
        "max_train_samples_per_task": 30,
        "seed": 0,
        "tasks": {"sentiment": {"rows": 48, "kept": 30, "stratified": True}},
    }
    assert set(_texts(prepared, "sentiment")) <= set(_texts(_prepare(None), "sentiment"))
    assert _prepare(None).train_cap == {}


def test_cap_is_seeded_and_reproducible():
    assert _texts(_prepare(20), "sentiment") == _texts(_prepare(20), "sentiment")
    assert _texts(_prepare(20, seed=1), "sentiment") != _texts(_prepare(20), "sentiment")


def test_cap_keeps_each_label_share_and_every_rare_label():
    labels = ["a"] * 90 + ["b"] * 9 + ["c"]
    kept = capped_rows(len(labels), 20, np.random.default_rng(0), labels)
    assert len(kept) == 20 and kept == sorted(set(kept))
    assert Counter(labels[i] for i in kept) == {"a": 18, "b": 1, "c": 1}  # c keeps its only row, a gives it up
    assert capped_rows(5, 10, np.random.default_rng(0), list("aabbc")) == [0, 1, 2, 3, 4]


def test_a_cap_below_the_number_of_labels_says_which_labels_lost_their_rows(caplog):
    with caplog.at_level("WARNING", logger="polyhead.training.capping"):
        prepared = _prepare(1)
    kept = prepared.data["sentiment"].splits["train"]["label"]
    lost = sorted({"good", "bad"} - set(kept))
    assert len(kept) == 1 and f"Task 'sentiment': the cap leaves labels {lost} without train rows" in caplog.text
    assert "at least 2 (the task's labels)" in caplog.text


def test_multi_label_tasks_get_a_plain_seeded_draw():
    train = labelled_split(40, ["joy", "fear"], 0, multi=True)
    spec = TaskSpec("emotions", dataset=datasets.DatasetDict(train=train), validation_size=0, test_size=0)
    prepared = _prepare(10, [spec])
    assert len(prepared.encoded["emotions"]["train"]) == 10
    assert prepared.train_cap["tasks"]["emotions"] == {"rows": 40, "kept": 10, "stratified": False}


def test_cap_applies_after_max_train_samples():
    specs = tiny_task_specs(48)
    specs[0].max_train_samples = 40
    prepared = _prepare(30, specs)
    assert len(prepared.encoded["sentiment"]["train"]) == 30
    assert prepared.train_cap["tasks"]["sentiment"]["rows"] == 40


@pytest.mark.parametrize("value", ["0", "-3"])
def test_bad_cap_is_refused_before_any_data_is_read(value):
    with pytest.raises(ValueError, match="max_train_samples_per_task"):
        parse_args(["--tasks", "a=/nonexistent", "--output_dir", "/tmp/x", "--max_train_samples_per_task", value])


def test_results_json_records_the_cap(tmp_path):
    data_args = DataArguments(tasks=tiny_task_specs(48), max_train_samples_per_task=32)
    run(ModelArguments(), data_args, training_args(tmp_path, single_task_baselines=True))
    folder = tmp_path / "run" / "model"
    saved = json.loads((folder / "results.json").read_text())
    assert saved["train_cap"]["tasks"] == {"sentiment": {"rows": 48, "kept": 32, "stratified": True}}
    assert json.loads((folder / "training_args.json").read_text())["num_train_examples"]["sentiment"] == 32
    # each single-task baseline records the cap and only its own task's cut
    baseline = json.loads((tmp_path / "run" / "baselines" / "topic" / "model" / "results.json").read_text())
    assert baseline["train_cap"] == {"max_train_samples_per_task": 32, "seed": 0, "tasks": {}}
