"""Publishing end to end against a local Hub-compatible server, then loading the repo back in a fresh process."""

import hashlib
import json
import logging
import os
import re
import shutil
import socket
import stat
import threading
import time
import types
from pathlib import Path

import pytest
import torch
from helpers import (
    CARD,
    RESULTS,
    TEXTS,
    api_for,
    load_in_fresh_process,
    publish,
    remote_files,
    remote_text,
    save_tiny_folder,
    script_main,
    truncate_file,
)
from huggingface_hub import ModelCard, constants
from transformers import pipeline

from polyhead import MultitaskModel
from polyhead.publishing.model_card import is_generated_card
from polyhead.publishing.upload import PublishError, publish_model
from polyhead.saving import REMOTE_CODE_FILES, save_model_folder
from polyhead.testing_utils import tiny_multitask_config, tiny_tokenizer


serving = pytest.importorskip("hub_server", reason="tests/hub_server.py is missing").serving


def weights_bytes(folder):
    return (Path(folder) / "model.safetensors").read_bytes()


def test_publish_in_one_commit_matches_dry_run_and_loads_back(hub, model_folder, local_model, tmp_path):
    repo_id, branch = "org/tiny-multitask", "v1"
    preview = publish(hub, model_folder, repo_id, branch=branch, dry_run_dir=tmp_path / "preview")
    staged = sorted(
        p.relative_to(tmp_path / "preview").as_posix() for p in (tmp_path / "preview").rglob("*") if p.is_file()
    )
    assert preview.dry_run and preview.files == staged and not api_for(hub).repo_exists(repo_id)
    assert "checkpoint-1/model.safetensors" not in staged and "baselines/results.json" in staged
    assert {"README.md", "config.json", "model.safetensors", "tokenizer.json", *REMOTE_CODE_FILES} <= set(staged)

    result = publish(hub, model_folder, repo_id, branch=branch, commit_message="First tiny model")
    assert not result.dry_run and result.readme == "generated" and result.commit_oid
    assert result.files == staged == remote_files(hub, repo_id, branch)
    commits = api_for(hub).list_repo_commits(repo_id, revision=branch)
    assert commits[0].title == "First tiny model" and commits[0].commit_id == result.commit_oid
    assert len(hub.commits(repo_id, branch)) == len(hub.commits(repo_id, "main")) + 1  # the branch adds ONE commit
    assert remote_files(hub, repo_id, "main") == []  # nothing went to main
    weights = hashlib.sha256((model_folder / "model.safetensors").read_bytes()).hexdigest()
    assert weights in hub.server.lfs_objects()  # the weights took the large-file (LFS) path
    readme = remote_text(hub, repo_id, branch, "README.md", tmp_path)
    assert readme == (tmp_path / "preview" / "README.md").read_text(encoding="utf-8")
    assert f'revision="{branch}"' in readme and not (model_folder / "README.md").exists()

    out = load_in_fresh_process(hub, repo_id, branch, tmp_path)
    assert out["model_class"].startswith("transformers_modules.") and out["model_class"].endswith("MultitaskModel")
    model, tokenizer = local_model
    with torch.no_grad():
        logits = model(**tokenizer(TEXTS, padding=True, return_tensors="pt")).logits
    for task, value in logits.items():
        torch.testing.assert_close(torch.tensor(out["logits"][task]), value, rtol=0, atol=1e-6)
    expected = pipeline("multitask-classification", model=model, tokenizer=tokenizer)(TEXTS, top_k=None, threshold=0.0)
    for theirs, ours in zip(out["pipeline"], expected):
        for task in ours:
            assert [i["label"] for i in theirs[task]] == [i["label"] for i in ours[task]]
            assert [i["score"] for i in theirs[task]] == pytest.approx([i["score"] for i in ours[task]], abs=1e-6)


