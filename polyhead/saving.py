"""Writing Hub-ready model folders atomically, and checking model folders and weights files before they are used.

A folder written by [`atomic_folder`] is either complete or untouched, never half-written, and writing never removes
anything but an earlier model folder written by polyhead: a folder with other content, a Trainer checkpoint, the
current directory or one of its parents, the home directory and the filesystem root are refused.
"""

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from transformers import AutoTokenizer, PreTrainedTokenizerBase
from transformers.dynamic_module_utils import get_relative_imports
from transformers.tokenization_utils_base import TOKENIZER_CONFIG_FILE

from polyhead.remote_code import (
    HUB_MODULES,
    MultitaskConfig,
    MultitaskModel,
    check_loading_info,
    check_tokenizer,
    pipeline_module,
)
from polyhead.run_folder import check_model_weights, check_output_folder
from polyhead.serving import SERVING_DIR, SERVING_FILES


# The Hub files, copied flat into every model folder (and so into every Hub upload).
REMOTE_CODE_SOURCES = tuple(Path(module.__file__) for module in HUB_MODULES)
REMOTE_CODE_FILES = tuple(path.name for path in REMOTE_CODE_SOURCES)
AUTO_MAP = {"AutoConfig": "configuration_multitask.MultitaskConfig", "AutoModel": "modeling_multitask.MultitaskModel"}
# What transformers loads first (`auto_map` and config.json's `custom_pipelines`); it fetches what they import.
ENTRY_FILES = (*(f"{ref.split('.')[0]}.py" for ref in AUTO_MAP.values()), Path(pipeline_module.__file__).name)
CHECKPOINT_MARKER = "trainer_state.json"  # what transformers' Trainer writes into every checkpoint folder


class UnsafeFolderError(ValueError):
    """Writing a model folder here could destroy files that are not a polyhead model folder: nothing was written."""


class UnsavableModelError(ValueError):
    """The model would be written but could not serve (non-finite weights, a config that does not load): nothing was
    written."""


def check_savable(model: MultitaskModel) -> None:
    """Raises an [`UnsavableModelError`] for weights that hold NaN or infinite values (a training run that diverged)
    or a config that its own checks refuse when it is loaded (as a Hub user's load runs them)."""
    import torch

    broken = [
        name
        for name, tensor in model.state_dict().items()
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())
    ]
    if broken:
        raise UnsavableModelError(
            f"The model's weights hold NaN or infinite values ({len(broken)} tensor(s), e.g. {broken[:3]}): training "
            "diverged, and nothing was written. Lower the learning rate (--learning_rate, --head_learning_rate) or "
            "the distillation temperature, or check the data's labels and loss weights."
        )
    try:
        type(model.config).from_dict(model.config.to_dict())
    except ValueError as error:
        raise UnsavableModelError(f"The model's config would not load ({error}): nothing was written.") from error


def check_export_target(out_dir: str | os.PathLike, source: str | os.PathLike | None = None) -> None:
    """Raises a `FileExistsError` when `out_dir` exists and is not an empty folder (nothing is ever overwritten), and a
    `ValueError` when a file stands where it or a folder above it should be, or when it lies inside the folder
    `source` being exported (the export would become part of its source: published or copied with it)."""
    path = Path(out_dir)
    check_output_folder(path, "out_dir")  # a file where a folder on the way should be
    if source is not None and Path(source).resolve() in path.resolve().parents:
        raise ValueError(
            f"{out_dir} is inside the model folder {source} it is exported from: give a folder outside it "
            "(nothing was written)."
        )
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise FileExistsError(
            f"{out_dir} already exists and is not an empty folder: give a new or empty folder (nothing was written)."
        )


def is_polyhead_model_folder(folder: str | os.PathLike) -> bool:
    """Whether `folder` is a model folder written by polyhead (a multitask `config.json` next to the remote code) and
    not a Trainer checkpoint."""
    folder = Path(folder)
    if not (folder / "config.json").is_file() or missing_remote_code(folder):
        return False
    if (folder / CHECKPOINT_MARKER).exists():
        return False
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(config, dict) and config.get("model_type") == MultitaskConfig.model_type


def missing_remote_code(folder: str | os.PathLike) -> list[str]:
    """The Hub files `folder` lacks: the `ENTRY_FILES` and every file their code imports, as transformers finds them.

    A folder saved by an earlier polyhead holds fewer files than `REMOTE_CODE_FILES`; it is complete when its own
    code finds everything it imports."""
    folder = Path(folder)
    missing, seen, pending = [], set(), list(ENTRY_FILES)
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        if (folder / name).is_file():
            pending += [f"{module}.py" for module in get_relative_imports(folder / name)]
        else:
            missing.append(name)
    return sorted(missing)


