"""Publishing a model folder to the Hub: one commit holding weights, config, code, tokenizer, card, results and plots.

[`publish_model`] stages the exact set of files to upload in a temporary folder (with `dry_run_dir`, in that folder,
and uploads nothing), then creates the repo and branch if needed and uploads the staged folder in ONE commit. A commit
is atomic on the Hub: if it fails, none of the files are published, and [`PublishError`] says so.

Notes for servers other than huggingface.co: with `hf_xet` installed, `huggingface_hub` uploads large files through
Xet only; set `HF_HUB_DISABLE_XET=1` for a server without it. `HF_ENDPOINT` is read once, when `huggingface_hub` is
imported; pass `endpoint=` to target another server from a running process.
"""

import dataclasses
import fnmatch
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

from huggingface_hub import HfApi, constants
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from polyhead.model_card import README, MultitaskCardData, is_generated_card, write_model_card
from polyhead.saving import REMOTE_CODE_FILES, add_serving_files, check_model_folder
from polyhead.serving import SERVING_FILES


logger = logging.getLogger(__name__)

# What a model repo holds; anything else in the folder (checkpoints, logs, caches) stays local.
UPLOAD_PATTERNS = (
    "config.json",
    "generation_config.json",
    "*.safetensors",
    "model.safetensors.index.json",
    *REMOTE_CODE_FILES,
    *SERVING_FILES,
    "onnx/model.onnx",
    "onnx/model_quantized.onnx",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "spm.model",
    "sentencepiece.bpe.model",
    "README.md",
    "results.json",
    "training_args.json",
    "baselines/results.json",
    "confusion_matrix_*.png",
    "classification_report_*.txt",
)
_MASKED_TOKENS = (None, "", "<HUB_TOKEN>")
# The HTTP library's base error (connection failures, timeouts), whichever library huggingface_hub is built on
# (httpx in 1.x, httpx2 in 2.x): HfHubHTTPError derives from it.
_TRANSPORT_ERROR = next(cls for cls in HfHubHTTPError.__mro__[1:] if cls.__name__ == "HTTPError")
_HTTP_ERRORS = (HfHubHTTPError, _TRANSPORT_ERROR, OfflineModeIsEnabled, OSError)


class PublishError(RuntimeError):
    """Publishing failed; the message says what was (not) published."""


@dataclasses.dataclass
class PublishResult:
    """What [`publish_model`] did.

    Args:
        repo_id (`str`): the target repo.
        branch (`str`): the target branch.
        files (`list[str]`): the uploaded (or, in a dry run, staged) paths, sorted, relative to the repo root.
        readme (`str`): `"generated"` (a polyhead card), `"local"` (the folder's hand-edited README, as is) or
            `"kept-remote"` (the branch's hand-edited README was left in place: no README in the commit).
        dry_run (`bool`): whether nothing was uploaded.
        commit_oid (`str`, *optional*): the commit's sha.
        commit_url (`str`, *optional*): the commit's URL.
    """

    repo_id: str
    branch: str
    files: list[str]
    readme: str
    dry_run: bool = False
    commit_oid: str | None = None
    commit_url: str | None = None


def select_upload_files(folder: Path) -> list[str]:
    """The folder's files that belong in the repo (`UPLOAD_PATTERNS`), as sorted POSIX paths.

    A pattern matches at its own depth only: `*.safetensors` takes `model.safetensors`, never
    `checkpoint-500/model.safetensors`."""
    found = (path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file())
    return sorted(name for name in found if any(_matches(name, pattern) for pattern in UPLOAD_PATTERNS))


def _matches(name: str, pattern: str) -> bool:
    return name.count("/") == pattern.count("/") and fnmatch.fnmatchcase(name, pattern)


def check_no_token(folder: Path) -> None:
    """Refuses a `training_args.json` that holds a real Hub token (Trainer masks it as `<HUB_TOKEN>`)."""
    path = folder / "training_args.json"
    if path.is_file():
        training = json.loads(path.read_text(encoding="utf-8")).get("training") or {}
        if training.get("hub_token") not in _MASKED_TOKENS:
            raise PublishError(f"{path} holds a Hub token: remove it before publishing. Nothing was published.")


def remote_readme(api: HfApi, repo_id: str, branch: str, cache_dir: str) -> str | None:
    """The README on `branch`, or `None` when the repo, branch or file does not exist."""
    try:
        path = api.hf_hub_download(repo_id, README, revision=branch, cache_dir=cache_dir)
    except (RepositoryNotFoundError, RevisionNotFoundError, EntryNotFoundError):
        return None
    return Path(path).read_text(encoding="utf-8")


