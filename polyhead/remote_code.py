"""The one place the library imports the Hub files (the remote code Hub users run with `trust_remote_code`).

In the source tree they sit as in a Hub repo: the config and model files at the top (`configuration_multitask.py`,
`modeling_multitask.py` and their `*_checks.py` / `*_heads.py` siblings), the pipeline files in `pipelines/`; a
model folder holds them all flat. Installing the project (`pip install -e .`) maps them to the package
`polyhead_remote` (`[tool.setuptools.package-dir]` in `pyproject.toml`), so no generic top-level name such as
`pipelines` lands in site-packages. Every library module imports them from here, never from `polyhead_remote`
directly (`tests/test_layout.py` checks it). `HUB_MODULES` is the one list of them.
"""

from polyhead_remote import (
    configuration_multitask,
    configuration_multitask_checks,
    modeling_multitask,
    modeling_multitask_checks,
    modeling_multitask_heads,
)
from polyhead_remote.configuration_multitask import PIPELINE_TASK, MultitaskConfig
from polyhead_remote.configuration_multitask_checks import (
    MULTI_LABEL,
    MULTIPLE_CHOICE,
    NATIVE_POOLING_ACTIVATIONS,
    PROBLEM_TYPES,
    SINGLE_LABEL,
    check_task_name,
    normalize_task,
    normalize_tasks,
    normalized_labels,
)
from polyhead_remote.modeling_multitask import MultitaskModel, MultitaskOutput
from polyhead_remote.modeling_multitask_checks import check_loading_info
from polyhead_remote.pipelines import multitask_base, multitask_inputs, multitask_zero_shot
from polyhead_remote.pipelines import multitask_classification as pipeline_module
from polyhead_remote.pipelines import multitask_ranking as ranking_module
from polyhead_remote.pipelines.multitask_classification import MultitaskClassificationPipeline, register_pipeline
from polyhead_remote.pipelines.multitask_inputs import check_room_for_text, check_tokenizer, choice_pairs
from polyhead_remote.pipelines.multitask_ranking import collection_paused
from polyhead_remote.pipelines.multitask_zero_shot import ZERO_SHOT_TASK, ZeroShotMultitaskPipeline


# Every Hub file: copied flat into each model folder (`polyhead.saving`), and so into every Hub upload.
HUB_MODULES = (
    configuration_multitask,
    configuration_multitask_checks,
    modeling_multitask,
    modeling_multitask_checks,
    modeling_multitask_heads,
    pipeline_module,
    multitask_base,
    multitask_inputs,
    ranking_module,
    multitask_zero_shot,
)

__all__ = [
    "HUB_MODULES",
    "MULTI_LABEL",
    "MULTIPLE_CHOICE",
    "NATIVE_POOLING_ACTIVATIONS",
    "PIPELINE_TASK",
    "PROBLEM_TYPES",
    "SINGLE_LABEL",
    "ZERO_SHOT_TASK",
    "MultitaskClassificationPipeline",
    "MultitaskConfig",
    "MultitaskModel",
    "MultitaskOutput",
    "ZeroShotMultitaskPipeline",
    "check_loading_info",
    "check_room_for_text",
    "check_task_name",
    "check_tokenizer",
    "choice_pairs",
    "collection_paused",
    "normalize_task",
    "normalize_tasks",
    "normalized_labels",
    "pipeline_module",
    "ranking_module",
    "register_pipeline",
]