def test_a_failed_commit_raises_and_publishes_nothing(hub, model_folder, tmp_path):
    repo_id = "org/failing"
    publish(hub, model_folder, repo_id)
    before, files = hub.commits(repo_id, "main"), hub.server.files(repo_id, "main")
    retrained = tmp_path / "retrained"
    torch.manual_seed(1)
    save_model_folder(MultitaskModel(tiny_multitask_config()), tiny_tokenizer(), retrained)
    for name in ("results.json", "training_args.json"):
        (retrained / name).write_bytes((model_folder / name).read_bytes())
    hub.server.fail_next_commit = True
    with pytest.raises(PublishError, match="No commit was created"):
        publish(hub, retrained, repo_id, commit_message="doomed")
    # The new weights reached LFS storage, but no commit points to them: the repo is exactly as before.
    assert hub.commits(repo_id, "main") == before and hub.server.files(repo_id, "main") == files
    assert api_for(hub).list_repo_commits(repo_id)[0].title != "doomed"
    published = publish(hub, retrained, repo_id, commit_message="retry")  # and a retry goes through
    assert hub.server.files(repo_id, "main")["model.safetensors"] == (retrained / "model.safetensors").read_bytes()
    assert published.commit_oid == hub.commits(repo_id, "main")[0] != before[0]


def test_hand_edited_readme_is_kept_unless_asked(hub, model_folder, tmp_path):
    repo_id = "org/hand-edited"
    hand = tmp_path / "hand"
    save_model_folder(*_copy_model(model_folder), hand)
    (hand / "README.md").write_text("# My own card\n", encoding="utf-8")
    assert publish(hub, hand, repo_id).readme == "local"
    assert remote_text(hub, repo_id, "main", "README.md", tmp_path) == "# My own card\n"

    kept = publish(hub, model_folder, repo_id, commit_message="new weights")  # folder without README
    assert kept.readme == "kept-remote" and "README.md" not in kept.files
    assert remote_text(hub, repo_id, "main", "README.md", tmp_path) == "# My own card\n"

    replaced = publish(hub, model_folder, repo_id, overwrite_readme=True)
    assert replaced.readme == "generated"
    assert is_generated_card(remote_text(hub, repo_id, "main", "README.md", tmp_path))


def _copy_model(folder):
    return MultitaskModel.from_pretrained(folder), tiny_tokenizer()


def test_private_flag_creates_a_private_repo(hub, model_folder, caplog):
    publish(hub, model_folder, "org/secret", private=True)
    publish(hub, model_folder, "org/open")
    assert api_for(hub).repo_info("org/secret").private is True
    assert api_for(hub).repo_info("org/open").private is False
    with caplog.at_level("WARNING", logger="polyhead.publishing.upload"):
        publish(hub, model_folder, "org/open", private=True)  # an existing public repo stays public: said so
    assert "org/open already exists and is public: private=True (--private) only makes a new repo private" in (
        caplog.text
    )
    assert api_for(hub).repo_info("org/open").private is False


def test_cli_publishes_and_fails_clearly(hub, model_folder, capsys):
    main = script_main("publish")
    command = [str(model_folder), "--repo-id", "org/cli", "--token", "test-token"]
    main([*command, "--endpoint", hub.url, "--branch", "dev", "--message", "from the CLI"])
    assert "Published" in capsys.readouterr().out
    assert api_for(hub).list_repo_commits("org/cli", revision="dev")[0].title == "from the CLI"
    with pytest.raises(SystemExit) as failed:  # sys.exit(message): exit status 1, the message, no traceback
        main([*command, "--endpoint", "http://127.0.0.1:9"])
    assert "No commit was created" in str(failed.value.code) and "nothing" not in capsys.readouterr().out


@pytest.fixture
def no_network(monkeypatch):
    """Online mode, with every outgoing connection refused and recorded."""
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network access during a dry run")

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    return attempts


