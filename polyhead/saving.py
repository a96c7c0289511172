"""Writing Hub-ready model folders atomically: a folder is either complete or untouched, never half-written."""

import os
import shutil
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from transformers import PreTrainedTokenizerBase

from polyhead.serving import SERVING_DIR, SERVING_FILES
from polyhead_remote.modeling_multitask import PIPELINE_FILE, MultitaskModel


REMOTE_CODE_FILES = ("configuration_multitask.py", "modeling_multitask.py", PIPELINE_FILE)


@contextmanager
def atomic_folder(folder: str | os.PathLike, overwrite: bool = False):
    """Yields a temporary sibling folder to fill; on success it replaces `folder`, on error it is removed.

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
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    backup = folder.with_name(f".{folder.name}.old")
    if folder.exists():
        shutil.rmtree(backup, ignore_errors=True)
        folder.rename(backup)
    tmp.rename(folder)
    shutil.rmtree(backup, ignore_errors=True)


def save_model_folder(
    model: MultitaskModel,
    tokenizer: PreTrainedTokenizerBase,
    folder: str | os.PathLike,
    overwrite: bool = False,
    extra: Callable[[Path], None] | None = None,
) -> Path:
    """Saves weights (safetensors), config with `auto_map`/`custom_pipelines`, remote code, tokenizer and the
    Inference Endpoints files (`handler.py`, `onnx_multitask.py`, `requirements.txt`).

    `extra(tmp_folder)` may add more files (results, plots, card) before the folder is moved into place.
    """
    with atomic_folder(folder, overwrite=overwrite) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        add_serving_files(tmp)
        check_model_folder(tmp)
        if extra is not None:
            extra(tmp)
    return Path(folder)


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
    required = ["config.json", "model.safetensors", *REMOTE_CODE_FILES]
    missing = [name for name in required if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{folder} is not a complete multitask model folder: missing {missing}.")
    pickled = sorted(p.name for p in folder.iterdir() if p.suffix in (".bin", ".pt", ".pth", ".pkl"))
    if pickled:
        raise ValueError(f"{folder} holds pickled files {pickled}: only safetensors weights are published.")
