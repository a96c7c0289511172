"""Training faults: arguments that cannot train are refused up front, no folder polyhead did not write is replaced,
checkpoints survive, and resume skips a broken checkpoint and names it."""

import json
import logging
import re

import datasets
import pytest
import yaml
from helpers import labelled_split, script_main, tiny_task_specs, training_args, truncate_file

from polyhead import MultitaskModel
from polyhead.tasks import TaskSpec
from polyhead.testing_utils import tiny_tokenizer
from polyhead.training.arguments import DataArguments, ModelArguments, parse_args
from polyhead.training.trainer import MultitaskTrainer, build_model, prepare_tasks, resolve_resume_checkpoint, run


@pytest.mark.parametrize(
    "model_dir, match",
    [
        ("run", "is output_dir"),
        ("", "is a parent folder of output_dir"),
        ("run/checkpoint-3", "is in a checkpoint folder"),
        ("run/checkpoint-9/model", "is in a checkpoint folder"),
        (".", "parent folder of output_dir"),
        ("keep", "not a model folder written by polyhead"),
    ],
)
def test_model_dir_that_would_delete_files_is_refused_before_training(tmp_path, monkeypatch, model_dir, match):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "keep").mkdir()
    (tmp_path / "keep" / "notes.txt").write_text("mine")
    (tmp_path / "run" / "checkpoint-3").mkdir(parents=True)
    (tmp_path / "run" / "checkpoint-3" / "trainer_state.json").write_text("{}")
    target = str(tmp_path / model_dir) if model_dir not in (".",) else model_dir
    args = training_args(tmp_path, model_dir=target)
    with pytest.raises(ValueError, match=match):
        run(ModelArguments(), DataArguments(tasks=tiny_task_specs(16)), args)
    assert (tmp_path / "keep" / "notes.txt").read_text() == "mine"
    assert (tmp_path / "run" / "checkpoint-3" / "trainer_state.json").is_file()
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["checkpoint-3"]  # nothing trained


def test_model_dir_inside_output_dir_keeps_the_checkpoints(tmp_path, caplog):
    args = training_args(tmp_path, model_dir=str(tmp_path / "run" / "final"), save_strategy="steps", save_steps=2)
    run(ModelArguments(), DataArguments(tasks=tiny_task_specs(16)), args)
    names = sorted(p.name for p in (tmp_path / "run").iterdir())
    assert "final" in names and any(name.startswith("checkpoint-") for name in names)
    assert MultitaskModel.from_pretrained(tmp_path / "run" / "final").config.task_names == [
        "sentiment",
        "topic",
        "emotions",
    ]
    with caplog.at_level(logging.WARNING, logger="polyhead.training.trainer"):
        run(ModelArguments(), DataArguments(tasks=tiny_task_specs(16)), args)  # a second run replaces its model folder
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == names
    # the first run's checkpoints stay, and a resume would take them: said
    assert "holds checkpoints of an earlier run (checkpoint-2" in caplog.text


@pytest.mark.parametrize(
    "flags, match",
    [
        (["--num_train_epochs", "-1"], "num_train_epochs=-1.0 with max_steps=-1"),
        (["--num_train_epochs", "0", "--max_steps", "0"], "trains for no step"),
        (["--learning_rate", "0"], "learning_rate=0.0"),
        (["--per_device_train_batch_size", "0"], "per_device_train_batch_size must be an integer >= 1, got 0"),
        (["--max_length", "0"], "max_length must be an integer >= 1, got 0"),
    ],
)
def test_arguments_that_cannot_train_are_refused(tmp_path, flags, match):
    with pytest.raises(ValueError, match=match):
        parse_args(["--output_dir", str(tmp_path), *flags])
    assert not any(tmp_path.iterdir())


def test_epochs_zero_with_max_steps_trains():
    assert parse_args(["--output_dir", "x", "--num_train_epochs", "0", "--max_steps", "3"])[2].max_steps == 3


def _checkpoints(tmp_path):
    args = training_args(tmp_path, max_steps=4, save_strategy="steps", save_steps=2)
    run(ModelArguments(), DataArguments(tasks=tiny_task_specs(16)), args)
    return tmp_path / "run", args