def check_target_folder(folder: str | os.PathLike, overwrite: bool = False) -> Path:
    r"""
    Raises unless [`atomic_folder`] may write `folder`: it must be a new or empty folder, or (with `overwrite=True`)
    a model folder written by polyhead. Returns `folder` as a `Path`.

    Raises:
        `UnsafeFolderError`: `folder` is the current directory or a parent of it, the home directory, the filesystem
            root, a symbolic link, a file, a Trainer checkpoint or holds one, or a non-empty folder that polyhead did
            not write.
        `FileExistsError`: `folder` is a polyhead model folder and `overwrite` is `False`.

    Example:

    ```python
    >>> check_target_folder(".", overwrite=True)
    Traceback (most recent call last):
    polyhead.saving.UnsafeFolderError: Refusing to write a model folder at '.': it is the current directory ...
    ```
    """
    path = Path(folder)
    resolved = path.resolve()
    cwd = Path.cwd().resolve()
    if path.name in ("", ".", "..") or resolved == cwd or resolved in cwd.parents:
        raise UnsafeFolderError(_refusal(folder, "it is the current directory or one of its parents"))
    if resolved == Path.home().resolve() or resolved.parent == resolved:
        raise UnsafeFolderError(_refusal(folder, "it is the home directory or the filesystem root"))
    if path.is_symlink():
        raise UnsafeFolderError(_refusal(folder, f"it is a symbolic link (to {os.readlink(path)})"))
    if not path.exists():
        return path
    if not path.is_dir():
        raise UnsafeFolderError(_refusal(folder, "it is a file"))
    if not any(path.iterdir()):
        return path
    checkpoint = next(
        (p.parent for p in (path / CHECKPOINT_MARKER, *path.glob(f"*/{CHECKPOINT_MARKER}")) if p.exists()), None
    )
    if checkpoint is not None:
        raise UnsafeFolderError(_refusal(folder, f"{checkpoint} is a Trainer checkpoint ({CHECKPOINT_MARKER})"))
    if not is_polyhead_model_folder(path):
        raise UnsafeFolderError(
            _refusal(
                folder, "it is not empty and is not a model folder written by polyhead (nothing there is removed)"
            )
        )
    if not overwrite:
        raise FileExistsError(f"{folder} already holds a model folder; pass overwrite=True to replace it.")
    return path


def _refusal(folder: str | os.PathLike, reason: str) -> str:
    return (
        f"Refusing to write a model folder at {str(folder)!r}: {reason}. A model folder replaces its target as a "
        "whole: give a new or empty folder, or an earlier polyhead model folder."
    )


@contextmanager
def atomic_folder(folder: str | os.PathLike, overwrite: bool = False):
    r"""
    Yields a temporary sibling folder to fill; on success it replaces `folder`, on error it is removed.

    Only a new or empty folder, or with `overwrite=True` an earlier polyhead model folder, is replaced (see
    [`check_target_folder`], run both before and after filling). The old folder is moved aside, the new one moved in,
    then the old one deleted: a process killed between the two moves leaves the old folder as `.<name>.*.old` next
    to it, and one killed while filling leaves a `.<name>.*.tmp` folder; neither is ever a half-written `folder`.

    The folder and its files get the modes the umask gives plain writes (see [`apply_umask`]).

    Example:

    ```python
    >>> with atomic_folder("outputs/model", overwrite=True) as tmp:
    ...     model.save_pretrained(tmp)
    ```
    """
    folder = check_target_folder(folder, overwrite)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
    try:
        yield tmp
        apply_umask(tmp)
        check_target_folder(folder, overwrite)  # it may have changed while we were writing
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if not folder.exists():
        tmp.rename(folder)
        return
    # An empty directory is a valid rename target on POSIX: the old folder moves onto a fresh unique name.
    backup = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".old", dir=folder.parent))
    folder.rename(backup)
    try:
        tmp.rename(folder)
    except BaseException:
        backup.rename(folder)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(backup, ignore_errors=True)


