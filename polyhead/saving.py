"""Writing Hub-ready model folders atomically: a folder is either complete or untouched, never half-written."""

import os
import shutil
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from transformers import PreTrainedTokenizerBase

from polyhead_remote.modeling_multitask import PIPELINE_FILE, MultitaskModel


REMOTE_CODE_FILES = ("configuration_multitask.py", "modeling_multitask.py", PIPELINE_FILE)


@contextmanager
def atomic_folder(folder: str | os.PathLike, overwrite: bool = False):
    """Yields a temporary sibling folder to fill; on success it replaces `folder`, on error it is removed.

    The folder and its files get the modes the umask gives plain writes (see [`apply_umask`]).

    Example:

    ```python
    >>> with atomic_folder("outputs/model", overwrite=True) as tmp:
    ...     model.save_pretrained(tmp)
    ```
    """
    folder = Path(folder)
    if folder.exists() and not overwrite:
        raise FileExistsError(f"{folder} already exists; pass overwrite=True to replace it.")
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
    try:
        yield tmp
        apply_umask(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    backup = folder.with_name(f".{folder.name}.old")
    if folder.exists():
        shutil.rmtree(backup, ignore_errors=True)
        folder.rename(backup)
    tmp.rename(folder)
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
) -> Path:
    """Saves weights (safetensors), config with `auto_map`/`custom_pipelines`, remote code and tokenizer.

    `extra(tmp_folder)` may add more files (results, plots, card) before the folder is moved into place.
    """
    # transformers < 4.54 gives a custom pipeline a tokenizer only when the config names a tokenizer class.
    model.config.tokenizer_class = type(tokenizer).__name__
    with atomic_folder(folder, overwrite=overwrite) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        check_model_folder(tmp)
        if extra is not None:
            extra(tmp)
    return Path(folder)


def check_model_folder(folder: str | os.PathLike) -> None:
    """Raises if a model folder lacks what `trust_remote_code` loading needs, or holds pickled weights."""
    folder = Path(folder)
    required = ["config.json", "model.safetensors", *REMOTE_CODE_FILES]
    missing = [name for name in required if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{folder} is not a complete multitask model folder: missing {missing}.")
    pickled = sorted(p.name for p in folder.iterdir() if p.suffix in (".bin", ".pt", ".pth", ".pkl"))
    if pickled:
        raise ValueError(f"{folder} holds pickled files {pickled}: only safetensors weights are published.")