def test_dry_run_makes_no_network_call(model_folder, tmp_path, no_network):
    preview = publish_model(model_folder, "org/offline", endpoint="http://127.0.0.1:9", dry_run_dir=tmp_path / "p")
    assert preview.dry_run and preview.readme == "generated" and "README.md" in preview.files
    assert no_network == []


def test_dry_run_is_atomic_names_the_model_folder_and_can_be_retried(model_folder, tmp_path, no_network):
    incomplete = tmp_path / "incomplete"
    save_model_folder(*_copy_model(model_folder), incomplete)  # no results.json: no card can be written
    preview = tmp_path / "preview"
    with pytest.raises(FileNotFoundError) as error:
        publish_model(incomplete, "org/incomplete", dry_run_dir=preview)
    assert str(incomplete / "results.json") in str(error.value) and str(preview) not in str(error.value)
    assert not preview.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".preview")]

    (incomplete / "results.json").write_text(json.dumps(RESULTS), encoding="utf-8")
    preview.mkdir()  # an empty folder is accepted too
    result = publish_model(incomplete, "org/incomplete", dry_run_dir=preview)  # the retry works
    assert sorted(p.name for p in preview.iterdir()) == sorted(result.files)
    with pytest.raises(FileExistsError, match="not empty"):
        publish_model(incomplete, "org/incomplete", dry_run_dir=preview)
    assert no_network == []


@pytest.mark.parametrize(("umask", "folder_mode", "file_mode"), [(0o022, 0o755, 0o644), (0o027, 0o750, 0o640)])
def test_model_and_dry_run_folders_get_the_umask_modes(
    model_folder, tmp_path, no_network, umask, folder_mode, file_mode
):
    old = os.umask(umask)
    try:
        saved = save_model_folder(*_copy_model(model_folder), tmp_path / "model")
        (saved / "results.json").write_text(json.dumps(RESULTS), encoding="utf-8")
        publish_model(saved, "org/modes", dry_run_dir=tmp_path / "preview")
    finally:
        os.umask(old)
    for folder in (saved, tmp_path / "preview"):
        assert stat.S_IMODE(folder.stat().st_mode) == folder_mode
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in folder.rglob("*") if p.is_file()}
        assert modes["model.safetensors"] == file_mode and set(modes.values()) == {file_mode}, modes


def test_cli_dry_run_records_base_model_and_datasets_offline(model_folder, tmp_path, monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # online: a dry run must still not connect
    listener = socket.create_server(("127.0.0.1", 0))  # a Hub that counts the connections it gets
    connections = []
    threading.Thread(target=lambda: connections.append(listener.accept()), daemon=True).start()
    endpoint = f"http://127.0.0.1:{listener.getsockname()[1]}"
    options = ["--base-model", "org/encoder", "--datasets", "org/extra-data", "topic=org/topic-data"]
    script_main("publish")(
        [str(model_folder), "--repo-id", "org/cli-dry", "--dry-run", str(tmp_path / "preview")]
        + ["--endpoint", endpoint, *options]
    )
    listener.close()
    assert connections == []
    card = ModelCard((tmp_path / "preview" / "README.md").read_text(encoding="utf-8"))
    assert card.data.base_model == "org/encoder"
    assert {"org/extra-data", "org/topic-data"} <= set(card.data.datasets)
    assert "[org/topic-data](https://huggingface.co/datasets/org/topic-data)" in card.text


# -- faults (against tests/hub_server.py with injected faults) -------------------------------------------------------


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
    save_tiny_folder(folder, seed=seed)
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
    truncate_file(folder / "model.safetensors")
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
        PublishError,
        match=r"config.json and the weights disagree: no weights for \['heads.extra.bias'.*Nothing was published",
    ):
        _publish(fresh_hub, folder, "org/disagree")
    tasks[1]["labels"] = ["a", "b"]  # topic: 2 labels in the config, weights for 4
    config["tasks"] = tasks
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(
        PublishError, match=r"wrong shape for \['heads.topic.bias: \[4\] in the checkpoint, \[2\] in the config"
    ):
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
    assert fresh_hub.files("org/lost")["model.safetensors"] == weights_bytes(retrained)


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
    assert fresh_hub.files("org/busy")["model.safetensors"] == weights_bytes(model_folder)


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
    fresh_hub.fail_lfs_upload = 401  # the server fails the next LFS upload only
    with pytest.raises(SystemExit) as failed:  # the CLI: one line, no traceback
        script_main("publish")(
            [str(model_folder), "--repo-id", "org/cli-401", "--endpoint", fresh_hub.url, "--token", "test-token"]
        )
    assert "No commit was created" in str(failed.value.code)


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


