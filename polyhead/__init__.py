"""polyhead: multitask text classification for the Hugging Face ecosystem.

One shared transformer encoder, one classification head per task, every task answered by one forward pass and one
pipeline call. The model, config and pipeline classes are the flat files that Hub users execute with
`trust_remote_code=True`; importing this package also registers them with transformers' Auto classes and pipeline
registry, so `AutoModel.from_pretrained(folder)` and `pipeline("multitask-classification", ...)` work locally without
remote code.
"""

from transformers import AutoConfig, AutoModel

from polyhead.remote_code import (
    MultitaskClassificationPipeline,
    MultitaskConfig,
    MultitaskModel,
    MultitaskOutput,
    register_pipeline,
)


__version__ = "0.1.0"


def register_auto_classes() -> None:
    """Registers the config, model and pipeline with transformers (idempotent)."""
    AutoConfig.register(MultitaskConfig.model_type, MultitaskConfig, exist_ok=True)
    AutoModel.register(MultitaskConfig, MultitaskModel, exist_ok=True)
    register_pipeline()


register_auto_classes()

__all__ = [
    "MultitaskClassificationPipeline",
    "MultitaskConfig",
    "MultitaskModel",
    "MultitaskOutput",
    "register_auto_classes",
]
