"""The run-folder contract: the files a run writes next to the model, their names, and how they are written and read.

A model folder written by `polyhead.training.trainer.run` (and an evaluation folder written by
`polyhead.evaluation.scoring`) holds, besides the model itself (`polyhead.saving`):

- `results.json` ([`RESULTS_FILE`]): the scores, schema in `polyhead.evaluation.scoring`;
- `training_args.json` ([`TRAINING_ARGS_FILE`]): what the run was given and did, schema in `polyhead.training.trainer`;
- `baselines/results.json` ([`BASELINE_RESULTS_FILE`]): the single-task baselines' scores, same schema as
  `results.json` (the baselines themselves train under `<output_dir>/baselines/<task>/`, [`BASELINES_DIR`]);
- per task, `classification_report_<task>.txt`, `confusion_matrix_<task>.png` and `confusion_matrix_<task>.csv`
  ([`classification_report_file`], [`confusion_matrix_image`], [`confusion_matrix_counts`]);
- `README.md` ([`README_FILE`]): the model card (`polyhead.publishing.model_card`).

The model's weights are its top-level `*.safetensors` files ([`WEIGHTS_PATTERN`]); [`weights_sha256`] fingerprints
them, and an evaluation records the fingerprint of the weights it scored in its `results.json` ([`WEIGHTS_SHA256`]),
so that publishing can refuse the evaluation of other weights.

Evaluation, training, the model card, publishing, the demo, the benchmark and the scripts read and write these files
through this module only, so the names are spelled once. It also checks what a script is given as a model folder
([`check_model_source`]: a run's folder is `<output_dir>/model`, [`MODEL_DIR`]) or as a folder to write into
([`check_output_folder`]).
"""

import hashlib
import json
import os
import struct
from collections.abc import Callable, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id
from transformers.tokenization_utils_base import TOKENIZER_CONFIG_FILE

from polyhead.remote_code import MultitaskConfig


MODEL_DIR = "model"  # a training run's model folder: <output_dir>/model
README_FILE = "README.md"
RESULTS_FILE = "results.json"
TRAINING_ARGS_FILE = "training_args.json"
BASELINES_DIR = "baselines"
BASELINE_RESULTS_FILE = f"{BASELINES_DIR}/{RESULTS_FILE}"
WEIGHTS_PATTERN = "*.safetensors"  # the model's weights: every such file at the top of the folder (shards included)
WEIGHTS_SHA256 = "weights_sha256"
"""The `results.json` key under which an evaluation records the [`weights_sha256`] of the weights it scored."""


def check_output_folder(folder: str | os.PathLike, option: str = "output_dir") -> None:
    """Raises a `ValueError` when `folder`, or a folder above it, is an existing file (nothing can be written)."""
    path = Path(folder)
    for part in (path, *path.parents):
        if part.exists() and not part.is_dir():
            raise ValueError(f"{option} {str(folder)!r}: {part} is a file, not a folder; give a folder path.")


def is_multitask_folder(path: str | os.PathLike) -> bool:
    """Whether `path` is a local folder whose `config.json` is a polyhead multitask config."""
    config = Path(path) / "config.json"
    try:
        return json.loads(config.read_text(encoding="utf-8")).get("model_type") == MultitaskConfig.model_type
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        return False


def run_model_folder(path: str | os.PathLike) -> Path | None:
    """The model folder of the training run folder `path` (`<path>/model`, [`MODEL_DIR`]), or `None` when `path` is
    not one: what to point at when a run's folder is given where its model is wanted."""
    model = Path(path) / MODEL_DIR
    return model if is_multitask_folder(model) else None


def check_model_source(model: str | os.PathLike, hub_ids: bool = True) -> None:
    """Raises a `ValueError` naming the problem and the fix unless `model` is a local multitask model folder or, with
    `hub_ids`, a name that no local path holds and that can be a Hub id (left to `from_pretrained`)."""
    path = Path(model)
    wanted = f"a multitask model folder written by scripts/train.py (<output_dir>/{MODEL_DIR})"
    if not path.exists():
        if hub_ids and repo_id_problem(str(model)) is None:
            return
        raise ValueError(f"{model}: no such folder; give {wanted}{' or a Hub model id' if hub_ids else ''}.")
    if not path.is_dir():
        raise ValueError(f"{model} is a file; give {wanted}.")
    if not is_multitask_folder(path):
        if (inside := run_model_folder(path)) is not None:
            raise ValueError(f"{model} is a training run's folder; its model is {inside}: give that.")
        raise ValueError(
            f"{model} is not a polyhead multitask model folder (its config.json is missing or is not a "
            f"'{MultitaskConfig.model_type}' config); give {wanted}."
        )
    if not (path / TOKENIZER_CONFIG_FILE).is_file():  # transformers would build an empty tokenizer and carry on
        raise ValueError(
            f"{model} holds no tokenizer ({TOKENIZER_CONFIG_FILE} is missing): copy in the tokenizer files the model "
            "was trained with, or save the folder again with its tokenizer."
        )


