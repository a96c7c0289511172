"""Growing with --init_from: what the starting model had is kept (pair inputs, trained length, shared heads counted as
trained, its vocabulary), and options that cannot apply are refused with one line before any training."""

import json
import logging

import datasets
import pytest
from helpers import labelled_split, save_tiny_folder, script_main, training_args
from test_grow import SENTIMENT, TOPIC, _continue, _task, base  # noqa: F401 (base: the trained 2-task model fixture)
from transformers import BertTokenizer

from polyhead import MultitaskModel
from polyhead.saving import save_model_folder
from polyhead.tasks import TaskSpec
from polyhead.testing_utils import SPECIAL_TOKENS, WORDS, tiny_multitask_config, tiny_tokenizer
from polyhead.training.arguments import DataArguments, ModelArguments
from polyhead.training.grow import freeze_heads_except
from polyhead.training.trainer import prepare_run, prepare_tasks, resolve_max_length, run


def _pair_task(name, seed):
    split = labelled_split(24, ["entailment", "contradiction"], seed)
    paired = split.add_column("hypothesis", list(reversed(split["text"])))
    return TaskSpec(name, dataset=datasets.DatasetDict(train=paired), text_pair_column="hypothesis", test_size=0)


def test_a_new_pair_task_is_saved_as_a_pair_task_at_the_starting_models_length(tmp_path):
    start = save_tiny_folder(tmp_path / "start", max_length=16)  # trained at 16 tokens
    results = _continue(start, tmp_path, [_pair_task("nli", 0)], train_tasks="nli", freeze_encoder=True)
    grown = tmp_path / "run" / "model"
    config = json.loads((grown / "config.json").read_text())
    assert next(task for task in config["tasks"] if task["name"] == "nli")["text_pair"] is True
    # The same data continues from the grown model: its head reads pairs.
    prepare_tasks(ModelArguments(init_from=str(grown)), DataArguments(tasks=[_pair_task("nli", 0)]), tiny_tokenizer())
    # Without --max_length the frozen tasks run at the length they were trained at, not the encoder's default.
    assert json.loads((grown / "tokenizer_config.json").read_text())["model_max_length"] == 16
    assert json.loads((grown / "training_args.json").read_text())["model"]["max_length"] == 16
    assert results["tasks"]["nli"]


def test_the_starting_models_recorded_length_is_the_default_and_max_length_still_wins(tmp_path):
    start = save_tiny_folder(tmp_path / "start", max_length=16)
    (start / "training_args.json").write_text(json.dumps({"model": {"max_length": 24}}))  # its run's record wins
    assert resolve_max_length(ModelArguments(init_from=str(start))) == 24
    assert resolve_max_length(ModelArguments(init_from=str(start), max_length=40)) == 40
    with pytest.raises(ValueError, match=r"max_length=81 is more than the encoder of .* allows"):
        resolve_max_length(ModelArguments(init_from=str(start), max_length=81))


def test_an_init_from_hub_id_that_does_not_load_is_one_line(tmp_path, capsys):
    with pytest.raises(ValueError, match=r"org/no-such-model: no such local folder, and it did not load as a Hub"):
        resolve_max_length(ModelArguments(init_from="org/no-such-model"))
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.jsonl").write_text("".join(json.dumps({"text": f"t {i}", "label": "a"}) + "\n" for i in range(4)))
    argv = ["--init_from", "org/no-such-model", "--tasks", f"mood={data}", "--output_dir", str(tmp_path / "out")]
    with pytest.raises(SystemExit) as exit_info:
        script_main("train")(argv)
    assert str(exit_info.value).startswith("error: org/no-such-model: no such local folder")


SHARED = {"hate": {"labels": ["no", "yes"]}, "hate2": {"labels": ["no", "yes"]}, "topic": {"labels": TOPIC}}


