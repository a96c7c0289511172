"""Publishing a model folder to the Hub: one commit holding weights, config, code, tokenizer, card, results and plots.

[`publish_model`] verifies the folder first (it loads as a Hub user loads it, its weights are complete and match
`config.json`, no file to upload is a symbolic link out of the folder), stages the exact set of files to upload in a
temporary folder, then creates the repo and branch if needed and uploads the staged folder in ONE commit. A commit is
atomic on the Hub: when the upload fails, the branch head is read again, and [`PublishError`] says whether the commit
was created. With `dry_run_dir` the staged files go to that folder instead, written atomically like a model folder
(complete or absent), with no network call at all.

Notes for servers other than huggingface.co: with `hf_xet` installed, `huggingface_hub` uploads large files through
Xet only; set `HF_HUB_DISABLE_XET=1` for a server without it. `HF_ENDPOINT` is read once, when `huggingface_hub` is
imported; pass `endpoint=` to target another server from a running process.
"""

import dataclasses
import fnmatch
import functools
import hashlib
import logging
import os
import shutil
import tempfile
from pathlib import Path

from huggingface_hub import CommitOperationAdd, HfApi
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from polyhead import run_folder
from polyhead.publishing.model_card import MultitaskCardData, is_generated_card, write_model_card
from polyhead.run_folder import README_FILE, RESULTS_FILE, TRAINING_ARGS_FILE, repo_id_problem
from polyhead.saving import (
    REMOTE_CODE_FILES,
    add_serving_files,
    atomic_folder,
    check_model_folder,
    pin_tokenizer_inputs,
    verify_model_folder,
)
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
    *run_folder.RUN_FILE_PATTERNS,  # README.md, results.json, training_args.json, baselines/results.json, reports
)
_MASKED_TOKENS = (None, "", "<HUB_TOKEN>")
# The HTTP library's base error (connection failures, timeouts, a URL without http://), whichever library
# huggingface_hub is built on (httpx in 1.x, httpx2 in 2.x): HfHubHTTPError derives from it.
_TRANSPORT_ERROR = next(cls for cls in HfHubHTTPError.__mro__[1:] if cls.__name__ == "HTTPError")
# What a Hub call raises when the server cannot be reached or answers with an error.
HUB_ERRORS = (HfHubHTTPError, _TRANSPORT_ERROR, OfflineModeIsEnabled, OSError)
# huggingface_hub re-raises a failed large-file (LFS) upload as a RuntimeError from its worker threads.
_UPLOAD_ERRORS = (*HUB_ERRORS, RuntimeError)


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


def check_no_outside_links(folder: Path) -> None:
    """Refuses a folder where a file to upload, or a folder that holds some (`baselines/`), is a symbolic link to
    something outside the folder: publishing never uploads a file from elsewhere on the machine."""
    root, outside = folder.resolve(), []
    folders = {pattern.split("/")[0] for pattern in UPLOAD_PATTERNS if "/" in pattern}
    for parent, dirnames, filenames in os.walk(folder):  # never descends into linked folders
        for name in (*dirnames, *filenames):
            path = Path(parent, name)
            relative = path.relative_to(folder).as_posix()
            uploaded = relative in folders or any(_matches(relative, pattern) for pattern in UPLOAD_PATTERNS)
            if uploaded and path.is_symlink() and not path.resolve().is_relative_to(root):
                outside.append(f"{relative} -> {path.resolve()}")
    if outside:
        raise PublishError(
            f"{folder} holds symbolic links to files outside it: {', '.join(sorted(outside))}. Only the folder's own "
            "files are published: replace each link by a copy of what it points to (cp -L) or remove it. Nothing "
            "was published."
        )


def verify_folder(folder: Path) -> None:
    """[`polyhead.saving.verify_model_folder`] (it loads, its weights are complete and match its config) as a
    [`PublishError`]: run before anything is staged or uploaded, whatever the README."""
    try:
        verify_model_folder(folder)
    except (ValueError, FileNotFoundError) as error:
        raise PublishError(f"{error} Nothing was published.") from error


REPO_ID_HINT = "give it as org/name, e.g. 'org/tweets-multitask'"