@contextmanager
def model_loading(model: str | os.PathLike):
    """Around `from_pretrained(model)`: when `model` is no local path, the `OSError` of loading it from the Hub (no
    such repository, no connection) becomes a `ValueError` that names it as both."""
    try:
        yield
    except OSError as error:
        if Path(model).exists():
            raise
        reason = " ".join(str(error).split())  # huggingface_hub's messages span lines: one line for the CLI error
        raise ValueError(f"{model}: no such local folder, and it did not load as a Hub model id: {reason}") from error


def repo_id_problem(repo_id: str) -> str | None:
    """Why `repo_id` is not a valid Hub repo id (`huggingface_hub`'s own check, which needs no network), or
    `None`: checked before anything is loaded or uploaded, so a malformed id never fails halfway through."""
    try:
        validate_repo_id(repo_id)
    except HFValidationError as error:  # its message ends with the id, and may name an argument of its own
        text = " ".join(str(error).replace("Use `repo_type` argument if needed.", "").split())
        return text.removesuffix(f": '{repo_id}'.").removesuffix(f": {repo_id!r}.").rstrip(".")
    return None


def classification_report_file(task: str) -> str:
    """`classification_report_<task>.txt`: scikit-learn's per-label report of one task."""
    return f"classification_report_{task}.txt"


def confusion_matrix_image(task: str) -> str:
    """`confusion_matrix_<task>.png`: the confusion-matrix plot of one task (shown in the model card)."""
    return f"confusion_matrix_{task}.png"


def confusion_matrix_counts(task: str) -> str:
    """`confusion_matrix_<task>.csv`: the full confusion counts of one task."""
    return f"confusion_matrix_{task}.csv"


REPORT_PATTERNS = (confusion_matrix_image("*"), confusion_matrix_counts("*"), classification_report_file("*"))
"""Glob patterns of the per-task report files."""
RUN_FILE_PATTERNS = (README_FILE, RESULTS_FILE, TRAINING_ARGS_FILE, BASELINE_RESULTS_FILE, *REPORT_PATTERNS)
"""Glob patterns (relative to the model folder) of every run file that is published with the model."""


def evaluation_dir(model_dir: str | os.PathLike, split: str) -> Path:
    """Where `scripts/evaluate_model.py` writes by default: `<model_dir>/eval-<split>`."""
    return Path(model_dir) / f"eval-{split}"


def write_json(path: str | os.PathLike, data: Any, default: Callable[[Any], Any] | None = None) -> Path:
    """Writes `data` as indented JSON with a final newline (parent folders created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=default) + "\n", encoding="utf-8")
    return path


def read_json(path: str | os.PathLike) -> Any:
    """The parsed JSON file at `path`, or `None` when there is no such file."""
    path = Path(path)
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def write_results(results: Mapping[str, Any], folder: str | os.PathLike, name: str = RESULTS_FILE) -> Path:
    """Writes a results dict to `<folder>/results.json` (or `<folder>/<name>`)."""
    return write_json(Path(folder) / name, results)


def model_file(source: str | os.PathLike, name: str, revision: str | None = None) -> Path | None:
    """The file `name` of a model: in a local folder, or of a Hub model id (at `revision`) through the Hub cache
    (downloaded unless offline); `None` when it has none (or the Hub cannot be reached): a published model's
    `training_args.json` and `results.json` are read as its folder's are."""
    if Path(source).is_dir() or repo_id_problem(str(source)) is not None:
        path = Path(source) / name
        return path if path.is_file() else None
    from transformers.utils import cached_file

    try:
        found = cached_file(
            str(source),
            name,
            revision=revision,
            _raise_exceptions_for_missing_entries=False,
            _raise_exceptions_for_connection_errors=False,
        )
    except (OSError, ValueError):  # no such repo or revision: named where the model itself is loaded
        return None
    return Path(found) if found else None


def read_results(folder: str | os.PathLike, revision: str | None = None) -> dict[str, Any] | None:
    """`<folder>/results.json` (of a local folder or a Hub model id, [`model_file`]), or `None` when absent."""
    path = model_file(folder, RESULTS_FILE, revision)
    return read_json(path) if path else None


def write_training_args(info: Mapping[str, Any], folder: str | os.PathLike) -> Path:
    """Writes `<folder>/training_args.json` (values JSON cannot hold, such as enums and paths, as strings)."""
    return write_json(Path(folder) / TRAINING_ARGS_FILE, info, default=str)