def stage_upload(
    folder: Path,
    staging: Path,
    *,
    repo_id: str,
    branch: str,
    remote: str | None,
    overwrite_readme: bool,
    card_data: MultitaskCardData | None,
) -> str:
    """Copies the upload set of `folder` into `staging` and settles the README; returns how (see `PublishResult`)."""
    for name in select_upload_files(folder):
        (staging / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(folder / name, staging / name)
    add_serving_files(staging, overwrite=False)  # folders saved before handler.py existed get it too
    local = staging / README
    if not overwrite_readme and local.is_file() and not is_generated_card(local.read_text(encoding="utf-8")):
        return "local"
    if not overwrite_readme and remote is not None and not is_generated_card(remote):
        local.unlink(missing_ok=True)
        return "kept-remote"
    write_model_card(staging, repo_id=repo_id, revision=branch, card_data=card_data, overwrite=True)
    return "generated"


def publish_model(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    private: bool = False,
    branch: str = "main",
    commit_message: str | None = None,
    token: str | None = None,
    endpoint: str | None = None,
    overwrite_readme: bool = False,
    dry_run_dir: str | os.PathLike | None = None,
    card_data: MultitaskCardData | None = None,
) -> PublishResult:
    r"""
    Publishes a model folder to `repo_id` in one commit on `branch`.

    The folder is checked (`polyhead.saving.check_model_folder`), the files to upload (`UPLOAD_PATTERNS`) are
    staged, and the model card is generated (`polyhead.model_card.write_model_card`, with its usage snippet pinned to
    `branch`) unless a hand-edited README is found: one in the folder is uploaded as is, one already on the branch is
    left in place; `overwrite_readme=True` generates the card anyway. The model folder itself is never modified.

    Args:
        folder (`str` or `os.PathLike`): a model folder written by `polyhead.saving.save_model_folder`.
        repo_id (`str`): `"org/name"`.
        private (`bool`, *optional*, defaults to `False`): create the repo private (an existing repo is unchanged).
        branch (`str`, *optional*, defaults to `"main"`): created from `main` when missing.
        commit_message (`str`, *optional*): defaults to `"Upload multitask model"`.
        token (`str`, *optional*): a Hub token; defaults to the logged-in one.
        endpoint (`str`, *optional*): another Hub-compatible server; defaults to `HF_ENDPOINT`.
        overwrite_readme (`bool`, *optional*, defaults to `False`): replace a hand-edited README by a generated card.
        dry_run_dir (`str` or `os.PathLike`, *optional*): write the exact upload to this new (or empty) folder
            instead, and upload nothing (the branch's README is still read, so the folder is exactly the upload).
        card_data (`MultitaskCardData`, *optional*): license, language, datasets, widget texts... of the card.

    Returns:
        [`PublishResult`]

    Raises:
        [`PublishError`]: on any failure of the Hub calls, saying that nothing was committed.

    Example:

    ```python
    >>> result = publish_model("outputs/model", "org/tweets-multitask", branch="v1", commit_message="First model")
    >>> result.commit_url
    'https://huggingface.co/org/tweets-multitask/commit/...'
    ```
    """
    folder = Path(folder)
    check_model_folder(folder)
    check_no_token(folder)
    api = HfApi(endpoint=endpoint, token=token)
    with tempfile.TemporaryDirectory(prefix="polyhead-publish-") as tmp:
        remote = _branch_readme(api, repo_id, branch, os.path.join(tmp, "cache"), dry_run=dry_run_dir is not None)
        staging = _staging_folder(dry_run_dir, tmp)
        readme = stage_upload(
            folder,
            staging,
            repo_id=repo_id,
            branch=branch,
            remote=remote,
            overwrite_readme=overwrite_readme,
            card_data=card_data,
        )
        files = select_upload_files(staging)
        result = PublishResult(repo_id=repo_id, branch=branch, files=files, readme=readme, dry_run=True)
        if dry_run_dir is not None:
            logger.info("Dry run: the %d files that would be uploaded are in %s.", len(files), staging)
            return result
        commit = _call(lambda: _upload(api, staging, repo_id, branch, private, commit_message), repo_id, branch)
    return dataclasses.replace(result, dry_run=False, commit_oid=commit.oid, commit_url=str(commit.commit_url))


def _branch_readme(api: HfApi, repo_id: str, branch: str, cache_dir: str, dry_run: bool) -> str | None:
    if dry_run and constants.is_offline_mode():
        # An offline dry run cannot see the branch: the staged folder assumes it has no hand-edited README.
        logger.warning("Offline dry run: not checking %s@%s for a hand-edited README.", repo_id, branch)
        return None
    return _call(lambda: remote_readme(api, repo_id, branch, cache_dir), repo_id, branch)


def _staging_folder(dry_run_dir: str | os.PathLike | None, tmp: str) -> Path:
    if dry_run_dir is None:
        staging = Path(tmp) / "upload"
    else:
        staging = Path(dry_run_dir)
        if staging.exists() and any(staging.iterdir()):
            raise FileExistsError(f"Dry-run folder {staging} is not empty: give a new or empty folder.")
    staging.mkdir(parents=True, exist_ok=True)
    return staging


def _upload(api: HfApi, staging: Path, repo_id: str, branch: str, private: bool, message: str | None):
    api.create_repo(repo_id, private=private, exist_ok=True)
    if branch != "main":
        api.create_branch(repo_id, branch=branch, exist_ok=True)
    return api.upload_folder(
        repo_id=repo_id,
        folder_path=staging,
        revision=branch,
        commit_message=message or "Upload multitask model",
    )


def _call(function, repo_id: str, branch: str):
    """Runs one Hub step; any HTTP or connection failure becomes a `PublishError` saying nothing was published."""
    try:
        return function()
    except _HTTP_ERRORS as error:
        raise PublishError(
            f"Publishing to {repo_id} (branch {branch!r}) failed: {error}. No commit was created, so none of the "
            "files were published (the repository or branch may exist, unchanged)."
        ) from error


__all__ = ["UPLOAD_PATTERNS", "PublishError", "PublishResult", "publish_model", "select_upload_files"]