@pytest.mark.parametrize("repo_id", ["org/bad name", "a/b/c", "org/x--y", "org/"])
def test_a_malformed_repo_id_is_refused_before_any_network_call(fresh_hub, model_folder, repo_id, capsys):
    with pytest.raises(PublishError, match=r"is not a valid Hub repo id .*org/name.*Nothing was published"):
        _publish(fresh_hub, model_folder, repo_id)
    with pytest.raises(SystemExit) as failed:  # the CLI: one `error:` line
        script_main("publish")([str(model_folder), "--repo-id", repo_id, "--endpoint", fresh_hub.url])
    assert str(failed.value.code).startswith(f"error: Repo id {repo_id!r} is not a valid Hub repo id")
    assert fresh_hub.requests == [] and not fresh_hub.repos and "Published" not in capsys.readouterr().out


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--base-model", "bad model|x"], r"Base model 'bad model\|x' is not a valid Hub model id \(.*\): give"),
        (
            ["--datasets", "sentiment=not a dataset"],
            r"Dataset 'not a dataset' \(for task 'sentiment'\) is not a valid",
        ),
        (["--datasets", "org/x--y"], r"Dataset 'org/x--y' is not a valid Hub dataset id \(Cannot have -- .*org/name"),
    ],
)
def test_a_malformed_base_model_or_dataset_is_refused_before_anything_is_written(
    fresh_hub, model_folder, tmp_path, options, message, capsys
):
    main = script_main("publish")
    (tmp_path / "out").mkdir()
    preview = tmp_path / "out" / "preview"
    with pytest.raises(SystemExit) as failed:  # the dry run: one `error:` line, no preview folder
        main([str(model_folder), "--repo-id", "org/ids", "--dry-run", str(preview), *options])
    error = str(failed.value.code)
    assert re.match(f"error: {message}", error) and error.endswith("Nothing was published.") and "\n" not in error
    assert list((tmp_path / "out").iterdir()) == []  # nothing staged, not even a temporary folder
    with pytest.raises(SystemExit, match=message):  # a real publish: not a single request to the Hub
        main(
            [str(model_folder), "--repo-id", "org/ids", "--endpoint", fresh_hub.url, "--token", "test-token", *options]
        )
    assert fresh_hub.requests == [] and not fresh_hub.repos and "Published" not in capsys.readouterr().out


# -- republishing: the branch holds the new model only ---------------------------------------------------------------


def _first_model(model_folder, folder):
    """The published model folder plus what a second model may lack: an ONNX graph (handler.py serves it first) and
    the report of a task the second model lacks."""
    shutil.copytree(model_folder, folder, ignore=shutil.ignore_patterns("checkpoint-*"))
    (folder / "onnx").mkdir()
    (folder / "onnx" / "model.onnx").write_bytes(b"the first model's graph")
    (folder / "classification_report_oldtask.txt").write_text("oldtask report\n")
    return folder