def check_repo_id(repo_id: str) -> None:
    """Refuses a malformed `repo_id` with a [`PublishError`] that names it and the fix; no network call."""
    problem = repo_id_problem(repo_id)
    if problem:
        raise PublishError(
            f"Repo id {repo_id!r} is not a valid Hub repo id ({problem}): {REPO_ID_HINT}. Nothing was published."
        )


def check_card_data(card_data: MultitaskCardData | None) -> None:
    """Refuses a card `base_model` or dataset id that is not a valid Hub repo id
    ([`MultitaskCardData.check`]) with a [`PublishError`]; no network call, nothing staged."""
    try:
        if card_data is not None:
            card_data.check()
    except ValueError as error:
        raise PublishError(f"{error} Nothing was published.") from error


def resolve_repo_id(api: HfApi, repo_id: str, dry_run: bool) -> str:
    """`repo_id`, or `<your user name>/<repo_id>` when it has no namespace (asked of the Hub with `whoami`; a dry
    run, which uploads nothing, needs the namespace spelled out)."""
    if "/" in repo_id:
        return repo_id
    hint = f"give the full repo id, '<user or organization>/{repo_id}'. Nothing was published."
    if dry_run:
        raise PublishError(f"Repo id {repo_id!r} has no namespace: {hint}")
    try:
        user = api.whoami()["name"]
    except (*HUB_ERRORS, ValueError) as error:  # ValueError: no token to ask with
        raise PublishError(
            f"Repo id {repo_id!r} has no namespace, and the logged-in user could not be found ({error}): {hint}"
        ) from error
    logger.warning("Repo id %r has no namespace: publishing to your own, %s/%s.", repo_id, user, repo_id)
    return f"{user}/{repo_id}"


def check_no_token(folder: Path) -> None:
    """Refuses a `training_args.json` that holds a real Hub token (Trainer masks it as `<HUB_TOKEN>`)."""
    path = folder / TRAINING_ARGS_FILE
    if path.is_file():
        training = run_folder.read_training_args(folder).get("training") or {}
        if training.get("hub_token") not in _MASKED_TOKENS:
            raise PublishError(f"{path} holds a Hub token: remove it before publishing. Nothing was published.")