def current_umask() -> int:
    """The process umask (read without changing it where `/proc` allows)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)  # no way to read it without setting it elsewhere; restored at once
    os.umask(mask)
    return mask


def apply_umask(folder: str | os.PathLike) -> None:
    """Gives `folder`, its subfolders and files the modes a plain write would (0755 / 0644 under umask 022).

    `mkdtemp` makes the folder 0700 and atomic file writes (`mkstemp`, as some savers use) 0600: a model folder
    copied to a shared server or read by a container running as another user would be unreadable."""
    mask = current_umask()
    os.chmod(folder, 0o777 & ~mask)
    for root, dirs, files in os.walk(folder):
        for name in dirs:
            if not os.path.islink(os.path.join(root, name)):
                os.chmod(os.path.join(root, name), 0o777 & ~mask)
        for name in files:
            path = os.path.join(root, name)
            if os.path.islink(path):
                continue  # chmod would change the link's target
            executable = os.stat(path).st_mode & 0o100
            os.chmod(path, (0o777 if executable else 0o666) & ~mask)


def save_model_folder(
    model: MultitaskModel,
    tokenizer: PreTrainedTokenizerBase,
    folder: str | os.PathLike,
    overwrite: bool = False,
    extra: Callable[[Path], None] | None = None,
    max_length: int | None = None,
) -> Path:
    """Saves weights (safetensors), config with `auto_map`/`custom_pipelines`, remote code, tokenizer and the
    Inference Endpoints files (`handler.py`, `onnx_multitask.py`, `requirements.txt`).

    `max_length`, the length the model was trained at, is saved as the tokenizer's `model_max_length`: the default
    truncation of the pipeline, the handler, bulk prediction and evaluation (`polyhead.encoders.default_max_length`).

    `extra(tmp_folder)` may add more files (results, plots, card) before the folder is moved into place. `overwrite`
    replaces an earlier polyhead model folder only (see [`atomic_folder`]).
    """
    # The one place the tokenizer's class is named (see `leave_tokenizer_class_to_config`); transformers < 4.54 also
    # gives a custom pipeline a tokenizer only when the config names one.
    model.config.tokenizer_class = type(tokenizer).__name__
    check_savable(model)
    with atomic_folder(folder, overwrite=overwrite) as tmp:
        save_with_remote_code(model, tmp)
        save_tokenizer(tokenizer, tmp, max_length)
        leave_tokenizer_class_to_config(tmp)
        add_serving_files(tmp)
        check_model_folder(tmp)
        if extra is not None:
            extra(tmp)
    return Path(folder)


def save_with_remote_code(model: MultitaskModel, folder: str | os.PathLike) -> None:
    """`model.save_pretrained(folder)` with `auto_map` in `config.json` and the Hub files (`REMOTE_CODE_FILES`) copied
    flat beside it, as a Hub repo holds them (what `trust_remote_code=True` loading needs)."""
    had_auto_map = "auto_map" in model.config.__dict__
    model.config.auto_map = dict(AUTO_MAP)
    try:
        model.save_pretrained(folder)
    finally:
        if not had_auto_map:
            del model.config.auto_map
    for source in REMOTE_CODE_SOURCES:
        shutil.copyfile(source, Path(folder) / source.name)


def save_tokenizer(
    tokenizer: PreTrainedTokenizerBase, folder: str | os.PathLike, max_length: int | None = None
) -> None:
    """`tokenizer.save_pretrained(folder)`, with the tokenizer's `model_input_names` written into
    `tokenizer_config.json` (unless already there), and `max_length` (when given) as its `model_max_length`.

    transformers 5.0 loads a tokenizer saved by later 5.x releases as a generic `TokenizersBackend` whose default
    inputs leave out `token_type_ids`: for a sentence pair, a BERT-style encoder then reads the second text as part of
    the first segment, and pair tasks and zero-shot answer differently there than on every other release. With the
    names pinned it returns them (tested on transformers 4.51.3, 4.57.6 and 5.0.0)."""
    tokenizer.save_pretrained(folder)
    pin_tokenizer_inputs(folder, tokenizer)
    if max_length is not None:
        path = Path(folder) / "tokenizer_config.json"
        config = json.loads(path.read_text(encoding="utf-8"))
        config["model_max_length"] = max_length
        path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def pin_tokenizer_inputs(folder: str | os.PathLike, tokenizer: PreTrainedTokenizerBase | None = None) -> None:
    """Writes `model_input_names` into `folder/tokenizer_config.json` if it lacks them (see [`save_tokenizer`]),
    from `tokenizer` or else the folder's own tokenizer."""
    path = Path(folder) / "tokenizer_config.json"
    if not path.is_file():
        return
    config = json.loads(path.read_text(encoding="utf-8"))
    if "model_input_names" in config:
        return
    tokenizer = tokenizer or AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
    config["model_input_names"] = list(tokenizer.model_input_names)
    path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def leave_tokenizer_class_to_config(folder: str | os.PathLike) -> None:
    """Removes `tokenizer_class` from `folder/tokenizer_config.json` where `config.json` names the same class, so that
    every release reads the class from `config.json`.

    transformers 5.0 loads a tokenizer whose `tokenizer_config.json` names a class other than its model type's (a
    multitask config has none) as a generic `TokenizersBackend`, and a user's `save_pretrained` then writes that name,
    which transformers 4.x cannot load. Without a class in `tokenizer_config.json`, 4.51.3, 4.57.6, 5.0.0 and the
    newest release all load the class `config.json` names (`tests/test_cross_version.py`)."""
    path = Path(folder) / TOKENIZER_CONFIG_FILE
    config = json.loads(path.read_text(encoding="utf-8"))
    named = json.loads((Path(folder) / "config.json").read_text(encoding="utf-8")).get("tokenizer_class")
    saved = config.get("tokenizer_class")
    if named and saved and saved.removesuffix("Fast") == named.removesuffix("Fast"):
        del config["tokenizer_class"]
        path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def add_serving_files(folder: str | os.PathLike, overwrite: bool = True) -> list[str]:
    """Copies `handler.py` (Inference Endpoints), `onnx_multitask.py` (its ONNX model) and `requirements.txt` into
    `folder`; with `overwrite=False` only the missing ones. Returns the names copied."""
    copied = []
    for name in SERVING_FILES:
        target = Path(folder) / name
        if overwrite or not target.exists():
            shutil.copy(SERVING_DIR / name, target)
            copied.append(name)
    return copied