def test_republishing_deletes_the_earlier_models_files_and_keeps_the_users(fresh_hub, model_folder, tmp_path, capsys):
    repo_id, api = "org/republished", api_for(fresh_hub)
    first = _publish(fresh_hub, _first_model(model_folder, tmp_path / "v1"), repo_id)
    assert "onnx/model.onnx" in fresh_hub.files(repo_id)
    # Left by an earlier, sharded upload, and a file of the user's own (no kind that publishing uploads).
    for name, content in [
        ("model-00001-of-00002.safetensors", b"old shard"),
        ("model.safetensors.index.json", b"{}"),
        ("notes/release.md", b"# my notes\n"),
    ]:
        api.upload_file(path_or_fileobj=content, path_in_repo=name, repo_id=repo_id)
    before = fresh_hub.commits(repo_id)

    second = _retrained(model_folder, tmp_path / "v2", seed=3)  # no ONNX, no baselines, no reports
    result = script_main("publish")(
        [str(second), "--repo-id", repo_id, "--endpoint", fresh_hub.url, "--token", "test-token"]
    )
    stale = [
        "baselines/results.json",
        "classification_report_oldtask.txt",
        "confusion_matrix_topic.png",
        "model-00001-of-00002.safetensors",
        "model.safetensors.index.json",
        "onnx/model.onnx",
    ]
    assert remote_files(fresh_hub, repo_id, "main") == sorted([*result.files, "notes/release.md"])
    assert fresh_hub.commits(repo_id)[1:] == before  # added and deleted in ONE commit
    assert result.removed == stale and first.removed == []
    out = capsys.readouterr().out
    assert f"Deleted {len(stale)} files of an earlier upload that this model lacks:" in out
    assert all(f"  {name}" in out for name in stale)

    loaded = load_in_fresh_process(fresh_hub, repo_id, "main", tmp_path)  # the branch serves the second model
    model = MultitaskModel.from_pretrained(second).eval()
    with torch.no_grad():
        logits = model(**tiny_tokenizer()(TEXTS, padding=True, return_tensors="pt")).logits
    for task, value in logits.items():
        torch.testing.assert_close(torch.tensor(loaded["logits"][task]), value, rtol=0, atol=1e-6)


def test_a_lost_answer_to_a_commit_that_deletes_files_is_still_recognised(fresh_hub, model_folder, tmp_path):
    _publish(fresh_hub, _first_model(model_folder, tmp_path / "v1"), "org/lost-delete")
    before = fresh_hub.commits("org/lost-delete")
    fresh_hub.drop_next_commit_response = True
    result = _publish(fresh_hub, _retrained(model_folder, tmp_path / "v2", seed=7), "org/lost-delete")
    assert "onnx/model.onnx" not in fresh_hub.files("org/lost-delete") and "onnx/model.onnx" in result.removed
    after = fresh_hub.commits("org/lost-delete")
    assert after[1:] == before and result.commit_oid == after[0]  # one commit, recognised as this upload's


# -- a folder without results.json: the error's fix works ------------------------------------------------------------


