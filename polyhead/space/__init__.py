"""A Gradio Space for a multitask model: a live page where every task answers one text, as label charts.

[`write_space`] writes the Space's four files into a folder: `app.py` (the template beside this module, copied as is;
it imports only gradio, pandas, torch and transformers), `space_config.json` (the model, its pinned commit, the
examples from the model card's widget and the metrics table from `results.json`), `requirements.txt` (the tested
versions, pinned) and `README.md` (the Space metadata: `sdk: gradio`, `sdk_version`, `models`, title, emoji, short
description). The model is a local folder (the Space then runs only where that folder is, e.g. `python app.py`
offline) or a Hub repo, whose revision is pinned to a commit. [`publish_space`] uploads such a folder to a
`repo_type="space"` repo in one commit. Entry points: `scripts/make_space.py`, `scripts/publish.py --space`.
"""

import dataclasses
import importlib.metadata
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from huggingface_hub import CommitOperationAdd, HfApi, ModelCard, SpaceCard, SpaceCardData, hf_hub_download
from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

from polyhead.publishing.model_card import METRIC_INFO, config_tasks, format_value, markdown_table
from polyhead.publishing.upload import HUB_ERRORS, REPO_ID_HINT
from polyhead.remote_code import MULTIPLE_CHOICE, MultitaskConfig
from polyhead.run_folder import README_FILE, RESULTS_FILE, repo_id_problem
from polyhead.saving import is_polyhead_model_folder


logger = logging.getLogger(__name__)
APP_TEMPLATE = Path(__file__).resolve().parent / "app.py"
APP_FILE = "app.py"
CONFIG_FILE = "space_config.json"  # read by app.py
REQUIREMENTS_FILE = "requirements.txt"
SPACE_FILES = (APP_FILE, CONFIG_FILE, REQUIREMENTS_FILE, README_FILE)
# What app.py imports, pinned to the versions it was tested with; gradio itself is the Space's `sdk_version`.
PINNED_PACKAGES = ("torch", "transformers", "pandas")
PYTHON_VERSION = "3.11"  # the Space image's Python: transformers 5 needs 3.10 or newer
SHORT_DESCRIPTION_LIMIT = 60  # the Hub refuses a longer `short_description`
EXTRA_HINT = "pip install 'polyhead[space]'"


class SpaceError(ValueError):
    """The Space cannot be written or published; the message says why and what to do."""


@dataclasses.dataclass
class SpaceSettings:
    r"""
    What the Space page says about the model.

    Args:
        title (`str`, *optional*): the page and Space title; defaults to the model's name.
        emoji (`str`, *optional*, defaults to `"🏷️"`): the Space's emoji on the Hub.
        description (`str`, *optional*): a line under the title; defaults to the model and its tasks.
        examples (`list[str]`, *optional*): example texts; default: the model card's widget texts.
        license (`str`, *optional*, defaults to `"apache-2.0"`).

    Example:

    ```python
    >>> write_space("outputs/model", "outputs/space", SpaceSettings(title="Tweets, three ways"))
    ```
    """

    title: str | None = None
    emoji: str = "🏷️"
    description: str | None = None
    examples: list[str] | None = None
    license: str = "apache-2.0"

    def __post_init__(self):
        # an empty example would fill the page's text box with nothing, and its click answer "Text is empty"
        blank = [i for i, text in enumerate(self.examples or []) if not isinstance(text, str) or not text.strip()]
        if blank:
            raise SpaceError(
                f"Example texts {blank} (counted from 0) are empty or not strings: give non-empty texts, or leave "
                "the examples out for the model card's widget texts."
            )


@dataclasses.dataclass
class ModelSource:
    """Where the Space loads the model from, and what it read about it."""

    model: str  # a Hub repo id, or the absolute path of a local folder
    revision: str | None  # a commit sha for a Hub repo; None for a folder
    repo_id: str | None  # the Hub repo named in the Space metadata (`models:`), when there is one
    tasks: dict[str, dict[str, Any]]
    widget_texts: list[str]
    results: dict[str, Any] | None


def check_repo_id(repo_id: str, what: str, *, namespace: bool = False) -> str:
    """Refuses a malformed Hub repo id (`what` names it in the message) before anything is read, written or
    uploaded; with `namespace=True` a bare `name` is refused too. No network call.

    Raises:
        [`SpaceError`]: the id is malformed; the message says why and how to spell it."""
    problem = repo_id_problem(repo_id)
    if problem is None and namespace and "/" not in repo_id:
        problem = "it has no namespace"
    if problem:
        raise SpaceError(f"{what} {repo_id!r} is not a valid Hub repo id ({problem}): {REPO_ID_HINT}.")
    return repo_id


