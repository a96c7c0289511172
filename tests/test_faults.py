"""Fault tests: the bad inputs and failures that could lose data or misreport an outcome, each with its behaviour.

Folders: writing a model folder never removes anything but an earlier polyhead model folder. Training: arguments that
cannot train are refused up front, checkpoints survive, resume skips a broken checkpoint and names it. Weights: an
empty or truncated file is named. Publishing (against tests/hub_server.py with injected faults): the folder is verified
whatever its README, every failure says whether a commit was created, links out of the folder and bare repo ids are
refused or resolved.
"""

import json
import logging
import os
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest
import torch
from helpers import CARD, ROOT, script_main, tiny_task_specs, training_args

from polyhead import MultitaskModel
from polyhead.evaluation.scoring import evaluate_saved_model
from polyhead.publishing.model_card import predict_widget
from polyhead.publishing.upload import PublishError, publish_model
from polyhead.run_folder import check_weights_file
from polyhead.saving import UnsafeFolderError, atomic_folder, save_model_folder
from polyhead.testing_utils import tiny_multitask_config, tiny_tokenizer
from polyhead.training.arguments import DataArguments, ModelArguments, parse_args
from polyhead.training.trainer import resolve_resume_checkpoint, run


serving = pytest.importorskip("hub_server", reason="tests/hub_server.py is missing").serving


def _save(folder, seed=0, **kwargs):
    torch.manual_seed(seed)
    return save_model_folder(MultitaskModel(tiny_multitask_config()), tiny_tokenizer(), folder, **kwargs)


def _weights(folder):
    return (Path(folder) / "model.safetensors").read_bytes()


def _truncate(path, keep=0.5):
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[: int(len(data) * keep)])


# -- writing model folders ------------------------------------------------------------------------------------------


