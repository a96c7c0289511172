"""Continuing from a trained multitask model: new heads, frozen heads and encoder, label maps, forgetting measured."""

import json
import logging
from pathlib import Path

import pytest
import torch
from helpers import Hub, labelled_split, publish, training_args
from hub_server import serving  # noqa: E402
from safetensors.torch import load_file

from polyhead import MultitaskModel
from polyhead.publishing.model_card import write_model_card
from polyhead.remote_code import normalize_task
from polyhead.saving import save_model_folder
from polyhead.tasks import TaskSpec
from polyhead.testing_utils import tiny_multitask_config, tiny_tokenizer
from polyhead.training.arguments import DataArguments, ModelArguments, parse_args
from polyhead.training.grow import extend_task_labels, forgetting_report, freeze_heads_except
from polyhead.training.trainer import build_model, prepare_tasks, run


ROOT = Path(__file__).resolve().parent.parent


def _task(name, labels, seed, n=24):
    import datasets

    splits = {"train": labelled_split(n, labels, seed), "test": labelled_split(12, labels, seed + 1)}
    return TaskSpec(name, dataset=datasets.DatasetDict(splits))


SENTIMENT, TOPIC = (["good", "bad"], ["sport", "tech", "money"])


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A trained 2-task model (tiny encoder, native pooling)."""
    tmp = tmp_path_factory.mktemp("base")
    tasks = [_task("sentiment", SENTIMENT, 0), _task("topic", TOPIC, 2)]
    run(ModelArguments(pooling="native"), DataArguments(tasks=tasks), training_args(tmp, num_train_epochs=2))
    return tmp / "run" / "model"


def _continue(base, tmp_path, tasks, **model_kwargs):
    model_args = ModelArguments(init_from=str(base), **model_kwargs)
    return run(model_args, DataArguments(tasks=tasks), training_args(tmp_path, learning_rate=5e-2))["multitask"]


def test_new_task_with_frozen_encoder_keeps_old_tasks_exactly(base, tmp_path):
    tasks = [_task("sentiment", SENTIMENT, 0), _task("topic", TOPIC, 2), _task("mood", ["joy", "fear"], 4)]
    results = _continue(base, tmp_path, tasks, train_tasks="mood", freeze_encoder=True)
    old, new = load_file(base / "model.safetensors"), load_file(tmp_path / "run" / "model" / "model.safetensors")
    assert set(new) - set(old) == {"heads.mood.weight", "heads.mood.bias"}
    assert all(torch.equal(old[key], new[key]) for key in old)  # encoder, native pooler and old heads untouched
    forgetting = results["forgetting"]
    assert set(forgetting["tasks"]) == {"sentiment", "topic"} and forgetting["init_from"] == str(base)
    for row in forgetting["tasks"].values():
        assert row["change"] == 0.0 and row["before"] == row["after"] and row["trained"] is False
    saved = json.loads((tmp_path / "run" / "model" / "results.json").read_text())
    assert saved["forgetting"] == forgetting and "mood" in saved["tasks"]
    card = write_model_card(tmp_path / "run" / "model", repo_id="org/grown").read_text()
    assert "## Before and after this run" in card and "| `topic` | F1 (macro) | no |" in card


def test_trainable_encoder_changes_only_the_trained_heads(base, tmp_path):
    tasks = [_task("sentiment", SENTIMENT, 0), _task("topic", TOPIC, 2)]
    results = _continue(base, tmp_path, tasks, train_tasks="sentiment")
    old, new = load_file(base / "model.safetensors"), load_file(tmp_path / "run" / "model" / "model.safetensors")
    assert torch.equal(old["heads.topic.weight"], new["heads.topic.weight"])
    assert not torch.equal(old["heads.sentiment.weight"], new["heads.sentiment.weight"])
    assert not torch.equal(old["native_pooler.dense.weight"], new["native_pooler.dense.weight"])
    rows = results["forgetting"]["tasks"]
    assert rows["sentiment"]["trained"] is True and rows["topic"]["trained"] is False
    assert rows["topic"]["change"] == pytest.approx(rows["topic"]["after"] - rows["topic"]["before"])


def test_label_maps_must_match_unless_extended(base, caplog):
    tokenizer = tiny_tokenizer()
    grown = [_task("topic", [*TOPIC, "health"], 2)]
    with pytest.raises(ValueError, match=r"labels \['health'\] are not in the model's label map"):
        prepare_tasks(ModelArguments(init_from=str(base)), DataArguments(tasks=grown), tokenizer)
    model_args = ModelArguments(init_from=str(base), extend_labels=True)
    prepared = prepare_tasks(model_args, DataArguments(tasks=grown), tokenizer)
    assert prepared.data["topic"].labels[:3] == MultitaskModel.from_pretrained(base).config.tasks["topic"]["labels"]
    model = build_model(model_args, {name: task.head for name, task in prepared.data.items()})
    start = MultitaskModel.from_pretrained(base)
    assert model.config.tasks["topic"]["labels"][-1] == "health" and model.heads["topic"].out_features == 4
    assert torch.equal(model.heads["topic"].weight[:3], start.heads["topic"].weight)
    # Labels added to a head that --train_tasks freezes would be answered from rows that never train: refused.
    frozen = ModelArguments(init_from=str(base), extend_labels=True, train_tasks="sentiment")
    with pytest.raises(
        ValueError, match=r"Task 'topic': labels \['health'\] would be added to a head that --train_tas"
    ):
        prepare_tasks(frozen, DataArguments(tasks=[*grown, _task("sentiment", SENTIMENT, 0)]), tokenizer)
    # A new label that differs from the model's only in case is its own label, with a warning.
    with caplog.at_level("WARNING", logger="polyhead.training.grow"):
        prepare_tasks(model_args, DataArguments(tasks=[_task("topic", [*TOPIC, TOPIC[0].upper()], 2)]), tokenizer)
    assert f"new labels ['{TOPIC[0].upper()}'] differ from the model's ['{TOPIC[0]}'] only in case" in caplog.text
    # Data in another label order takes the model's order (label ids keep their meaning).
    reordered = [_task("sentiment", SENTIMENT[::-1], 0)]
    prepared = prepare_tasks(ModelArguments(init_from=str(base)), DataArguments(tasks=reordered), tokenizer)
    assert prepared.data["sentiment"].labels == start.config.tasks["sentiment"]["labels"]


def test_extend_task_labels_keeps_rows_and_refuses_reordering():
    model = MultitaskModel(tiny_multitask_config())
    before = model.heads["sentiment"].weight.detach().clone()
    extend_task_labels(model, "sentiment", ["negative", "positive", "neutral"])
    assert torch.equal(model.heads["sentiment"].weight[:2], before)
    with pytest.raises(ValueError, match="must start with the current labels"):
        extend_task_labels(model, "sentiment", ["positive", "negative", "neutral", "x"])


def test_extending_a_multi_label_task_keeps_its_tuned_thresholds_and_gives_new_labels_the_task_threshold():
    model = MultitaskModel(tiny_multitask_config())
    spec = normalize_task("emotions", {**model.config.tasks["emotions"], "thresholds": [0.1, 0.2, 0.3, 0.6]})
    model.config.tasks = {**model.config.tasks, "emotions": spec}
    extend_task_labels(model, "emotions", ["anger", "fear", "joy", "sadness", "love", "pride"])
    grown = model.config.tasks["emotions"]
    assert grown["labels"][-2:] == ["love", "pride"] and model.heads["emotions"].out_features == 6
    assert grown["thresholds"] == [0.1, 0.2, 0.3, 0.6, 0.4, 0.4] and grown["threshold"] == 0.4


def test_freeze_heads_except():
    model = MultitaskModel(tiny_multitask_config())
    assert freeze_heads_except(model, ["topic"]) == ["sentiment", "emotions"]
    assert [model.heads[name].weight.requires_grad for name in model.config.task_names] == [False, True, False]
    assert all(p.requires_grad for p in model.encoder.parameters())
    with pytest.raises(ValueError, match=r"Unknown task\(s\) \['nope'\]"):
        freeze_heads_except(model, ["nope"])


def test_forgetting_report_warns_beyond_the_margin(caplog):
    before = {"a": {"f1_macro": 0.80}, "b": {"f1_micro": 0.50}}
    after = {"a": {"f1_macro": 0.70}, "b": {"f1_micro": 0.49}}
    types = {"a": "single_label_classification", "b": "multi_label_classification"}
    with caplog.at_level(logging.WARNING, logger="polyhead.training.grow"):
        report = forgetting_report(before, after, types, margin=0.05, trained=["b"])
    assert report["tasks"]["a"]["change"] == pytest.approx(-0.10) and report["tasks"]["b"]["metric"] == "f1_micro"
    assert len(report["warnings"]) == 1 and "'a' lost 0.1000 f1_macro" in caplog.text


def test_multitask_folder_as_encoder_points_to_init_from(tmp_path):
    folder = save_model_folder(MultitaskModel(tiny_multitask_config()), tiny_tokenizer(), tmp_path / "model")
    with pytest.raises(
        ValueError, match="is a trained multitask model, not an encoder: continue from it with --init_f"
    ):
        parse_args(["--encoder_name_or_path", str(folder), "--output_dir", str(tmp_path / "out")])
    with pytest.raises(ValueError, match="either --init_from"):
        ModelArguments(encoder_name_or_path="org/encoder", init_from=str(folder))


def test_train_tasks_need_data(base, tmp_path):
    with pytest.raises(ValueError, match=r"train_tasks \['topic'\] have no data"):
        _continue(base, tmp_path, [_task("sentiment", SENTIMENT, 0)], train_tasks="topic")


@pytest.mark.slow
def test_init_from_a_hub_repo_at_a_revision(base, tmp_path):
    """`--init_from org/name --revision v1` against the local Hub server: the published model's heads are kept."""
    import os
    import subprocess
    import sys

    with serving(tmp_path / "hub") as server:
        hub = Hub(server, server.url)
        publish(hub, base, "org/grown-base", branch="v1")
        data = tmp_path / "mood"
        data.mkdir()
        rows = [
            {"text": f"{word} movie today", "label": label} for word, label in [("happy", "joy"), ("sad", "fear")] * 8
        ]
        for split in ("train", "test"):
            (data / f"{split}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
        out = tmp_path / "out"
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env.update(
            HF_ENDPOINT=hub.url,
            HF_HUB_OFFLINE="0",
            HF_HUB_DISABLE_XET="1",
            HF_TOKEN="test-token",
            HF_HOME=str(tmp_path / "hf_home"),
            HF_MODULES_CACHE=str(tmp_path / "modules"),
        )
        command = [
            sys.executable,
            str(ROOT / "scripts" / "train.py"),
            *("--init_from", "org/grown-base", "--revision", "v1", "--tasks", f"mood={data}"),
            *("--train_tasks", "mood", "--freeze_encoder", "true", "--max_steps", "2"),
            *("--output_dir", str(out), "--eval_strategy", "no", "--save_strategy", "no"),
        ]
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    old, new = load_file(base / "model.safetensors"), load_file(out / "model" / "model.safetensors")
    assert set(new) - set(old) == {"heads.mood.weight", "heads.mood.bias"}
    assert all(torch.equal(old[key], new[key]) for key in old)
    config = json.loads((out / "model" / "config.json").read_text())
    assert [task["name"] for task in config["tasks"]] == ["sentiment", "topic", "mood"]


def test_pair_inputs_must_match_the_models_head(base, tmp_path):
    """A head trained on one text is not silently fed sentence pairs (nor the reverse): the saved config would
    describe inputs the head never saw."""
    import shutil

    import datasets

    tokenizer = tiny_tokenizer()
    split = labelled_split(24, SENTIMENT, 0)
    paired = split.add_column("other", split["text"])
    spec = TaskSpec("sentiment", dataset=datasets.DatasetDict(train=paired), text_pair_column="other")
    with pytest.raises(ValueError, match=r"'sentiment': the model's head reads one text but the data gives pairs"):
        prepare_tasks(ModelArguments(init_from=str(base)), DataArguments(tasks=[spec]), tokenizer)
    config = json.loads((base / "config.json").read_text())
    next(task for task in config["tasks"] if task["name"] == "sentiment")["text_pair"] = True
    pair_model = tmp_path / "pair-model"
    shutil.copytree(base, pair_model)
    (pair_model / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"head reads sentence pairs but the data gives one text: name its second"):
        prepare_tasks(
            ModelArguments(init_from=str(pair_model)),
            DataArguments(tasks=[_task("sentiment", SENTIMENT, 0)]),
            tokenizer,
        )


def test_init_from_mistakes_are_named_before_any_data_is_read(base, tmp_path):
    with pytest.raises(ValueError, match=r"is a training run's folder; its model is .*model: give that"):
        ModelArguments(init_from=str(base.parent))
    with pytest.raises(ValueError, match=r"no such folder"):
        ModelArguments(init_from=str(tmp_path / "nowhere" / "model"))
    (tmp_path / "plain").mkdir()
    with pytest.raises(ValueError, match="is not a polyhead multitask model folder"):
        ModelArguments(init_from=str(tmp_path / "plain"))
    with pytest.raises(ValueError, match=r"task_embedding_dropout must be in \[0, 1\), got 1.5"):
        ModelArguments(task_embeddings=True, task_embedding_dropout=1.5)


def test_options_a_grown_model_keeps_its_own_of_are_said_to_be_ignored(base, caplog):
    with caplog.at_level("WARNING", logger="polyhead.training.arguments"):
        ModelArguments(init_from=str(base))
        assert "ignored with --init_from" not in caplog.text
        ModelArguments(init_from=str(base), pooling="cls", classifier_dropout=0.3)
    assert (
        "--pooling, --classifier_dropout ignored with --init_from: the starting model's own are kept." in caplog.text
    )