def check_space_id(space_id: str) -> str:
    """Refuses a malformed Space id, or one without its namespace (`org/name`), as a [`SpaceError`]."""
    return check_repo_id(space_id, "Space id", namespace=True)


def read_model(
    model: str | os.PathLike,
    *,
    revision: str | None = None,
    repo_id: str | None = None,
    endpoint: str | None = None,
    token: str | None = None,
) -> ModelSource:
    """Reads a local model folder or a Hub repo (config, card widget texts, `results.json`); a Hub revision is
    resolved to its commit so the Space keeps running the model it was made for.

    Raises:
        [`SpaceError`]: the folder is not a polyhead model folder, or is given Hub options (revision, endpoint,
            token), `model` or `repo_id` is not a valid repo id, or the repo cannot be read or is not a polyhead
            model."""
    if repo_id is not None:  # written into the Space metadata as is
        check_repo_id(repo_id, "The model repo id for the Space metadata (--repo-id)")
    path = Path(model)
    if path.is_dir():
        options = {"revision": revision, "endpoint": endpoint, "token": token}
        given = [f"--{name}" for name, value in options.items() if value is not None]
        if given:  # they would be ignored: the Space runs the folder's files
            is_are, it_them = ("is", "it") if len(given) == 1 else ("are", "them")
            raise SpaceError(
                f"{path} is a local model folder: {', '.join(given)} {is_are} for a Hub model and would be ignored. "
                f"Leave {it_them} out, or give the model's Hub repo id (org/name) instead."
            )
        if not is_polyhead_model_folder(path):
            raise SpaceError(
                f"{path} is not a polyhead model folder (it needs config.json with model_type "
                f"{MultitaskConfig.model_type!r} next to the remote code): give a folder written by "
                "scripts/train.py or save_model_folder."
            )
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
        return ModelSource(
            model=str(path.resolve()),
            revision=None,
            repo_id=repo_id,
            tasks=config_tasks(config),
            widget_texts=_widget_texts(path / README_FILE),
            results=_read_json(path / RESULTS_FILE),
        )
    if path.exists() or str(model).count("/") != 1:
        raise SpaceError(f"{model} is neither a model folder nor a Hub repo id (org/name).")
    problem = repo_id_problem(str(model))
    if problem:
        raise SpaceError(
            f"{model} is neither a model folder (there is no such folder) nor a valid Hub repo id ({problem}): give "
            "a polyhead model folder, or a Hub model id as org/name."
        )
    return _read_hub_model(str(model), revision, endpoint, token)


def _read_hub_model(repo_id: str, revision: str | None, endpoint: str | None, token: str | None) -> ModelSource:
    api = HfApi(endpoint=endpoint, token=token)
    try:
        sha = api.model_info(repo_id, revision=revision).sha
        with tempfile.TemporaryDirectory(prefix="polyhead-space-") as cache:
            files = {
                name: _download(api, repo_id, name, sha, cache) for name in ("config.json", README_FILE, RESULTS_FILE)
            }
            config = _read_json(files["config.json"]) if files["config.json"] else None
            widget_texts = _widget_texts(files[README_FILE]) if files[README_FILE] else []
            results = _read_json(files[RESULTS_FILE]) if files[RESULTS_FILE] else None
    except (RepositoryNotFoundError, RevisionNotFoundError) as error:
        found = f"Model repo {repo_id} (revision {revision or 'main'}) was not found"
        raise SpaceError(f"{found}: {_one_line(error)}") from error
    except HUB_ERRORS as error:  # the server's error answers, and failing to reach it at all
        raise SpaceError(
            f"Could not read model repo {repo_id} from the Hub at {api.endpoint}: {_one_line(error)} (check the "
            "endpoint, --endpoint or HF_ENDPOINT, the network and the token)."
        ) from error
    if not config or config.get("model_type") != MultitaskConfig.model_type:
        raise SpaceError(
            f"{repo_id} is not a polyhead multitask model (its config.json has model_type "
            f"{(config or {}).get('model_type')!r}, not {MultitaskConfig.model_type!r})."
        )
    return ModelSource(repo_id, sha, repo_id, config_tasks(config), widget_texts, results)


def _one_line(error: BaseException) -> str:
    """A Hub error's message (several lines of URL, status and server text) on one line."""
    return " ".join(str(error).split())


def _download(api: HfApi, repo_id: str, name: str, revision: str, cache: str) -> Path | None:
    try:
        return Path(
            hf_hub_download(repo_id, name, revision=revision, cache_dir=cache, endpoint=api.endpoint, token=api.token)
        )
    except EntryNotFoundError:
        return None