def check_model_folder(folder: str | os.PathLike) -> None:
    """Raises if a model folder lacks what `trust_remote_code` loading needs, or holds pickled weights."""
    folder = Path(folder)
    missing = [
        name for name in ("config.json", "model.safetensors", TOKENIZER_CONFIG_FILE) if not (folder / name).is_file()
    ]
    missing += missing_remote_code(folder)
    if missing:
        raise FileNotFoundError(f"{folder} is not a complete multitask model folder: missing {missing}.")
    pickled = sorted(p.name for p in folder.iterdir() if p.suffix in (".bin", ".pt", ".pth", ".pkl"))
    if pickled:
        raise ValueError(f"{folder} holds pickled files {pickled}: only safetensors weights are published.")


def check_weights_match_config(folder: str | os.PathLike) -> None:
    """Raises a `ValueError` when the weights of `folder` disagree with its `config.json`: the check the Hub code runs
    at load (`check_loading_info`), on the tensors of the safetensors headers against a model built from the config
    on the meta device (nothing is allocated)."""
    import torch

    folder = Path(folder)
    saved = check_model_weights(folder)
    config = MultitaskConfig.from_pretrained(folder)
    with torch.device("meta"):
        expected = {name: list(tensor.shape) for name, tensor in MultitaskModel(config).state_dict().items()}
    info = {
        "missing_keys": expected.keys() - saved.keys(),
        "unexpected_keys": saved.keys() - expected.keys(),
        "mismatched_keys": [
            (n, saved[n], expected[n]) for n in saved.keys() & expected.keys() if saved[n] != expected[n]
        ],
    }
    try:
        check_loading_info(info, config.task_names)
    except ValueError as error:
        raise ValueError(f"{folder}: {error}") from error


def verify_model_folder(folder: str | os.PathLike) -> None:
    r"""
    Checks that `folder` is a complete polyhead model folder that loads as a Hub user will load it: the files are
    there ([`check_model_folder`]), every weights file is complete ([`check_weights_file`]) and matches `config.json`
    ([`check_weights_match_config`]: every head has weights of the config's shape), and
    `AutoModel.from_pretrained(folder, trust_remote_code=True)` (the folder's own code) and `AutoTokenizer` load it.
    Raises a `ValueError` (or `FileNotFoundError`) that names the problem.

    Example:

    ```python
    >>> verify_model_folder("outputs/model")
    ```
    """
    from transformers import AutoModel, AutoTokenizer

    folder = Path(folder)
    check_model_folder(folder)
    if not is_polyhead_model_folder(folder):
        raise ValueError(f"{folder / 'config.json'} is not a polyhead multitask config (model_type 'multitask').")
    check_weights_match_config(folder)
    try:
        model = AutoModel.from_pretrained(folder, trust_remote_code=True)
        tokenizer = AutoTokenizer.from_pretrained(folder)
    except (OSError, ValueError, RuntimeError, KeyError, TypeError) as error:
        raise ValueError(f"The model folder {folder} does not load: {type(error).__name__}: {error}") from error
    check_tokenizer(tokenizer, model.config.encoder.vocab_size, str(folder))  # the pipeline's check, before upload