def remote_readme(api: HfApi, repo_id: str, branch: str, cache_dir: str) -> str | None:
    """The README on `branch`, or `None` when the repo, branch or file does not exist."""
    try:
        path = api.hf_hub_download(repo_id, README_FILE, revision=branch, cache_dir=cache_dir)
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
    pin_tokenizer_inputs(staging)  # and folders saved before their tokenizer named its inputs, these names
    local = staging / README_FILE
    if not overwrite_readme and local.is_file() and not is_generated_card(local.read_text(encoding="utf-8")):
        return "local"
    if not overwrite_readme and remote is not None and not is_generated_card(remote):
        local.unlink(missing_ok=True)
        return "kept-remote"
    if not (folder / RESULTS_FILE).is_file():
        raise FileNotFoundError(
            f"{folder / RESULTS_FILE} is missing: the model card needs the model's results (evaluate the model, e.g. "
            f"scripts/evaluate_model.py, or put a hand-edited {README_FILE} in the folder). Nothing was published."
        )
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

    The folder is verified first, whatever its README (`polyhead.saving.verify_model_folder`: it loads with its own
    remote code, its weights are complete and match `config.json`; no file to upload links out of the folder). The
    files to upload (`UPLOAD_PATTERNS`) are staged, and the model card is generated
    (`polyhead.publishing.model_card.write_model_card`, with its usage snippet pinned to `branch`) unless a hand-edited
    README is found: one in the folder is uploaded as is, one already on the branch is left in place;
    `overwrite_readme=True` generates the card anyway. The model folder itself is never modified.

    Args:
        folder (`str` or `os.PathLike`): a model folder written by `polyhead.saving.save_model_folder`.
        repo_id (`str`): `"org/name"`; a bare `"name"` means the logged-in user's namespace (refused in a dry run).
        private (`bool`, *optional*, defaults to `False`): create the repo private (an existing repo is unchanged).
        branch (`str`, *optional*, defaults to `"main"`): created from `main` when missing.
        commit_message (`str`, *optional*): defaults to `"Upload multitask model"`.
        token (`str`, *optional*): a Hub token; defaults to the logged-in one.
        endpoint (`str`, *optional*): another Hub-compatible server; defaults to `HF_ENDPOINT`.
        overwrite_readme (`bool`, *optional*, defaults to `False`): replace a hand-edited README by a generated card.
        dry_run_dir (`str` or `os.PathLike`, *optional*): write the upload to this new (or empty) folder instead,
            atomically, with no network call at all (so a hand-edited README already on the branch is not seen).
        card_data (`MultitaskCardData`, *optional*): license, language, datasets, widget texts... of the card.

    Returns:
        [`PublishResult`]

    Raises:
        [`PublishError`]: `repo_id`, or a base model or dataset id of `card_data`, is not a valid Hub repo id, or
            the folder fails verification (nothing was published), or a Hub call failed: the message
            says whether the commit was created (after a failed upload the branch head is read again; when the
            commit landed although its response was lost, the result is returned with a warning).

    Example:

    ```python
    >>> result = publish_model("outputs/model", "org/tweets-multitask", branch="v1", commit_message="First model")
    >>> result.commit_url
    'https://huggingface.co/org/tweets-multitask/commit/...'
    ```
    """
    folder = Path(folder)
    check_repo_id(repo_id)  # before the folder is loaded: a typo is reported at once
    check_card_data(card_data)  # and so is a malformed --base-model or --datasets id
    check_model_folder(folder)
    check_no_outside_links(folder)
    verify_folder(folder)
    check_no_token(folder)
    api = HfApi(endpoint=endpoint, token=token)  # no network call until it is used
    repo_id = resolve_repo_id(api, repo_id, dry_run=dry_run_dir is not None)
    stage = functools.partial(
        stage_upload,
        folder,
        repo_id=repo_id,
        branch=branch,
        overwrite_readme=overwrite_readme,
        card_data=card_data,
    )
    if dry_run_dir is not None:
        return _dry_run(stage, Path(dry_run_dir), repo_id, branch)
    with tempfile.TemporaryDirectory(prefix="polyhead-publish-") as tmp:
        remote = _call(lambda: remote_readme(api, repo_id, branch, os.path.join(tmp, "cache")), repo_id, branch)
        staging = Path(tmp) / "upload"
        staging.mkdir()
        readme = stage(staging, remote=remote)
        files = select_upload_files(staging)
        oid, url = _upload(api, staging, repo_id, branch, private, commit_message)
    return PublishResult(repo_id=repo_id, branch=branch, files=files, readme=readme, commit_oid=oid, commit_url=url)


def _dry_run(stage, dry_run_dir: Path, repo_id: str, branch: str) -> PublishResult:
    """Stages the upload into `dry_run_dir` atomically (complete or absent, like a model folder); no network call.

    The branch is not read, so a hand-edited README already on it is not seen: the staged card is what would be
    uploaded to a branch without one."""
    if dry_run_dir.exists() and (not dry_run_dir.is_dir() or any(dry_run_dir.iterdir())):
        raise FileExistsError(f"Dry-run folder {dry_run_dir} is not empty: give a new or empty folder.")
    with atomic_folder(dry_run_dir, overwrite=dry_run_dir.exists()) as staging:
        readme = stage(staging, remote=None)
        files = select_upload_files(staging)
    logger.info(
        "Dry run: the %d files that would be uploaded are in %s (the branch's README was not checked: no network).",
        len(files),
        dry_run_dir,
    )
    return PublishResult(repo_id=repo_id, branch=branch, files=files, readme=readme, dry_run=True)


def _upload(api: HfApi, staging: Path, repo_id: str, branch: str, private: bool, message: str | None):
    """Uploads `staging` in one commit on top of the branch's current head; returns `(commit oid, commit url)`.

    Large files go first (`preupload_lfs_files`): a failure there, or before, happens before any commit is asked
    for. Only a failure of the commit call itself is ambiguous (the server may have committed and the answer been
    lost), so only then is the branch head read again."""
    operations = [CommitOperationAdd(name, staging / name) for name in select_upload_files(staging)]

    def prepare() -> str | None:
        api.create_repo(repo_id, private=private, exist_ok=True)
        if branch != "main":
            api.create_branch(repo_id, branch=branch, exist_ok=True)
        head = _branch_head(api, repo_id, branch)
        api.preupload_lfs_files(repo_id, operations, revision=branch)
        return head

    head = _call(prepare, repo_id, branch)
    try:
        commit = api.create_commit(
            repo_id,
            operations,
            commit_message=message or "Upload multitask model",
            revision=branch,
            parent_commit=head,  # a retried or concurrent commit is refused instead of piling onto this one
        )
    except _UPLOAD_ERRORS as error:
        landed = _landed_commit(api, staging, repo_id, branch, head, error)
        logger.warning(
            "The commit call failed (%s), but the branch head %s holds exactly this upload: the commit landed and "
            "only its answer was lost.",
            _describe(error),
            landed,
        )
        return landed, f"{api.endpoint}/{repo_id}/commit/{landed}"
    return commit.oid, str(commit.commit_url)


def _branch_head(api: HfApi, repo_id: str, branch: str) -> str | None:
    refs = api.list_repo_refs(repo_id)
    return next((ref.target_commit for ref in refs.branches if ref.name == branch), None)


def _landed_commit(api: HfApi, staging: Path, repo_id: str, branch: str, head: str | None, error: Exception) -> str:
    """After a failed upload, reads the branch head again: returns the new head when it is this upload's commit
    (the response was lost, not the commit), else raises a [`PublishError`] saying what is on the branch."""
    failed = f"Publishing to {repo_id} (branch {branch!r}) failed: {_describe(error)}."
    try:
        now = _branch_head(api, repo_id, branch)
        holds_upload = now != head and _commit_holds(api, repo_id, now, staging)
    except HUB_ERRORS as check_error:
        raise PublishError(
            f"{failed} Whether a commit was created is unknown: reading the branch head afterwards failed too "
            f"({check_error}). Look at the branch's history (it was at {head}) before publishing again."
        ) from error
    if now == head:
        raise PublishError(
            f"{failed} No commit was created (the branch head is still {head}), so none of the files were "
            "published (the repository or branch may exist, unchanged)."
        ) from error
    if not holds_upload:
        raise PublishError(
            f"{failed} The branch head moved from {head} to {now}, a commit that does not hold this upload's files: "
            "another commit was made meanwhile, and the branch does not show this upload. Look at the branch's "
            "history before publishing again."
        ) from error
    return now


def _commit_holds(api: HfApi, repo_id: str, revision: str, staging: Path) -> bool:
    """Whether every staged file is on `revision` with the same content (LFS sha256, else git blob id)."""
    remote = {item.path: item for item in api.list_repo_tree(repo_id, revision=revision, recursive=True)}
    for name in select_upload_files(staging):
        item, content = remote.get(name), (staging / name).read_bytes()
        if item is None or not hasattr(item, "blob_id"):
            return False
        if item.lfs is not None:
            if item.lfs.sha256 != hashlib.sha256(content).hexdigest():
                return False
        elif item.blob_id != hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest():
            return False
    return True


def _call(function, repo_id: str, branch: str):
    """Runs Hub steps that cannot create a commit; any failure, a large-file upload's included, becomes a
    `PublishError` saying none was made."""
    try:
        return function()
    except _UPLOAD_ERRORS as error:
        raise PublishError(
            f"Publishing to {repo_id} (branch {branch!r}) failed: {_describe(error)}. No commit was created, so none "
            "of the files were published (the repository or branch may exist, unchanged)."
        ) from error


def _describe(error: BaseException) -> str:
    # huggingface_hub wraps a failed large-file upload ("Error while uploading 'x'"): its cause says why.
    text = str(error)
    if error.__cause__ is not None and isinstance(error, RuntimeError):
        text += f" ({type(error.__cause__).__name__}: {error.__cause__})"
    return " ".join(text.split())


__all__ = [
    "UPLOAD_PATTERNS",
    "HUB_ERRORS",
    "PublishError",
    "PublishResult",
    "check_card_data",
    "check_no_outside_links",
    "check_repo_id",
    "publish_model",
    "resolve_repo_id",
    "select_upload_files",
    "verify_folder",
]