def _read_json(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _widget_texts(readme: Path) -> list[str]:
    """The model card's widget example texts (the card's YAML `widget:` entries), or none."""
    if not readme.is_file():
        return []
    widget = ModelCard.load(readme).data.to_dict().get("widget") or []
    return [entry["text"] for entry in widget if isinstance(entry, Mapping) and isinstance(entry.get("text"), str)]


def metrics_table(results: Mapping[str, Any] | None) -> str:
    """One row per task: its primary metric on the evaluation split, next to the majority-class baseline."""
    if not results or not results.get("tasks"):
        return ""
    primary, majority = results.get("primary_metrics", {}), results.get("majority_baseline", {})
    rows = []
    for task, values in results["tasks"].items():
        metric = primary.get(task) or next(iter(values), None)
        if metric is None:
            continue
        name = METRIC_INFO.get(metric, (metric, None, metric))[2]
        rows.append(
            (f"`{task}`", name, format_value(values.get(metric)), format_value(majority.get(task, {}).get(metric)))
        )
    split = results.get("split")
    table = markdown_table(("Task", "Metric", "Value", "Majority-class baseline"), rows)
    return table + (f"\n\nScores on the `{split}` split." if split else "")


def installed_version(package: str) -> str:
    """The installed version of `package`, without a local tag (`2.13.0+cpu` -> `2.13.0`)."""
    try:
        return importlib.metadata.version(package).split("+")[0]
    except importlib.metadata.PackageNotFoundError as error:
        raise SpaceError(f"{package} is not installed: the Space pins its tested version ({EXTRA_HINT}).") from error


def requirements_text() -> str:
    """`requirements.txt`: what app.py imports besides gradio (the Space installs `sdk_version`), pinned."""
    return "".join(f"{package}=={installed_version(package)}\n" for package in PINNED_PACKAGES)


def space_card(source: ModelSource, settings: SpaceSettings, title: str, description: str) -> SpaceCard:
    """The Space's README: Hub metadata, then a few lines on what the page does."""
    data = SpaceCardData(
        title=title,
        sdk="gradio",
        sdk_version=installed_version("gradio"),
        python_version=PYTHON_VERSION,
        app_file=APP_FILE,
        license=settings.license,
        models=[source.repo_id] if source.repo_id else None,
        tags=["polyhead", "multitask", "text-classification"],
        emoji=settings.emoji,
        colorFrom="indigo",
        colorTo="blue",
        pinned=False,
        short_description=_shorten(description, SHORT_DESCRIPTION_LIMIT),
    )
    model = f"[{source.repo_id}](https://huggingface.co/{source.repo_id})" if source.repo_id else "a local model"
    pinned = f" at commit `{source.revision}`" if source.revision else ""
    body = (
        f"# {title}\n\n{description}\n\nA live demo of {model}{pinned}: type a text and every task answers, each as "
        "a label chart; a CSV file gets every row predicted. Written by polyhead's `scripts/make_space.py`; run it "
        f"locally with `pip install gradio=={data.sdk_version} -r requirements.txt && python app.py`.\n"
    )
    return SpaceCard(f"---\n{data.to_yaml()}\n---\n\n{body}")


def _shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def write_space(
    model: str | os.PathLike,
    out_dir: str | os.PathLike,
    settings: SpaceSettings | None = None,
    *,
    revision: str | None = None,
    repo_id: str | None = None,
    endpoint: str | None = None,
    token: str | None = None,
    overwrite: bool = False,
) -> Path:
    r"""
    Writes a Gradio Space for `model` (a polyhead model folder or Hub repo id) into `out_dir`.

    Args:
        model: a local model folder or a Hub repo id.
        out_dir: a new or empty folder (with `overwrite=True`, a folder holding an earlier Space).
        settings: title, emoji, description, examples (see [`SpaceSettings`]).
        revision: the Hub branch, tag or commit; pinned to its commit in the Space.
        repo_id: for a local folder, the Hub repo named in the Space metadata (`models:`).
        endpoint, token: another Hub-compatible server, a token.
        overwrite: replace the Space files of an earlier run in `out_dir`.

    Returns:
        `out_dir` as a `Path`.

    Example:

    ```python
    >>> write_space("org/tweets-multitask", "outputs/space")  # then: cd outputs/space && python app.py
    ```
    """
    out_dir = _check_out_dir(Path(out_dir), overwrite)
    source = read_model(model, revision=revision, repo_id=repo_id, endpoint=endpoint, token=token)
    if all(task["problem_type"] == MULTIPLE_CHOICE for task in source.tasks.values()):
        raise SpaceError(
            f"Every task of {model} is multiple-choice ({list(source.tasks)}): the Space's page answers texts and "
            "takes no answer choices, so it would have nothing to show. Run these tasks with the pipeline."
        )
    _write(source, out_dir, settings or SpaceSettings())
    if source.revision is None:  # a local folder: not uploaded with the Space, so a Hub Space would not find it
        logger.warning(
            f"The Space in {out_dir} loads the model from the local folder {source.model}: it runs only where that "
            "folder is (`python app.py` on this machine), not on the Hub after an upload. For a Space on the Hub, "
            f"make it from the model's Hub repo: `python scripts/make_space.py {source.repo_id or 'org/name'} DIR`."
        )
    return out_dir


def _write(source: ModelSource, out_dir: Path, settings: SpaceSettings) -> Path:
    title = settings.title or (source.repo_id or Path(source.model).name).split("/")[-1]
    description = settings.description or f"Multitask text classification: {', '.join(source.tasks)}."
    card = space_card(source, settings, title, description)
    config = {
        "model": source.model,
        "revision": source.revision,
        "local": Path(source.model).is_absolute(),  # a folder on this machine; a Hub repo id otherwise
        "repo_id": source.repo_id,  # the Hub repo a local-folder Space should be remade from, when known
        "title": title,
        "description": description,
        "examples": settings.examples if settings.examples is not None else source.widget_texts,
        "metrics_table": metrics_table(source.results),
    }
    requirements = requirements_text()
    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(APP_TEMPLATE, out_dir / APP_FILE)
    (out_dir / CONFIG_FILE).write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (out_dir / REQUIREMENTS_FILE).write_text(requirements, encoding="utf-8")
    card.save(out_dir / README_FILE)
    return out_dir


def _check_out_dir(out_dir: Path, overwrite: bool) -> Path:
    if out_dir.exists() and not out_dir.is_dir():
        raise SpaceError(f"{out_dir} is a file: give a new or empty folder for the Space.")
    if out_dir.is_dir():
        others = sorted(p.name for p in out_dir.iterdir() if p.name not in SPACE_FILES)
        if others:
            raise SpaceError(
                f"{out_dir} holds files that are not a Space's ({', '.join(others[:5])}): give a new folder."
            )
        if any(out_dir.iterdir()) and not overwrite:
            raise SpaceError(f"{out_dir} already holds a Space: pass --overwrite to replace it.")
    return out_dir


def publish_space(
    folder: str | os.PathLike,
    space_id: str,
    *,
    private: bool = False,
    token: str | None = None,
    endpoint: str | None = None,
    commit_message: str | None = None,
) -> tuple[str, str]:
    """Uploads the Space in `folder` (written by [`write_space`]) to `space_id` in one commit on `main`, creating
    the Space (Gradio SDK) when missing; returns `(commit oid, commit url)`."""
    check_space_id(space_id)
    folder = Path(folder)
    missing = [name for name in SPACE_FILES if not (folder / name).is_file()]
    if missing:
        raise SpaceError(f"{folder} is not a Space written by make_space.py: {', '.join(missing)} missing.")
    api = HfApi(endpoint=endpoint, token=token)
    operations = [CommitOperationAdd(name, folder / name) for name in SPACE_FILES]
    try:
        api.create_repo(space_id, repo_type="space", space_sdk="gradio", private=private, exist_ok=True)
        commit = api.create_commit(
            space_id, operations, repo_type="space", commit_message=commit_message or "Upload multitask model demo"
        )
    except (*HUB_ERRORS, RuntimeError) as error:  # RuntimeError: a failed upload, from huggingface_hub's workers
        raise SpaceError(f"Publishing the Space {space_id} to {api.endpoint} failed: {_one_line(error)}") from error
    return commit.oid, str(commit.commit_url)


def publish_model_space(
    folder: str | os.PathLike,
    space_id: str,
    model_repo_id: str,
    model_revision: str,
    settings: SpaceSettings | None = None,
    *,
    private: bool = False,
    token: str | None = None,
    endpoint: str | None = None,
) -> tuple[str, str]:
    """Writes the Space of a model folder just published to `model_repo_id` (pinned to `model_revision`, its commit)
    and uploads it to `space_id` in one commit; returns `(commit oid, commit url)` (see [`publish_space`]).

    The card's examples and metrics come from the local folder, which holds what was uploaded: no download."""
    check_space_id(space_id)
    source = dataclasses.replace(
        read_model(folder), model=model_repo_id, revision=model_revision, repo_id=model_repo_id
    )
    with tempfile.TemporaryDirectory(prefix="polyhead-space-") as tmp:
        _write(source, Path(tmp), settings or SpaceSettings())
        return publish_space(tmp, space_id, private=private, token=token, endpoint=endpoint)


__all__ = [
    "SPACE_FILES",
    "ModelSource",
    "SpaceError",
    "SpaceSettings",
    "check_repo_id",
    "check_space_id",
    "metrics_table",
    "publish_model_space",
    "publish_space",
    "read_model",
    "write_space",
]
