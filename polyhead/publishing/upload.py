"""Publishing a model folder to the Hub: one commit holding weights, config, code, tokenizer, card, results and plots.

[`publish_model`] verifies the folder first (it loads as a Hub user loads it, its weights are complete and match
`config.json`, no file to upload is a symbolic link out of the folder), stages the exact set of files to upload in a
temporary folder, then creates the repo and branch if needed and uploads the staged folder in ONE commit. The same
commit deletes the branch's files of the kinds publishing uploads (`UPLOAD_PATTERNS`) that the new upload lacks (an
earlier model's `onnx/` graphs, weights shards, reports of tasks the new model lacks), so the branch holds exactly the
new model; other files on the branch are left alone. The folder's `serving.json` (the serving path
`scripts/benchmark.py --choose MODEL --write` picked, which the endpoint's `handler.py` serves) is published with it,
checked as the handler reads it; a `results_dir` is checked to be an evaluation of these very weights. A commit is
atomic on the Hub: when the upload fails, the branch head is read again, and [`PublishError`] says whether the commit
was created. With `dry_run_dir` the staged files go to that folder instead, written atomically like a model folder
(complete or absent), with no network call at all (so the branch, and what would be deleted from it, is not read).

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
from typing import Any

from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, RepoFile
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from polyhead import run_folder
from polyhead.publishing.model_card import MultitaskCardData, config_tasks, is_generated_card, write_model_card
from polyhead.run_folder import (
    README_FILE,
    REPORT_PATTERNS,
    RESULTS_FILE,
    TRAINING_ARGS_FILE,
    WEIGHTS_PATTERN,
    WEIGHTS_SHA256,
    evaluation_dir,
    repo_id_problem,
    weights_sha256,
)
from polyhead.saving import (
    REMOTE_CODE_FILES,
    add_serving_files,
    atomic_folder,
    check_model_folder,
    pin_tokenizer_inputs,
    verify_model_folder,
)
from polyhead.serving import SERVING_FILES
from polyhead.serving.settings import SETTINGS_FILE, read_serving_file


logger = logging.getLogger(__name__)

# What a model repo holds; anything else in the folder (checkpoints, logs, caches) stays local. Publishing owns these
# paths on the branch too: one that the new upload lacks is deleted in its commit (README.md excepted, see
# `stale_files`).
UPLOAD_PATTERNS = (
    "config.json",
    "generation_config.json",
    WEIGHTS_PATTERN,
    "model.safetensors.index.json",
    *REMOTE_CODE_FILES,
    *SERVING_FILES,
    SETTINGS_FILE,  # serving.json: the serving path the chooser picked, which handler.py serves
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
# The files that hold a model's scores: an evaluation folder given as `results_dir` replaces the model folder's.
SCORE_PATTERNS = (RESULTS_FILE, *REPORT_PATTERNS)
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
        removed (`list[str]`): files of the branch that the commit deleted, sorted: files of the kinds publishing
            uploads (`UPLOAD_PATTERNS`) that this upload lacks, left by an earlier one (empty in a dry run, which
            does not read the branch).
        serving (`dict`, *optional*): the published `serving.json`'s pick ([`serving_pick`]), which the endpoint's
            `handler.py` serves; `None` when the folder has none.
        commit_oid (`str`, *optional*): the commit's sha.
        commit_url (`str`, *optional*): the commit's URL.
    """

    repo_id: str
    branch: str
    files: list[str]
    readme: str
    dry_run: bool = False
    removed: list[str] = dataclasses.field(default_factory=list)
    serving: dict[str, Any] | None = None
    commit_oid: str | None = None
    commit_url: str | None = None


def select_upload_files(folder: Path) -> list[str]:
    """The folder's files that belong in the repo (`UPLOAD_PATTERNS`), as sorted POSIX paths.

    A pattern matches at its own depth only: `*.safetensors` takes `model.safetensors`, never
    `checkpoint-500/model.safetensors`."""
    found = (path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file())
    return sorted(name for name in found if is_upload_file(name))