def test_resume_skips_a_broken_newest_checkpoint_and_names_it(tmp_path, caplog):
    output_dir, args = _checkpoints(tmp_path)
    assert resolve_resume_checkpoint("true", str(output_dir)) == str(output_dir / "checkpoint-4")
    truncate_file(output_dir / "checkpoint-4" / "model.safetensors")
    with caplog.at_level(logging.WARNING, logger="polyhead.training.trainer"):
        assert resolve_resume_checkpoint("true", str(output_dir)) == str(output_dir / "checkpoint-2")
    assert "checkpoint-4/model.safetensors is truncated" in caplog.text
    with pytest.raises(ValueError, match="checkpoint-4/model.safetensors is truncated"):
        resolve_resume_checkpoint(str(output_dir / "checkpoint-4"), str(output_dir))
    (output_dir / "checkpoint-2" / "optimizer.pt").write_bytes(b"")
    with pytest.raises(ValueError, match="no complete checkpoint.*checkpoint-2/optimizer.pt is empty or truncated"):
        resolve_resume_checkpoint("last", str(output_dir))
    assert resolve_resume_checkpoint("false", str(output_dir)) is None


def test_training_resumes_past_a_broken_checkpoint(tmp_path):
    output_dir, args = _checkpoints(tmp_path)
    truncate_file(output_dir / "checkpoint-4" / "model.safetensors", keep=0.0)
    args.resume_from_checkpoint, args.max_steps = "true", 6
    run(ModelArguments(), DataArguments(tasks=tiny_task_specs(16)), args)
    state = json.loads((output_dir / "checkpoint-6" / "trainer_state.json").read_text())
    assert state["global_step"] == 6 and (output_dir / "model" / "model.safetensors").is_file()


def test_resume_with_baselines_resumes_each_from_its_own_checkpoints(tmp_path):
    args = training_args(tmp_path, max_steps=2, save_strategy="steps", save_steps=2, single_task_baselines=True)
    args.keep_baseline_checkpoints = True  # by default they are removed once each baseline's folder is written
    specs = tiny_task_specs(16)[:2]
    run(ModelArguments(), DataArguments(tasks=specs), args)
    (tmp_path / "run" / "baselines" / "topic").rename(tmp_path / "topic-never-started")
    args.resume_from_checkpoint, args.max_steps = str(tmp_path / "run" / "checkpoint-2"), 4
    results = run(ModelArguments(), DataArguments(tasks=specs), args)
    assert results["baselines"]["tasks"].keys() == {"sentiment", "topic"}
    sentiment = tmp_path / "run" / "baselines" / "sentiment"  # its own checkpoint-2: the multitask one would not load
    assert json.loads((sentiment / "checkpoint-4" / "trainer_state.json").read_text())["global_step"] == 4
    assert (tmp_path / "run" / "baselines" / "topic" / "checkpoint-4").is_dir()  # started afresh


def test_resume_without_checkpoints_says_so(tmp_path):
    with pytest.raises(ValueError, match="no checkpoint-<step> folder"):
        resolve_resume_checkpoint("true", str(tmp_path))


def test_train_cli_refuses_in_one_line(tmp_path):
    (tmp_path / "keep").mkdir()
    (tmp_path / "keep" / "notes.txt").write_text("mine")
    main = script_main("train")
    for flags, message in (
        (["--num_train_epochs", "-1"], "error: These training arguments cannot produce a trained model"),
        (["--model_dir", str(tmp_path / "keep")], "error: Refusing to write a model folder"),
    ):
        with pytest.raises(SystemExit) as exit_info:  # sys.exit(message): exit status 1, the message, no traceback
            main(["--output_dir", str(tmp_path / "run"), *flags])
        assert isinstance(exit_info.value.code, str) and message in exit_info.value.code
    assert (tmp_path / "keep" / "notes.txt").read_text() == "mine" and not (tmp_path / "run").exists()