def test_a_foreign_folder_is_never_replaced(tmp_path):
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "notes.txt").write_text("mine")
    with pytest.raises(UnsafeFolderError, match="not a model folder written by polyhead"):
        _save(keep, overwrite=True)
    assert [p.name for p in keep.iterdir()] == ["notes.txt"] and (keep / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep"]  # no temporary folder left behind


def test_odd_targets_are_refused(tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    (work / "a_file").write_text("x")
    (work / "link").symlink_to(tmp_path)
    for target in (".", "..", "", str(work), str(tmp_path), "sub/..", "link"):
        with pytest.raises(UnsafeFolderError, match="Refusing to write a model folder"):
            _save(target, overwrite=True)
    with pytest.raises(UnsafeFolderError, match="it is a file"):
        _save("a_file", overwrite=True)
    assert sorted(p.name for p in work.iterdir()) == ["a_file", "link"]


def test_a_trainer_checkpoint_is_not_replaced(tmp_path):
    run_dir = tmp_path / "run"
    _save(run_dir)
    (run_dir / "checkpoint-2").mkdir()
    (run_dir / "checkpoint-2" / "trainer_state.json").write_text("{}")
    with pytest.raises(UnsafeFolderError, match="Trainer checkpoint"):
        _save(run_dir, overwrite=True)
    assert (run_dir / "checkpoint-2" / "trainer_state.json").is_file()


def test_a_polyhead_folder_is_replaced_only_with_overwrite(tmp_path):
    folder = _save(tmp_path / "model")
    first = _weights(folder)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        _save(folder, seed=1)
    assert _weights(folder) == first
    _save(folder, seed=1, overwrite=True)
    assert _weights(folder) != first
    (tmp_path / "empty").mkdir()
    _save(tmp_path / "empty")  # an empty folder is no loss
    (tmp_path / ".model.old").mkdir()  # a name the old code deleted blindly as its backup
    (tmp_path / ".model.old" / "precious.txt").write_text("x")
    _save(folder, seed=2, overwrite=True)
    assert (tmp_path / ".model.old" / "precious.txt").read_text() == "x"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".model.old", "empty", "model"]


def test_a_failure_while_writing_leaves_the_old_folder(tmp_path):
    folder = _save(tmp_path / "model")
    first = _weights(folder)

    def fail(tmp):
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        _save(folder, seed=1, overwrite=True, extra=fail)
    assert _weights(folder) == first and sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_a_folder_that_changes_while_writing_is_not_replaced(tmp_path):
    target = tmp_path / "model"
    with pytest.raises(UnsafeFolderError, match="not a model folder written by polyhead"):
        with atomic_folder(target, overwrite=True) as tmp:
            (tmp / "new.txt").write_text("new")
            target.mkdir()
            (target / "someone_elses.txt").write_text("theirs")
    assert [p.name for p in target.iterdir()] == ["someone_elses.txt"]


# -- training ---------------------------------------------------------------------------------------------------------


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


def test_model_dir_inside_output_dir_keeps_the_checkpoints(tmp_path):
    args = training_args(tmp_path, model_dir=str(tmp_path / "run" / "final"), save_strategy="steps", save_steps=2)
    run(ModelArguments(), DataArguments(tasks=tiny_task_specs(16)), args)
    names = sorted(p.name for p in (tmp_path / "run").iterdir())
    assert "final" in names and any(name.startswith("checkpoint-") for name in names)
    assert MultitaskModel.from_pretrained(tmp_path / "run" / "final").config.task_names == [
        "sentiment",
        "topic",
        "emotions",
    ]
    run(ModelArguments(), DataArguments(tasks=tiny_task_specs(16)), args)  # a second run replaces its own model folder
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == names


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
    _truncate(output_dir / "checkpoint-4" / "model.safetensors")
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
    _truncate(output_dir / "checkpoint-4" / "model.safetensors", keep=0.0)
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


# -- weights files ----------------------------------------------------------------------------------------------------


def test_empty_and_truncated_weights_are_named(tmp_path):
    folder = _save(tmp_path / "model")
    weights = folder / "model.safetensors"
    assert check_weights_file(weights)["heads.topic.weight"] == [4, 32]
    _truncate(weights)
    with pytest.raises(ValueError, match=f"{weights} is truncated"):
        check_weights_file(weights)
    with pytest.raises(ValueError, match=f"{weights} is truncated"):
        predict_widget(folder, ["good"])
    with pytest.raises(ValueError, match=f"{weights} is truncated"):
        evaluate_saved_model(folder, ["topic=nowhere"])
    weights.write_bytes(b"")
    with pytest.raises(ValueError, match=f"{weights} is empty"):
        check_weights_file(weights)
    weights.write_bytes(b"\x05\x00\x00\x00\x00\x00\x00\x00{oops")
    with pytest.raises(ValueError, match="is not a safetensors file"):
        check_weights_file(weights)


# -- publishing -------------------------------------------------------------------------------------------------------


@pytest.fixture
def fresh_hub(tmp_path):
    """A test server of one's own (some faults stop it)."""
    with serving(tmp_path / "hub") as server:
        yield server


def _publish(server, folder, repo_id, **kwargs):
    kwargs.setdefault("card_data", CARD)
    kwargs.setdefault("token", "test-token")
    return publish_model(folder, repo_id, endpoint=server.url, **kwargs)


def _retrained(model_folder, folder, seed):
    _save(folder, seed=seed)
    for name in ("results.json", "training_args.json"):
        (folder / name).write_bytes((model_folder / name).read_bytes())
    return folder


def _hand_edited(model_folder, tmp_path):
    folder = tmp_path / "hand"
    folder.mkdir()
    for path in model_folder.iterdir():
        if path.is_file():
            (folder / path.name).write_bytes(path.read_bytes())
    (folder / "README.md").write_text("# My own card\n")  # no polyhead marker: no card generation, no model load
    return folder


def test_truncated_weights_are_not_published_whatever_the_readme(fresh_hub, model_folder, tmp_path):
    folder = _hand_edited(model_folder, tmp_path)
    _truncate(folder / "model.safetensors")
    with pytest.raises(PublishError, match="model.safetensors is truncated.*Nothing was published"):
        _publish(fresh_hub, folder, "org/truncated")
    with pytest.raises(PublishError, match="model.safetensors is truncated"):
        _publish(fresh_hub, folder, "org/truncated", dry_run_dir=tmp_path / "preview")
    assert not fresh_hub.repos and not (tmp_path / "preview").exists()


def test_weights_that_disagree_with_the_config_are_not_published(fresh_hub, model_folder, tmp_path):
    folder = _hand_edited(model_folder, tmp_path)
    config = json.loads((folder / "config.json").read_text())
    tasks = config["tasks"]  # a list of {"name", "labels", "problem_type"}
    config["tasks"] = [*tasks, {"name": "extra", "labels": ["a", "b"], "problem_type": "single_label_classification"}]
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(
        PublishError, match="disagree with its config.json.*no weights for heads.extra.bias.*Nothing was published"
    ):
        _publish(fresh_hub, folder, "org/disagree")
    tasks[1]["labels"] = ["a", "b"]  # topic: 2 labels in the config, weights for 4
    config["tasks"] = tasks
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(PublishError, match=r"shapes differ: heads.topic.bias \[4\] \(config: \[2\]\)"):
        _publish(fresh_hub, folder, "org/disagree")
    assert not fresh_hub.repos


def test_a_lost_commit_response_reports_the_commit_that_landed(fresh_hub, model_folder, tmp_path, caplog):
    _publish(fresh_hub, model_folder, "org/lost")
    before = fresh_hub.commits("org/lost")
    retrained = _retrained(model_folder, tmp_path / "retrained", seed=3)
    fresh_hub.drop_next_commit_response = True
    with caplog.at_level(logging.WARNING, logger="polyhead.publishing.upload"):
        result = _publish(fresh_hub, retrained, "org/lost", commit_message="answer lost")
    after = fresh_hub.commits("org/lost")
    assert after[1:] == before and result.commit_oid == after[0]  # exactly one new commit: the client's retry was
    assert (
        "the commit landed and only its answer was lost" in caplog.text and result.commit_oid in caplog.text
    )  # refused, not committed twice
    assert fresh_hub.files("org/lost")["model.safetensors"] == _weights(retrained)


def test_an_unknown_outcome_is_reported_as_unknown(fresh_hub, model_folder, tmp_path, monkeypatch):
    _skip_retry_waits(monkeypatch)
    _publish(fresh_hub, model_folder, "org/unknown")
    head = fresh_hub.commits("org/unknown")[0]
    fresh_hub.stop_after_next_commit = True  # the commit lands, then the server is gone before anyone can check
    with pytest.raises(PublishError, match=f"Whether a commit was created is unknown.*it was at {head}"):
        _publish(fresh_hub, _retrained(model_folder, tmp_path / "retrained", seed=5), "org/unknown")
    assert fresh_hub.commits("org/unknown")[1] == head


def test_a_concurrent_commit_is_neither_piled_on_nor_claimed(fresh_hub, model_folder, tmp_path):
    _publish(fresh_hub, model_folder, "org/busy")
    head = fresh_hub.commits("org/busy")[0]
    fresh_hub.interleave_next_commit = True
    with pytest.raises(PublishError, match=f"moved from {head} to .*another commit was made meanwhile"):
        _publish(fresh_hub, _retrained(model_folder, tmp_path / "retrained", seed=6), "org/busy")
    assert fresh_hub.commits("org/busy")[1] == head  # only the concurrent commit was added
    assert "CONCURRENT.md" in fresh_hub.files("org/busy")
    assert fresh_hub.files("org/busy")["model.safetensors"] == _weights(model_folder)


def _skip_retry_waits(monkeypatch):
    # huggingface_hub retries a lost connection 5 times with growing waits: skip the waits, not the retries.
    from huggingface_hub.utils import _http

    monkeypatch.setattr(_http, "time", types.SimpleNamespace(sleep=lambda seconds: None, time=time.time))


def test_a_failed_commit_says_the_branch_head_is_unchanged(fresh_hub, model_folder, tmp_path):
    _publish(fresh_hub, model_folder, "org/failed")
    head = fresh_hub.commits("org/failed")[0]
    fresh_hub.fail_next_commit = True
    retrained = _retrained(model_folder, tmp_path / "retrained", seed=4)
    with pytest.raises(PublishError, match=f"No commit was created \\(the branch head is still {head}\\)"):
        _publish(fresh_hub, retrained, "org/failed")
    assert fresh_hub.commits("org/failed")[0] == head


def test_an_lfs_upload_refused_with_401_is_a_clear_failure(fresh_hub, model_folder, tmp_path):
    fresh_hub.fail_lfs_upload = 401
    with pytest.raises(
        PublishError, match="Error while uploading '.*' to the Hub.*401 Unauthorized.*No commit was created"
    ):
        _publish(fresh_hub, model_folder, "org/unauthorized")
    assert len(fresh_hub.commits("org/unauthorized")) == 1  # the repo's initial commit only
    env = {**os.environ, "HF_HUB_OFFLINE": "0", "HF_HUB_DISABLE_XET": "1", "HF_TOKEN": "test-token"}
    fresh_hub.fail_lfs_upload = 401
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "publish.py"), str(model_folder), "--repo-id", "org/cli-401"]
        + ["--endpoint", fresh_hub.url],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode != 0 and "No commit was created" in done.stderr and "Traceback" not in done.stderr