def is_upload_file(name: str, patterns: tuple[str, ...] = UPLOAD_PATTERNS) -> bool:
    """Whether the POSIX path `name` (relative to the folder or repo root) matches one of `patterns`, each at its
    own depth only."""
    return any(name.count("/") == pattern.count("/") and fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def stale_files(remote: list[str], staged: list[str]) -> list[str]:
    """The branch's files (`remote`) that publishing owns (`UPLOAD_PATTERNS`) but the upload (`staged`) lacks, sorted:
    deleted in the same commit, so nothing of an earlier model (its `onnx/` graphs, which `handler.py` prefers, other
    weights files, reports of tasks the new model lacks) is served or shown beside the new one. `README.md` is never
    deleted: an upload without one leaves a hand-edited card on the branch on purpose."""
    keep = set(staged) | {README_FILE}
    return sorted(name for name in remote if is_upload_file(name) and name not in keep)


def check_no_outside_links(folder: Path) -> None:
    """Refuses a folder where a file to upload, or a folder that holds some (`baselines/`), is a symbolic link to
    something outside the folder: publishing never uploads a file from elsewhere on the machine."""
    root, outside = folder.resolve(), []
    folders = {pattern.split("/")[0] for pattern in UPLOAD_PATTERNS if "/" in pattern}
    for parent, dirnames, filenames in os.walk(folder):  # never descends into linked folders
        for name in (*dirnames, *filenames):
            path = Path(parent, name)
            relative = path.relative_to(folder).as_posix()
            uploaded = relative in folders or is_upload_file(relative)
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


def serving_pick(folder: Path) -> dict[str, Any] | None:
    """The pick of the folder's `serving.json` (`scripts/benchmark.py --choose MODEL --write`), published with the
    model: its settings as `handler.py` reads them, plus the chooser's name for it (`"chosen"`) and the machine it was
    measured on (`"machine"`) when the file records them; `None` without the file. A file the handler would refuse
    (malformed, or naming a graph the folder lacks), or one naming a graph that publishing does not upload, is
    refused with a [`PublishError`]: the endpoint would not start."""
    try:
        settings = read_serving_file(str(folder))
    except ValueError as error:
        raise PublishError(f"{error} Nothing was published.") from error
    if settings is None:
        return None
    onnx_file = settings.get("onnx_file")
    if onnx_file is not None and not is_upload_file(onnx_file):
        raise PublishError(
            f"{folder / SETTINGS_FILE} chooses {onnx_file}, which publishing does not upload (its graphs: "
            f"{', '.join(name for name in UPLOAD_PATTERNS if name.endswith('.onnx'))}): run the chooser again or "
            "delete it. Nothing was published."
        )
    record = run_folder.read_json(folder / SETTINGS_FILE)
    measured = record.get("measured") if isinstance(record.get("measured"), dict) else {}
    extra = {"chosen": record.get("chosen"), "machine": measured.get("machine")}
    return {**settings, **{key: value for key, value in extra.items() if isinstance(value, str)}}


def check_results_dir(folder: Path, results_dir: Path) -> None:
    """Refuses a `results_dir` without `results.json`, one that scores a task the model lacks, one whose recorded
    weights fingerprint (`weights_sha256`, written by `scripts/evaluate_model.py`) is not the folder's (both: the
    evaluation of another model), or one with a symbolic link out of it, with a [`PublishError`] naming the fix. An
    evaluation that records no fingerprint (written before evaluations recorded one) is accepted with a warning that
    it cannot be checked."""
    results = run_folder.read_results(results_dir) if results_dir.is_dir() else None
    if results is None:
        raise PublishError(
            f"{results_dir / RESULTS_FILE} is missing: give as --results the folder scripts/evaluate_model.py wrote "
            f"(its --output_dir, by default {evaluation_dir(folder, 'test')}). Nothing was published."
        )
    tasks = config_tasks(run_folder.read_json(folder / "config.json") or {})
    foreign = [task for task in results.get("tasks", {}) if task not in tasks]
    if foreign:
        raise PublishError(
            f"{results_dir / RESULTS_FILE} scores tasks that {folder} lacks ({', '.join(foreign)}; its tasks: "
            f"{', '.join(tasks)}): give the evaluation of this model. Nothing was published."
        )
    evaluated, weights = results.get(WEIGHTS_SHA256), weights_sha256(folder)
    fix = f"evaluate this model with scripts/evaluate_model.py {folder} --tasks ... and pass that folder"
    if evaluated is None:
        logger.warning(
            "%s records no fingerprint of the weights it scored (%s: it was written before evaluations recorded one), "
            "so it cannot be checked to be an evaluation of %s: publishing its scores as this model's. If unsure, %s.",
            results_dir / RESULTS_FILE,
            WEIGHTS_SHA256,
            folder,
            fix,
        )
    elif evaluated != weights:
        raise PublishError(
            f"{results_dir / RESULTS_FILE} evaluated other weights (those of {results.get('model')}, {WEIGHTS_SHA256} "
            f"{evaluated}; {folder}'s are {weights}): {fix}. Nothing was published."
        )
    check_no_outside_links(results_dir)


def upload_sources(folder: Path, results_dir: Path | None = None) -> dict[str, Path]:
    """`{repo path: local file}`: the folder's upload set (`select_upload_files`); with `results_dir` (an evaluation
    folder of `scripts/evaluate_model.py`), its `results.json` and per-task reports (`SCORE_PATTERNS`) replace the
    folder's own, none of which are kept (they score another run)."""
    sources = {name: folder / name for name in select_upload_files(folder)}
    if results_dir is not None:
        sources = {name: path for name, path in sources.items() if not is_upload_file(name, SCORE_PATTERNS)}
        scores = (name for name in select_upload_files(results_dir) if is_upload_file(name, SCORE_PATTERNS))
        sources.update({name: results_dir / name for name in scores})
    return dict(sorted(sources.items()))


def missing_results_message(folder: Path) -> str:
    """Why a card cannot be generated for a folder without `results.json`, and what works instead."""
    evaluation = evaluation_dir(folder, "test")
    if (evaluation / RESULTS_FILE).is_file():
        fix = f"{evaluation} holds an evaluation of it: publish with --results {evaluation}"
    else:
        fix = (
            f"evaluate it (scripts/evaluate_model.py {folder} --tasks ... writes {evaluation}) and publish with "
            f"--results {evaluation}"
        )
    return (
        f"{folder / RESULTS_FILE} is missing, and the model card needs the model's scores: {fix}; or put a "
        f"hand-edited {README_FILE} in the folder. Nothing was published."
    )


def remote_readme(api: HfApi, repo_id: str, branch: str, cache_dir: str) -> str | None:
    """The README on `branch`, or `None` when the repo, branch or file does not exist."""
    try:
        path = api.hf_hub_download(repo_id, README_FILE, revision=branch, cache_dir=cache_dir)
    except (RepositoryNotFoundError, RevisionNotFoundError, EntryNotFoundError):
        return None
    return Path(path).read_text(encoding="utf-8")


def keeps_remote_readme(remote: str | None, overwrite_readme: bool) -> bool:
    """Whether an upload leaves the branch's README as it is: one edited by hand there (no polyhead marker), unless
    `overwrite_readme`."""
    return not overwrite_readme and remote is not None and not is_generated_card(remote)


def stage_upload(
    folder: Path,
    staging: Path,
    *,
    repo_id: str,
    branch: str,
    remote: str | None,
    overwrite_readme: bool,
    card_data: MultitaskCardData | None,
    results_dir: Path | None = None,
) -> str:
    """Copies the upload set of `folder` (`upload_sources`) into `staging` and settles the README; returns how (see
    `PublishResult`)."""
    for name, source in upload_sources(folder, results_dir).items():
        (staging / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, staging / name)
    add_serving_files(staging, overwrite=False)  # folders saved before handler.py existed get it too
    pin_tokenizer_inputs(staging)  # and folders saved before their tokenizer named its inputs, these names
    local = staging / README_FILE
    if not overwrite_readme and local.is_file() and not is_generated_card(local.read_text(encoding="utf-8")):
        return "local"
    if keeps_remote_readme(remote, overwrite_readme):
        local.unlink(missing_ok=True)
        return "kept-remote"
    if not (staging / RESULTS_FILE).is_file():
        raise FileNotFoundError(missing_results_message(folder))
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
    results_dir: str | os.PathLike | None = None,
) -> PublishResult:
    r"""
    Publishes a model folder to `repo_id` in one commit on `branch`.

    The folder is verified first, whatever its README (`polyhead.saving.verify_model_folder`: it loads with its own
    remote code, its weights are complete and match `config.json`; no file to upload links out of the folder). The
    files to upload (`UPLOAD_PATTERNS`) are staged, and the model card is generated
    (`polyhead.publishing.model_card.write_model_card`, with its usage snippet pinned to `branch`) unless a hand-edited
    README is found: one in the folder is uploaded as is, one already on the branch is left in place;
    `overwrite_readme=True` generates the card anyway. The model folder itself is never modified. The commit also
    deletes the branch's files of the kinds publishing uploads (`UPLOAD_PATTERNS`) that this upload lacks
    (`stale_files`; listed in `PublishResult.removed`): the branch then holds this model only.

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
        results_dir (`str` or `os.PathLike`, *optional*): an evaluation of this model (the folder
            `scripts/evaluate_model.py` wrote, by default `<folder>/eval-test`): its `results.json` and per-task
            reports are published, and shown by the card, instead of the folder's own. The weights it evaluated
            (its `weights_sha256`) must be the folder's; one written before evaluations recorded them is published
            with a warning.

    Returns:
        [`PublishResult`]

    Raises:
        [`PublishError`]: `repo_id`, or a base model or dataset id of `card_data`, is not a valid Hub repo id, or
            the folder fails verification, or its `serving.json` is one the endpoint's handler would refuse, or
            `results_dir` holds no `results.json`, scores tasks the model lacks or evaluated other weights than the
            folder's (nothing was published), or a Hub call failed: the message
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
    serving = serving_pick(folder)  # published with the model: the endpoint serves it
    if results_dir is not None:
        results_dir = Path(results_dir)
        check_results_dir(folder, results_dir)
    api = HfApi(endpoint=endpoint, token=token)  # no network call until it is used
    repo_id = resolve_repo_id(api, repo_id, dry_run=dry_run_dir is not None)
    stage = functools.partial(
        stage_upload,
        folder,
        repo_id=repo_id,
        branch=branch,
        overwrite_readme=overwrite_readme,
        card_data=card_data,
        results_dir=results_dir,
    )
    if dry_run_dir is not None:
        return dataclasses.replace(_dry_run(stage, Path(dry_run_dir), repo_id, branch), serving=serving)
    with tempfile.TemporaryDirectory(prefix="polyhead-publish-") as tmp:
        remote = _call(lambda: remote_readme(api, repo_id, branch, os.path.join(tmp, "cache")), repo_id, branch)
        staging = Path(tmp) / "upload"
        staging.mkdir()
        readme = stage(staging, remote=remote)
        files = select_upload_files(staging)
        oid, url, removed = upload_staged(api, staging, repo_id, branch, private, commit_message)
    return PublishResult(
        repo_id=repo_id,
        branch=branch,
        files=files,
        readme=readme,
        removed=removed,
        serving=serving,
        commit_oid=oid,
        commit_url=url,
    )


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
        "Dry run: the %d files that would be uploaded are in %s (the branch was not read: no network, so neither its "
        "README nor the files of an earlier upload that publishing would delete were checked).",
        len(files),
        dry_run_dir,
    )
    return PublishResult(repo_id=repo_id, branch=branch, files=files, readme=readme, dry_run=True)


def upload_staged(
    api: HfApi, staging: Path, repo_id: str, branch: str, private: bool, message: str | None
) -> tuple[str, str, list[str]]:
    """Uploads `staging` in one commit on top of the branch's current head, deleting in the same commit the files of
    that head that `stale_files` names; returns `(commit oid, commit url, deleted files)`.

    Large files go first (`preupload_lfs_files`): a failure there, or before, happens before any commit is asked
    for. Only a failure of the commit call itself is ambiguous (the server may have committed and the answer been
    lost), so only then is the branch head read again."""
    staged = select_upload_files(staging)
    additions = [CommitOperationAdd(name, staging / name) for name in staged]

    def prepare() -> tuple[str | None, list[str]]:
        api.create_repo(repo_id, private=private, exist_ok=True)
        if private and not api.model_info(repo_id).private:  # an existing repo keeps its visibility
            logger.warning(
                "%s already exists and is public: private=True (--private) only makes a new repo private, so this "
                "upload is public. Make the repo private in its settings first if it must not be.",
                repo_id,
            )
        if branch != "main":
            api.create_branch(repo_id, branch=branch, exist_ok=True)
        head = _branch_head(api, repo_id, branch)
        remote = [] if head is None else _repo_files(api, repo_id, head)  # the commit's parent, not a later head
        api.preupload_lfs_files(repo_id, additions, revision=branch)
        return head, stale_files(remote, staged)

    head, removed = _call(prepare, repo_id, branch)
    try:
        commit = api.create_commit(
            repo_id,
            [*additions, *(CommitOperationDelete(name) for name in removed)],
            commit_message=message or "Upload multitask model",
            commit_description=f"Deleted, absent from this model: {', '.join(removed)}" if removed else None,
            revision=branch,
            parent_commit=head,  # a retried or concurrent commit is refused instead of piling onto this one
        )
    except _UPLOAD_ERRORS as error:
        landed = _landed_commit(api, staging, repo_id, branch, head, removed, error)
        logger.warning(
            "The commit call failed (%s), but the branch head %s holds exactly this upload: the commit landed and "
            "only its answer was lost.",
            _describe(error),
            landed,
        )
        return landed, f"{api.endpoint}/{repo_id}/commit/{landed}", removed
    return commit.oid, str(commit.commit_url), removed


def _repo_files(api: HfApi, repo_id: str, revision: str) -> list[str]:
    return [
        item.path
        for item in api.list_repo_tree(repo_id, revision=revision, recursive=True)
        if isinstance(item, RepoFile)
    ]


def _branch_head(api: HfApi, repo_id: str, branch: str) -> str | None:
    refs = api.list_repo_refs(repo_id)
    return next((ref.target_commit for ref in refs.branches if ref.name == branch), None)


def _landed_commit(
    api: HfApi, staging: Path, repo_id: str, branch: str, head: str | None, removed: list[str], error: Exception
) -> str:
    """After a failed upload, reads the branch head again: returns the new head when it is this upload's commit
    (the response was lost, not the commit), else raises a [`PublishError`] saying what is on the branch."""
    failed = f"Publishing to {repo_id} (branch {branch!r}) failed: {_describe(error)}."
    try:
        now = _branch_head(api, repo_id, branch)
        holds_upload = now != head and _commit_holds(api, repo_id, now, staging, removed)
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


def _commit_holds(api: HfApi, repo_id: str, revision: str, staging: Path, removed: list[str]) -> bool:
    """Whether every staged file is on `revision` with the same content (LFS sha256, else git blob id), and none of
    the files the commit was to delete."""
    remote = {item.path: item for item in api.list_repo_tree(repo_id, revision=revision, recursive=True)}
    if any(name in remote for name in removed):
        return False
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
    "SCORE_PATTERNS",
    "PublishError",
    "PublishResult",
    "check_card_data",
    "check_no_outside_links",
    "check_repo_id",
    "check_results_dir",
    "is_upload_file",
    "keeps_remote_readme",
    "publish_model",
    "resolve_repo_id",
    "select_upload_files",
    "serving_pick",
    "stale_files",
    "upload_sources",
    "upload_staged",
    "verify_folder",
]