def test_the_train_script_says_in_one_line_that_there_is_nothing_to_resume(tmp_path):
    rows = [{"text": f"text {i} {'good' if i % 2 else 'bad'}", "label": "good" if i % 2 else "bad"} for i in range(40)]
    (tmp_path / "s.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    flags = ["--tasks", f"s={tmp_path / 's.jsonl'}", "--output_dir", str(tmp_path / "run"), "--report_to", "none"]
    with pytest.raises(SystemExit) as exit_info:  # was a traceback: the check runs once training starts
        script_main("train")([*flags, "--resume_from_checkpoint", "true"])
    assert exit_info.value.code.startswith("error: resume_from_checkpoint='true': no checkpoint-<step> folder in")
    assert not (tmp_path / "run" / "model").exists()


def test_resuming_as_another_model_or_with_other_optimizer_groups_is_one_clear_error(tmp_path):
    # Both ended in a traceback from torch's load_state_dict (after transformers listed missing keys).
    import dataclasses

    output_dir, args = _checkpoints(tmp_path)
    resumed = dataclasses.replace(args, resume_from_checkpoint="true", max_steps=6)
    fewer = tiny_task_specs(16)[:2]
    with pytest.raises(
        ValueError, match=r"Cannot resume from .*checkpoint-4: it was trained as another model \(tasks:"
    ):
        run(ModelArguments(), DataArguments(tasks=fewer), resumed)
    with pytest.raises(ValueError, match=r"its optimizer holds other parameter groups than this run's"):
        run(
            ModelArguments(),
            DataArguments(tasks=tiny_task_specs(16)),
            dataclasses.replace(resumed, head_learning_rate=1e-2),
        )
    assert not (output_dir / "checkpoint-6").exists()


def _two_topic_tasks():
    # A multi-label `topic` reports `topic_label_accuracy`; a single-label `topic_label` reports its `accuracy` there.
    def splits(labels, seed, multi=False):
        return datasets.DatasetDict(
            train=labelled_split(24, labels, seed, multi), validation=labelled_split(8, labels, seed + 1, multi)
        )

    return [
        TaskSpec("topic", dataset=splits(["sport", "tech"], 0, multi=True)),
        TaskSpec("topic_label", dataset=splits(["good", "bad"], 2)),
    ]


def test_tasks_whose_metric_names_collide_are_refused_before_training(tmp_path):
    # Both logged eval_topic_label_accuracy: one task's metric overwrote the other's, silently.
    message = r"Tasks 'topic' and 'topic_label' would both report the metric eval_topic_label_accuracy.*rename one"
    evaluating = training_args(tmp_path, eval_strategy="epoch")
    with pytest.raises(ValueError, match=message):
        run(ModelArguments(), DataArguments(tasks=_two_topic_tasks()), evaluating)
    assert not (tmp_path / "run").exists()
    prepared = prepare_tasks(ModelArguments(), DataArguments(tasks=_two_topic_tasks()), tiny_tokenizer())
    model = build_model(ModelArguments(), {name: task.head for name, task in prepared.data.items()})
    validation = {name: encoded["eval"] for name, encoded in prepared.encoded.items()}
    with pytest.raises(ValueError, match=message):  # the Trainer from Python too
        MultitaskTrainer(model, evaluating, eval_datasets=validation)
    MultitaskTrainer(model, evaluating, eval_datasets={"topic": validation["topic"]})  # one of them: no clash
    trainer = MultitaskTrainer(model, training_args(tmp_path), eval_datasets=validation)  # no evaluation in training
    with pytest.raises(ValueError, match=message):  # but asked for, it refuses before scoring anything
        trainer.evaluate()


@pytest.mark.parametrize(
    "weights, match",
    [
        ({"loss_weights": {"sentimnet": 5.0}}, r"loss_weights given for task\(s\) \['sentimnet'\] that the model"),
        ({"class_weights": {"sentimnet": [1.0, 2.0]}}, r"class_weights given for task\(s\) \['sentimnet'\]"),
        ({"class_weights": {"sentiment": [1.0, 2.0, 3.0]}}, r"'sentiment': 3 weights for its 2 labels"),
    ],
)
def test_trainer_refuses_weights_of_unknown_tasks_or_the_wrong_length(tmp_path, weights, match):
    # A misspelt task's weight was ignored silently; a wrong-length list failed inside torch at the first step.
    tokenizer = tiny_tokenizer()
    prepared = prepare_tasks(ModelArguments(), DataArguments(tasks=tiny_task_specs(16)), tokenizer)
    model = build_model(ModelArguments(), {name: task.head for name, task in prepared.data.items()})
    train = {name: encoded["train"] for name, encoded in prepared.encoded.items()}
    with pytest.raises(ValueError, match=match):
        MultitaskTrainer(model, training_args(tmp_path), train_datasets=train, processing_class=tokenizer, **weights)
    fitting = {"loss_weights": {"sentiment": 5.0}, "class_weights": {"sentiment": [1.0, 2.0], "topic": None}}
    MultitaskTrainer(model, training_args(tmp_path), train_datasets=train, processing_class=tokenizer, **fitting)


@pytest.mark.parametrize(
    "flags, match",
    [
        (["--max_train_samples", "0"], "max_train_samples must be an integer >= 1, got 0"),
        (["--max_train_samples", "-5"], "max_train_samples must be an integer >= 1, got -5"),
        (["--max_eval_samples", "0"], "max_eval_samples must be an integer >= 1, got 0"),
    ],
)
def test_run_wide_sample_counts_below_one_are_refused_when_parsed(tmp_path, flags, match):
    # 0 train rows failed in the sampler; 0 eval rows trained, then failed in sklearn with no model folder.
    with pytest.raises(ValueError, match=match):
        parse_args(["--tasks", "t=/nonexistent", "--output_dir", str(tmp_path / "run"), *flags])


def test_save_strategy_best_gets_the_default_best_metric(tmp_path):
    # Was a transformers traceback ("metric_for_best_model must be provided") once the data was read.
    flags = ["--output_dir", str(tmp_path / "run"), "--save_strategy", "best", "--eval_strategy", "epoch"]
    args = parse_args(flags)[2]
    assert args.metric_for_best_model == "average_primary" and args.greater_is_better
    trained = training_args(tmp_path, save_strategy="best", eval_strategy="epoch", num_train_epochs=2)
    run(ModelArguments(), DataArguments(tasks=tiny_task_specs(16)), trained)
    checkpoints = [p for p in (tmp_path / "run").iterdir() if p.name.startswith("checkpoint-")]
    state = json.loads((checkpoints[0] / "trainer_state.json").read_text())
    assert state["best_metric"] is not None and (tmp_path / "run" / "model" / "model.safetensors").is_file()


def test_numbers_in_a_config_file_are_checked_against_their_option_type(tmp_path):
    # max_train_samples: 100.0 reached the data code as a float (TypeError deep in data.py).
    def parsed(**values):
        path = tmp_path / "c.yaml"
        path.write_text(yaml.safe_dump({"output_dir": str(tmp_path / "run"), **values}))
        return parse_args([str(path)])

    _, data_args, args = parsed(max_train_samples=100.0, max_eval_samples=50, max_steps=3.0, learning_rate=1)
    assert data_args.max_train_samples == 100 and type(data_args.max_train_samples) is int
    assert args.max_steps == 3 and type(args.max_steps) is int and args.learning_rate == 1
    for values, match in (
        ({"max_train_samples": 100.5}, r"c.yaml: max_train_samples must be an integer .*got 100.5"),
        ({"max_steps": True}, r"c.yaml: max_steps must be an integer .*got True"),
        ({"seed": [1, 2]}, r"c.yaml: seed must be an integer .*got \[1, 2\]"),
        ({"learning_rate": False}, r"c.yaml: learning_rate must be a number, got False"),
    ):
        with pytest.raises(ValueError, match=match):
            parsed(**values)


@pytest.mark.parametrize(
    "flags, match",
    [
        ([], r"eval_strategy is 'no' \(the default\): set --eval_strategy steps or epoch"),
        (["--eval_strategy", "epoch"], r"save_strategy is 'steps': set --save_strategy epoch \(as --eval_strategy\)"),
    ],
)
def test_early_stopping_without_evaluation_is_one_line_naming_eval_strategy(tmp_path, flags, match):
    # Was transformers' three-line error about --load_best_model_at_end, a flag the user never gave.
    argv = ["--output_dir", str(tmp_path / "run"), "--early_stopping_patience", "2", *flags]
    with pytest.raises(SystemExit) as exit_info:
        script_main("train")(argv)
    message = exit_info.value.code
    assert isinstance(message, str) and "\n" not in message and "load_best_model_at_end" not in message
    assert re.search(match, message)
    assert parse_args([*argv, "--save_strategy", "best", "--eval_strategy", "epoch"])[2].load_best_model_at_end