def test_a_server_gone_during_the_lfs_upload_is_a_clear_failure(fresh_hub, model_folder, monkeypatch):
    _skip_retry_waits(monkeypatch)
    fresh_hub.stop_on_lfs_upload = True
    with pytest.raises(PublishError, match="Error while uploading '.*' to the Hub.*No commit was created"):
        _publish(fresh_hub, model_folder, "org/gone")


def test_a_link_out_of_the_folder_is_refused(fresh_hub, model_folder, tmp_path):
    folder = _hand_edited(model_folder, tmp_path)
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the Hub")
    (folder / "classification_report_topic.txt").symlink_to(secret)
    with pytest.raises(PublishError, match="classification_report_topic.txt -> .*secret.txt.*Nothing was published"):
        _publish(fresh_hub, folder, "org/links")
    (folder / "classification_report_topic.txt").unlink()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "results.json").write_text("{}")
    (folder / "baselines").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(PublishError, match="baselines -> .*elsewhere"):
        _publish(fresh_hub, folder, "org/links")
    (folder / "baselines").unlink()
    assert not fresh_hub.repos
    (folder / "checkpoint-1").symlink_to(tmp_path / "elsewhere")  # not published, so not in the way
    (folder / "copies").mkdir()
    (folder / "tokenizer.json").rename(folder / "copies" / "tokenizer.json")
    (folder / "tokenizer.json").symlink_to(folder / "copies" / "tokenizer.json")  # a link within the folder is fine
    result = _publish(fresh_hub, folder, "org/links")
    assert fresh_hub.files("org/links")["tokenizer.json"] == (folder / "copies" / "tokenizer.json").read_bytes()
    assert not any(name.startswith(("checkpoint-1", "copies")) for name in result.files)


def test_a_repo_id_without_namespace_is_the_users_own_or_refused(fresh_hub, model_folder, tmp_path):
    result = _publish(fresh_hub, model_folder, "bare")
    assert result.repo_id == "test-user/bare" and fresh_hub.files("test-user/bare")["model.safetensors"]
    with pytest.raises(PublishError, match="has no namespace.*'<user or organization>/bare'"):
        _publish(fresh_hub, model_folder, "bare", dry_run_dir=tmp_path / "preview")
    with pytest.raises(PublishError, match="has no namespace, and the logged-in user could not be found"):
        publish_model(model_folder, "anonymous", endpoint=fresh_hub.url, token=False, card_data=CARD)
    assert [repo_id for _, repo_id in fresh_hub.repos] == ["test-user/bare"]


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
