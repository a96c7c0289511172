"""Tiny random encoders, tokenizers and multitask configs for tests (offline, seconds).

The tiny encoder and tokenizer are the library's tiny preset (`polyhead.presets`), re-exported here; this module adds
what only tests use. Library modules do not import it.
"""

from polyhead.presets import (  # noqa: F401 (re-exported: tests import them from here)
    ENCODER_FAMILIES,
    SPECIAL_TOKENS,
    WORDS,
    tiny_encoder_config,
    tiny_tokenizer,
)
from polyhead.remote_code import MULTI_LABEL, MultitaskConfig


TINY_TASKS = {
    "sentiment": {"labels": ["negative", "positive"]},
    "topic": {"labels": ["movies", "tech", "sport", "money"]},
    "emotions": {
        "labels": ["anger", "fear", "joy", "sadness"],
        "problem_type": MULTI_LABEL,
        "threshold": 0.4,
    },
}

# An NLI task (sentence pairs; zero-shot classification runs through it) beside a single-text task.
TINY_NLI_TASKS = {
    "nli": {"labels": ["entailment", "neutral", "contradiction"], "text_pair": True},
    "topic": {"labels": ["movies", "tech", "sport", "money"]},
}


def tiny_multitask_config(family: str = "bert", tasks: dict | None = None, **kwargs) -> MultitaskConfig:
    """A `MultitaskConfig` over a tiny encoder with `TINY_TASKS` (binary, 4-way, 4-label multi-label)."""
    return MultitaskConfig(encoder=tiny_encoder_config(family), tasks=tasks or TINY_TASKS, **kwargs)
