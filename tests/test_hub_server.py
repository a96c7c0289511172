"""The test Hub server speaks enough of the Hub's protocol for the unmodified huggingface_hub client."""

import hashlib

import pytest
from hub_server import serving
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)


@pytest.fixture
def server(tmp_path):
    with serving(tmp_path / "hub") as hub:
        yield hub


@pytest.fixture
def api(server):
    return HfApi(endpoint=server.url, token="test-token")


def test_regular_and_lfs_files_round_trip_in_one_commit(api, server, tmp_path):
    api.create_repo("org/repo")
    weights = bytes(range(256)) * 64  # binary: goes through the LFS batch API
    commit = api.create_commit(
        "org/repo",
        [CommitOperationAdd("config.json", b'{"a": 1}'), CommitOperationAdd("sub/model.safetensors", weights)],
        commit_message="add files",
    )
    assert hashlib.sha256(weights).hexdigest() in server.lfs_objects()
    assert server.commits("org/repo")[0] == commit.oid
    assert sorted(api.list_repo_files("org/repo")) == [".gitattributes", "config.json", "sub/model.safetensors"]
    entry = api.get_paths_info("org/repo", ["sub/model.safetensors"])[0]
    assert entry.lfs.sha256 == hashlib.sha256(weights).hexdigest() and entry.size == len(weights)
    top = {item.path for item in api.list_repo_tree("org/repo")}
    assert top == {".gitattributes", "config.json", "sub"}
    path = api.hf_hub_download("org/repo", "sub/model.safetensors", cache_dir=tmp_path / "cache")
    assert open(path, "rb").read() == weights
    assert api.list_repo_commits("org/repo")[0].title == "add files"


def test_unchanged_files_are_not_committed_again(api, server):
    api.create_repo("org/repo")
    operations = [CommitOperationAdd("a.txt", b"hello")]
    first = api.create_commit("org/repo", operations, commit_message="one")
    second = api.create_commit("org/repo", [CommitOperationAdd("a.txt", b"hello")], commit_message="two")
    assert second.oid == first.oid and len(server.commits("org/repo")) == 2  # initial commit + "one"


def test_errors_carry_the_hub_error_codes(api, server, tmp_path):
    with pytest.raises(RepositoryNotFoundError):
        api.repo_info("org/missing")
    api.create_repo("org/repo")
    with pytest.raises(RevisionNotFoundError):
        api.hf_hub_download("org/repo", ".gitattributes", revision="nope", cache_dir=tmp_path)
    with pytest.raises(EntryNotFoundError):
        api.hf_hub_download("org/repo", "missing.json", cache_dir=tmp_path)
    with pytest.raises(EntryNotFoundError):
        api.create_commit("org/repo", [CommitOperationDelete("missing.json")], commit_message="delete")
    with pytest.raises(HfHubHTTPError) as conflict:
        api.create_repo("org/repo")
    assert conflict.value.response.status_code == 409
    api.create_repo("org/repo", exist_ok=True)


def test_branches_are_isolated_and_private_repos_need_a_token(api, server):
    api.create_repo("org/repo", private=True)
    api.create_branch("org/repo", branch="dev")
    api.create_branch("org/repo", branch="dev", exist_ok=True)
    api.upload_file(path_or_fileobj=b"x", path_in_repo="dev.txt", repo_id="org/repo", revision="dev")
    assert "dev.txt" in api.list_repo_files("org/repo", revision="dev")
    assert "dev.txt" not in api.list_repo_files("org/repo")
    assert {ref.name for ref in api.list_repo_refs("org/repo").branches} == {"main", "dev"}
    assert api.repo_info("org/repo").private is True
    with pytest.raises(RepositoryNotFoundError):
        HfApi(endpoint=server.url, token=False).repo_info("org/repo")


def test_a_simulated_failure_leaves_the_branch_unchanged(api, server):
    api.create_repo("org/repo")
    before = server.commits("org/repo")
    server.fail_next_commit = True
    with pytest.raises(HfHubHTTPError) as failure:
        api.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id="org/repo")
    assert failure.value.response.status_code == 500
    assert server.commits("org/repo") == before and "x.txt" not in server.files("org/repo")
