import json

import pytest
from transformers import AutoConfig, BertConfig

from polyhead import MultitaskConfig
from polyhead.testing_utils import tiny_encoder_config


def make(tasks, **kwargs):
    return MultitaskConfig(encoder=tiny_encoder_config(), tasks=tasks, **kwargs)


def test_head_sizes_and_label_maps_follow_from_tasks(tasks):
    config = make(tasks)
    assert config.task_names == ["sentiment", "topic", "emotions"]
    assert config.num_labels_per_task == {"sentiment": 2, "topic": 4, "emotions": 4}
    assert config.task_id2label("topic") == {0: "movies", 1: "tech", 2: "sport", 3: "money"}
    assert config.task_label2id("emotions")["joy"] == 2
    assert config.tasks["sentiment"]["problem_type"] == "single_label_classification"
    assert config.tasks["emotions"]["threshold"] == 0.4
    assert config.pooling == "mean" and config.classifier_dropout == 0.1


def test_json_round_trip_keeps_task_order_and_encoder(tmp_path, tasks):
    ordered = {"z_last": tasks["sentiment"], "a_first": tasks["topic"]}
    config = make(ordered, pooling="cls", classifier_dropout=0.2)
    config.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert [task["name"] for task in saved["tasks"]] == ["z_last", "a_first"]
    assert saved["custom_pipelines"]["multitask-classification"]["impl"].endswith("MultitaskClassificationPipeline")
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(loaded, MultitaskConfig)
    assert loaded.task_names == ["z_last", "a_first"]
    assert loaded.tasks == config.tasks
    assert loaded.pooling == "cls" and loaded.classifier_dropout == 0.2
    assert isinstance(loaded.encoder, BertConfig) and loaded.encoder.hidden_size == 32


def test_encoder_may_be_a_dict():
    config = MultitaskConfig(encoder=tiny_encoder_config("distilbert").to_dict(), tasks={"t": {"labels": ["a", "b"]}})
    assert config.encoder.model_type == "distilbert"
    assert config.hidden_size == 32


@pytest.mark.parametrize(
    ("tasks", "message"),
    [
        ({}, "at least one task"),
        (None, "at least one task"),
        ({"t": {"labels": []}}, "Task 't': 'labels' must be a non-empty list"),
        ({"t": {"problem_type": "single_label_classification"}}, "Task 't': 'labels'"),
        ({"t": {"labels": ["a", "b", "a"]}}, "Task 't': duplicate labels ['a']"),
        ({"t": {"labels": ["a", "b"], "problem_type": "regresion"}}, "single_label_classification, multi_label"),
        ({"t": {"labels": ["only"]}}, "at least 2 labels"),
        ({"t": {"labels": ["a", "b"], "threshold": 0.3}}, "only applies to multi_label"),
        ({"t": {"labels": ["a"], "problem_type": "multi_label_classification", "threshold": 1.5}}, "threshold"),
        ({"t": {"labels": ["a", "b"], "colour": "red"}}, "unknown keys ['colour']"),
        ({"a.b": {"labels": ["a", "b"]}}, "Invalid task name 'a.b'"),
        ({"t": ["a", "b"]}, "Task 't': expected a dict"),
    ],
)
def test_bad_tasks_raise_value_errors_naming_the_task(tasks, message):
    with pytest.raises(ValueError) as error:
        make(tasks)
    assert message in str(error.value)


def test_bad_pooling_lists_choices(tasks):
    with pytest.raises(ValueError, match="Unknown pooling 'max': choose one of cls, mean"):
        make(tasks, pooling="max")


def test_bad_dropout(tasks):
    with pytest.raises(ValueError, match="classifier_dropout"):
        make(tasks, classifier_dropout=1.0)


def test_unknown_task_lookup_names_known_tasks(tasks):
    with pytest.raises(KeyError, match="this model has tasks sentiment, topic, emotions"):
        make(tasks).task("nope")


AWKWARD_NAMES = ["sentiment (en)", "a/b", "type", "train", "keys", "forward", "é", " x", "x ", "-x", "x" * 65, ""]
GOOD_NAMES = ["Sentiment", "0day", "ok_name-2", "x" * 64, "emotion_v2"]


@pytest.mark.parametrize("name", [*AWKWARD_NAMES, 1, None])
def test_task_names_that_would_break_later_are_refused_naming_the_rule(name):
    with pytest.raises(ValueError, match=r"Invalid task name .*(ASCII letters, digits|are strings)"):
        make({name: {"labels": ["a", "b"]}})


def test_int_and_str_keys_never_collapse_into_one_task():
    with pytest.raises(ValueError, match="task names are strings, got int"):
        make({1: {"labels": ["a", "b"]}, "1": {"labels": ["c", "d"]}})


def test_every_accepted_task_name_trains_saves_loads_and_answers(tmp_path, tokenizer):
    import torch
    from transformers import AutoModel, pipeline

    from polyhead import MultitaskModel

    tasks = {name: {"labels": ["a", "b"]} for name in GOOD_NAMES}
    model = MultitaskModel(make(tasks))
    batch = tokenizer(["i love this movie"], return_tensors="pt")
    loss = model(**batch, labels={name: torch.tensor([1]) for name in GOOD_NAMES}).loss
    loss.backward()
    model.save_pretrained(tmp_path)
    for name in GOOD_NAMES:
        (tmp_path / f"report_{name}.txt").write_text(name)  # usable in file names
    reloaded = AutoModel.from_pretrained(tmp_path)
    assert reloaded.task_names == GOOD_NAMES
    answers = pipeline("multitask-classification", model=reloaded, tokenizer=tokenizer)("i love this movie")
    assert list(answers) == GOOD_NAMES
    assert json.loads(json.dumps(answers)) == answers