def test_a_folder_without_results_is_published_with_its_evaluation_as_the_error_says(model_folder, tmp_path):
    folder = save_tiny_folder(tmp_path / "model", seed=2)
    (folder / "training_args.json").write_text(json.dumps({"model": {"max_length": 24}}))
    (folder / "classification_report_sentiment.txt").write_text("a training report, not of this evaluation\n")
    data = tmp_path / "topic"
    data.mkdir()
    rows = [{"text": f"{label} news today", "label": label} for label in ("sport", "tech", "money", "movies") * 2]
    for split in ("train", "test"):
        (data / f"{split}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    publish_main, evaluation = script_main("publish"), folder / "eval-test"
    dry_run = [str(folder), "--repo-id", "org/evaluated", "--dry-run"]

    with pytest.raises(SystemExit) as failed:
        publish_main([*dry_run, str(tmp_path / "p1")])
    message = str(failed.value.code)
    assert f"scripts/evaluate_model.py {folder} --tasks" in message and f"--results {evaluation}" in message
    assert "\n" not in message and message.endswith("Nothing was published.")
    script_main("evaluate_model")([str(folder), "--tasks", f"topic={data}"])  # as the message says: its default folder
    with pytest.raises(SystemExit, match=f"{re.escape(str(evaluation))} holds an evaluation of it: publish with"):
        publish_main([*dry_run, str(tmp_path / "p2")])

    result = publish_main([*dry_run, str(tmp_path / "preview"), "--results", str(evaluation)])
    preview = tmp_path / "preview"
    assert (preview / "results.json").read_bytes() == (evaluation / "results.json").read_bytes()
    assert "classification_report_topic.txt" in result.files and "confusion_matrix_topic.png" in result.files
    assert "classification_report_sentiment.txt" not in result.files  # the folder's reports score another run
    assert not any(name.startswith("eval-test") for name in result.files)
    card = (preview / "README.md").read_text(encoding="utf-8")
    assert "### `topic`" in card and "Not scored here: `sentiment`, `emotions` (2 of the model's 3 tasks)." in card


def test_results_that_are_no_evaluation_of_the_model_are_refused(fresh_hub, model_folder, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(PublishError, match=r"empty/results.json is missing: give as --results the folder scripts/"):
        _publish(fresh_hub, model_folder, "org/results", results_dir=tmp_path / "empty")
    other = tmp_path / "other"
    other.mkdir()
    (other / "results.json").write_text(json.dumps({"tasks": {"topic": {}, "spam": {}}, "split": "test"}))
    with pytest.raises(PublishError, match=r"scores tasks that .* lacks \(spam; its tasks: sentiment, topic, emo"):
        _publish(fresh_hub, model_folder, "org/results", results_dir=other)
    assert not fresh_hub.repos


def _evaluated(tmp_path, seed):
    """A tiny model folder (weights from `seed`) and its evaluation by scripts/evaluate_model.py."""
    folder = save_tiny_folder(tmp_path / f"model-{seed}", seed=seed)
    (folder / "results.json").write_text(json.dumps(RESULTS))
    data = tmp_path / "topic"
    data.mkdir(exist_ok=True)
    rows = [{"text": f"{label} news today", "label": label} for label in ("sport", "tech", "money", "movies") * 2]
    for split in ("train", "test"):
        (data / f"{split}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    script_main("evaluate_model")([str(folder), "--tasks", f"topic={data}"])
    return folder, folder / "eval-test"


def test_an_evaluation_of_other_weights_is_refused_and_an_unchecked_one_is_named(tmp_path, capsys, caplog):
    """The evaluation of another model with the same task names was published as this model's scores: its results
    record the weights they scored, which must be the folder's; one written before they did is published with a
    warning that it cannot be checked."""
    model, evaluation = _evaluated(tmp_path, seed=2)
    other, other_evaluation = _evaluated(tmp_path, seed=3)
    recorded = json.loads((other_evaluation / "results.json").read_text())["weights_sha256"]
    publish_main = script_main("publish")
    dry_run = [str(model), "--repo-id", "org/evaluated", "--dry-run"]
    with pytest.raises(SystemExit) as failed:
        publish_main([*dry_run, str(tmp_path / "p1"), "--results", str(other_evaluation)])
    message = str(failed.value.code)
    assert f"eval-test/results.json evaluated other weights (those of {other}, weights_sha256 {recorded};" in message
    assert f"evaluate this model with scripts/evaluate_model.py {model} --tasks ... and pass that folder" in message
    assert message.endswith("Nothing was published.") and not (tmp_path / "p1").exists()

    with caplog.at_level("WARNING", logger="polyhead.publishing.upload"):
        result = publish_main([*dry_run, str(tmp_path / "p2"), "--results", str(evaluation)])  # its own: no warning
    assert "results.json" in result.files and "cannot be checked" not in caplog.text
    old = tmp_path / "old-eval"  # an evaluation written before evaluations recorded the weights
    shutil.copytree(evaluation, old)
    results = json.loads((old / "results.json").read_text())
    del results["weights_sha256"]
    (old / "results.json").write_text(json.dumps(results))
    with caplog.at_level("WARNING", logger="polyhead.publishing.upload"):
        publish_main([*dry_run, str(tmp_path / "p3"), "--results", str(old)])
    assert f"{old / 'results.json'} records no fingerprint of the weights it scored" in caplog.text
    assert f"it cannot be checked to be an evaluation of {model}" in caplog.text


SERVING_PICK = {"backend": "onnx", "onnx_file": "onnx/model_quantized.onnx", "chosen": "onnx-int8"}


def test_the_serving_pick_is_published_and_a_stale_one_deleted(fresh_hub, model_folder, tmp_path, capsys):
    """serving.json (scripts/benchmark.py --choose MODEL --write) is what the endpoint's handler serves: published
    with the int8 graph it picked, named in the summary; republishing a model without one deletes the earlier one."""
    from polyhead.serving.handler import serving_choice

    repo_id, publish_main = "org/serving-pick", script_main("publish")
    first = tmp_path / "v1"
    shutil.copytree(model_folder, first, ignore=shutil.ignore_patterns("checkpoint-*"))
    (first / "onnx").mkdir()
    (first / "onnx" / "model_quantized.onnx").write_bytes(b"the chosen int8 graph")
    (first / "serving.json").write_text(json.dumps({**SERVING_PICK, "measured": {"machine": "Test CPU (amx)"}}))
    hub_args = ["--repo-id", repo_id, "--endpoint", fresh_hub.url, "--token", "test-token"]
    result = publish_main([str(first), *hub_args])
    assert "serving.json" in result.files and "onnx/model_quantized.onnx" in result.files
    assert result.serving == {**SERVING_PICK, "machine": "Test CPU (amx)"}
    assert fresh_hub.files(repo_id)["serving.json"] == (first / "serving.json").read_bytes()
    out = capsys.readouterr().out
    assert (
        'Serving: serving.json published, which picks onnx-int8 {"backend": "onnx", "onnx_file": '
        '"onnx/model_quantized.onnx"} measured on Test CPU (amx): the endpoint\'s handler.py serves it. To leave it '
        f"out, delete {first}/serving.json before publishing" in out
    )
    snapshot = api_for(fresh_hub).snapshot_download(repo_id, local_dir=tmp_path / "served")
    assert serving_choice(snapshot)[:2] == ("onnx", "onnx/model_quantized.onnx")  # the endpoint serves the pick

    second = _retrained(model_folder, tmp_path / "v2", seed=5)  # no serving.json: its stale one would pick int8
    result = publish_main([str(second), *hub_args])
    assert {"serving.json", "onnx/model_quantized.onnx"} <= set(result.removed) and result.serving is None
    assert "serving.json" not in fresh_hub.files(repo_id) and "Serving: no serving.json was published" in (
        capsys.readouterr().out
    )


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"backend": "tensorflow"}, r"serving.json must hold \{'backend': 'torch'"),
        ({"backend": "onnx", "onnx_file": "onnx/model_quantized.onnx"}, r"chooses onnx/model_quantized.onnx, which"),
        ({"backend": "onnx", "onnx_file": "graphs/fast.onnx"}, r"chooses graphs/fast.onnx, which publishing does not"),
    ],
)
def test_a_serving_pick_the_endpoint_would_refuse_is_not_published(model_folder, tmp_path, settings, message):
    folder = tmp_path / "model"
    shutil.copytree(model_folder, folder, ignore=shutil.ignore_patterns("checkpoint-*"))
    (folder / "graphs").mkdir()
    (folder / "graphs" / "fast.onnx").write_bytes(b"a graph publishing does not upload")
    (folder / "serving.json").write_text(json.dumps(settings))
    with pytest.raises(PublishError, match=f"{message}.*Nothing was published"):
        publish_model(folder, "org/refused", dry_run_dir=tmp_path / "preview", card_data=CARD)
    assert not (tmp_path / "preview").exists()
