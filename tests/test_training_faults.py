"""Training faults: arguments that cannot train are refused up front, no folder polyhead did not write is replaced,
checkpoints survive, and resume skips a broken checkpoint and names it."""

import json
import logging

import pytest
from helpers import script_main, tiny_task_specs, training_args, truncate_file

from polyhead import MultitaskModel
from polyhead.training.arguments import DataArguments, ModelArguments, parse_args
from polyhead.training.trainer import resolve_resume_checkpoint, run


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