def read_training_args(folder: str | os.PathLike, revision: str | None = None) -> dict[str, Any] | None:
    """`<folder>/training_args.json` (of a local folder or a Hub model id, [`model_file`]), or `None` when absent."""
    path = model_file(folder, TRAINING_ARGS_FILE, revision)
    return read_json(path) if path else None


def write_baseline_results(results: Mapping[str, Any], folder: str | os.PathLike) -> Path:
    """Writes the single-task baselines' results to `<folder>/baselines/results.json`."""
    return write_json(Path(folder) / BASELINE_RESULTS_FILE, results)


def read_baseline_results(folder: str | os.PathLike) -> dict[str, Any] | None:
    """`<folder>/baselines/results.json`, or `None` when absent."""
    return read_json(Path(folder) / BASELINE_RESULTS_FILE)


def confusion_matrix_images(folder: str | os.PathLike) -> list[str]:
    """The names of the `confusion_matrix_<task>.png` files in `folder`, sorted."""
    return sorted(path.name for path in Path(folder).glob(confusion_matrix_image("*")))


def check_weights_file(path: str | os.PathLike) -> dict[str, list[int]]:
    r"""
    Raises a `ValueError` naming `path` unless it is a complete safetensors file (an empty, truncated or padded file
    is refused); returns `{tensor name: shape}` from its header.

    Example:

    ```python
    >>> check_weights_file("outputs/model/model.safetensors")["heads.topic.weight"]
    [5, 384]
    ```
    """
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        raise ValueError(f"{path} is empty (0 bytes): the weights were not written. Save or download it again.")
    with open(path, "rb") as f:
        prefix = f.read(8)
        header_size = struct.unpack("<Q", prefix)[0] if len(prefix) == 8 else size
        if 8 + header_size > size:
            raise ValueError(f"{path} is truncated ({size} bytes): not even its safetensors header is complete.")
        try:
            header = json.loads(f.read(header_size))
            tensors = {name: info for name, info in header.items() if name != "__metadata__"}
            expected = 8 + header_size + max((info["data_offsets"][1] for info in tensors.values()), default=0)
        except (UnicodeDecodeError, json.JSONDecodeError, AttributeError, KeyError, TypeError, IndexError) as error:
            raise ValueError(f"{path} is not a safetensors file (its header does not parse: {error}).") from None
    if size != expected:
        state = "truncated" if size < expected else "longer than its header says"
        raise ValueError(f"{path} is {state}: {size} bytes where its safetensors header describes {expected}.")
    return {name: list(info.get("shape", [])) for name, info in tensors.items()}


def check_model_weights(folder: str | os.PathLike) -> dict[str, list[int]]:
    """Checks every `*.safetensors` file at the top of `folder` with [`check_weights_file`]; returns all their
    `{tensor name: shape}`."""
    shapes = {}
    for path in sorted(Path(folder).glob(WEIGHTS_PATTERN)):
        shapes.update(check_weights_file(path))
    return shapes


def weights_sha256(folder: str | os.PathLike) -> str | None:
    r"""
    The fingerprint of the model weights in `folder`: the SHA-256 of its `*.safetensors` files ([`WEIGHTS_PATTERN`],
    top level) read one after the other in name order, so for a single weights file it is what `sha256sum` prints;
    `None` when the folder holds none. Links are followed (a Hub cache snapshot links to its blobs). Hashing reads
    the files once (well under a second for 90 MB).

    Example:

    ```python
    >>> weights_sha256("outputs/model")  # == sha256sum outputs/model/model.safetensors
    '9f2c...'
    ```
    """
    paths = sorted(path for path in Path(folder).glob(WEIGHTS_PATTERN) if path.is_file())
    if not paths:
        return None
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


__all__ = [
    "check_model_weights",
    "check_weights_file",
    "BASELINES_DIR",
    "MODEL_DIR",
    "BASELINE_RESULTS_FILE",
    "README_FILE",
    "REPORT_PATTERNS",
    "RESULTS_FILE",
    "RUN_FILE_PATTERNS",
    "TRAINING_ARGS_FILE",
    "WEIGHTS_PATTERN",
    "WEIGHTS_SHA256",
    "check_model_source",
    "check_output_folder",
    "classification_report_file",
    "confusion_matrix_counts",
    "confusion_matrix_image",
    "confusion_matrix_images",
    "evaluation_dir",
    "is_multitask_folder",
    "model_loading",
    "read_baseline_results",
    "read_json",
    "model_file",
    "read_results",
    "read_training_args",
    "repo_id_problem",
    "run_model_folder",
    "write_baseline_results",
    "write_json",
    "write_results",
    "weights_sha256",
    "write_training_args",
]