def test_a_task_sharing_a_trained_head_counts_as_trained(tmp_path, caplog):
    config = tiny_multitask_config(tasks=SHARED, shared_heads={"hate": ["hate", "hate2"]})
    with caplog.at_level(logging.WARNING, logger="polyhead.training.grow"):
        assert freeze_heads_except(MultitaskModel(config), ["hate"]) == ["topic"]
    assert "Task(s) ['hate2'] share a head with the trained task(s) ['hate']" in caplog.text
    start = save_model_folder(MultitaskModel(config), tiny_tokenizer(), tmp_path / "start")
    tasks = [_task("hate", ["no", "yes"], 0, n=16), _task("hate2", ["no", "yes"], 2, n=16), _task("topic", TOPIC, 4)]
    args = training_args(tmp_path, max_steps=2, eval_strategy="no")
    model_args = ModelArguments(init_from=str(start), train_tasks="hate", freeze_encoder=True)
    rows = run(model_args, DataArguments(tasks=tasks), args)["multitask"]["forgetting"]["tasks"]
    assert {name: row["trained"] for name, row in rows.items()} == {"hate": True, "hate2": True, "topic": False}
    assert rows["topic"]["change"] == 0.0


def test_revision_applies_to_a_hub_id_only(base):  # noqa: F811 (the imported fixture)
    with pytest.raises(ValueError, match=r"--revision 'v1' .* but --init_from '.*' is a local folder: drop --revisi"):
        ModelArguments(init_from=str(base), revision="v1")
    with pytest.raises(ValueError, match=r"--revision 'v1' .* but no --init_from: drop --revision"):
        ModelArguments(revision="v1")
    assert ModelArguments(init_from="org/grown-base", revision="v1").revision == "v1"


def test_a_tokenizer_larger_than_the_models_embeddings_is_refused(base, tmp_path):  # noqa: F811
    larger = tiny_tokenizer()
    larger.add_tokens([f"extraword{i}" for i in range(6)])
    larger.save_pretrained(tmp_path / "larger")
    model_args = ModelArguments(init_from=str(base), tokenizer_name_or_path=str(tmp_path / "larger"))
    data_args = DataArguments(tasks=[_task("sentiment", SENTIMENT, 0)])
    fits = r"'.*larger' does not fit the encoder of .*: The tokenizer has 80 tokens, more than the encoder's 74 emb"
    with pytest.raises(ValueError, match=fits + r"eddings. Use the tokenizer the model was trained with"):
        prepare_run(model_args, data_args, training_args(tmp_path))
    tiny_tokenizer().save_pretrained(tmp_path / "same")  # the model's own vocabulary fits
    model_args = ModelArguments(init_from=str(base), tokenizer_name_or_path=str(tmp_path / "same"))
    prepare_run(model_args, data_args, training_args(tmp_path))


def test_a_tokenizer_of_another_vocabulary_is_refused(base, tmp_path):  # noqa: F811
    """A tokenizer of the model's size but another vocabulary passed the size check: the kept tasks then read other
    tokens (their answers changed), and the forgetting table showed no change, its "before" scored with that
    tokenizer too. Refused in one line before any data is read; the model's own vocabulary still passes."""
    other = tmp_path / "reversed"
    BertTokenizer(vocab={t: i for i, t in enumerate(SPECIAL_TOKENS + list(reversed(WORDS)))}).save_pretrained(other)
    assert len(BertTokenizer.from_pretrained(other)) == len(tiny_tokenizer())  # the size check passes it
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.jsonl").write_text(
        "".join(json.dumps({"text": f"t {i}", "label": "ab"[i % 2]}) + "\n" for i in range(4))
    )
    argv = ["--init_from", str(base), "--tokenizer_name_or_path", str(other), "--tasks", f"mood={data}"]
    with pytest.raises(SystemExit) as exit_info:
        script_main("train")([*argv, "--output_dir", str(tmp_path / "out"), "--report_to", "none"])
    message = str(exit_info.value.code)
    assert message.startswith(f"error: --tokenizer_name_or_path '{other}' has another vocabulary than the tokenizer")
    assert f"of --init_from '{base}' (" in message and "in the model's): the model's embeddings are indexed" in message
    assert message.endswith("Leave --tokenizer_name_or_path out to use the model's own tokenizer.")
    tiny_tokenizer().save_pretrained(tmp_path / "same")  # another folder, the model's vocabulary: accepted
    model_args = ModelArguments(init_from=str(base), tokenizer_name_or_path=str(tmp_path / "same"))
    prepare_run(model_args, DataArguments(tasks=[_task("sentiment", SENTIMENT, 0)]), training_args(tmp_path))
