"""Publishing end to end against a local Hub-compatible server, then loading the repo back in a fresh process."""

import hashlib
import json
import os
import socket
import stat
import subprocess
import sys
import threading

import pytest
import torch
from helpers import RESULTS, ROOT, TEXTS, api_for, load_in_fresh_process, publish, remote_files, remote_text
from huggingface_hub import ModelCard, constants
from transformers import pipeline

from polyhead import MultitaskModel
from polyhead.publishing.model_card import is_generated_card
from polyhead.publishing.upload import PublishError, publish_model
from polyhead.saving import REMOTE_CODE_FILES, save_model_folder
from polyhead.testing_utils import tiny_multitask_config, tiny_tokenizer


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


def test_private_flag_creates_a_private_repo(hub, model_folder):
    publish(hub, model_folder, "org/secret", private=True)
    publish(hub, model_folder, "org/open")
    assert api_for(hub).repo_info("org/secret").private is True
    assert api_for(hub).repo_info("org/open").private is False


def test_cli_publishes_and_fails_clearly(hub, model_folder, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "0", "HF_HUB_DISABLE_XET": "1", "HF_TOKEN": "test-token"}
    command = [sys.executable, str(ROOT / "scripts" / "publish.py"), str(model_folder), "--repo-id", "org/cli"]
    done = subprocess.run(
        [*command, "--endpoint", hub.url, "--branch", "dev", "--message", "from the CLI"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert (
        "Published" in done.stdout
        and api_for(hub).list_repo_commits("org/cli", revision="dev")[0].title == "from the CLI"
    )
    failed = subprocess.run(
        [*command, "--endpoint", "http://127.0.0.1:9"], env=env, capture_output=True, text=True, timeout=120
    )
    assert failed.returncode != 0 and "nothing" not in failed.stdout and "No commit was created" in failed.stderr


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


def test_cli_dry_run_records_base_model_and_datasets_offline(model_folder, tmp_path):
    listener = socket.create_server(("127.0.0.1", 0))  # a Hub that counts the connections it gets
    connections = []
    threading.Thread(target=lambda: connections.append(listener.accept()), daemon=True).start()
    endpoint = f"http://127.0.0.1:{listener.getsockname()[1]}"
    env = {**os.environ, "HF_HUB_OFFLINE": "0", "HF_ENDPOINT": endpoint}
    command = [sys.executable, str(ROOT / "scripts" / "publish.py"), str(model_folder), "--repo-id", "org/cli-dry"]
    options = ["--base-model", "org/encoder", "--datasets", "org/extra-data", "topic=org/topic-data"]
    done = subprocess.run(
        [*command, "--dry-run", str(tmp_path / "preview"), "--endpoint", endpoint, *options],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    listener.close()
    assert done.returncode == 0, done.stderr[-3000:]
    assert connections == []
    card = ModelCard((tmp_path / "preview" / "README.md").read_text(encoding="utf-8"))
    assert card.data.base_model == "org/encoder"
    assert {"org/extra-data", "org/topic-data"} <= set(card.data.datasets)
    assert "[org/topic-data](https://huggingface.co/datasets/org/topic-data)" in card.text
