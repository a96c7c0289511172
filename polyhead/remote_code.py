"""The one place the library imports the three Hub files (the remote code Hub users run with `trust_remote_code`).

In the source tree they sit at the top, as in a Hub repo: `configuration_multitask.py`, `modeling_multitask.py` and
`pipelines/multitask_classification.py` (with its helper `pipelines/multitask_ranking.py`). Installing the project
(`pip install -e .`) maps them to the package `polyhead_remote` (`[tool.setuptools.package-dir]` in `pyproject.toml`),
so no generic top-level name such as `pipelines` lands in site-packages. Every library module imports them from here,
never from `polyhead_remote` directly (`tests/test_layout.py` checks it).
"""

from polyhead_remote import configuration_multitask, modeling_multitask
from polyhead_remote.configuration_multitask import (
    MULTI_LABEL,
    MULTIPLE_CHOICE,
    NATIVE_POOLING_ACTIVATIONS,
    PIPELINE_TASK,
    PROBLEM_TYPES,
    SINGLE_LABEL,
    MultitaskConfig,
    check_task_name,
    normalize_task,
    normalize_tasks,
)
from polyhead_remote.modeling_multitask import MultitaskModel, MultitaskOutput
from polyhead_remote.pipelines import multitask_classification as pipeline_module
from polyhead_remote.pipelines import multitask_ranking as ranking_module
from polyhead_remote.pipelines.multitask_classification import (
    MultitaskClassificationPipeline,
    ZeroShotMultitaskPipeline,
    register_pipeline,
)
from polyhead_remote.pipelines.multitask_ranking import collection_paused


__all__ = [
    "MULTI_LABEL",
    "MULTIPLE_CHOICE",
    "NATIVE_POOLING_ACTIVATIONS",
    "PIPELINE_TASK",
    "PROBLEM_TYPES",
    "SINGLE_LABEL",
    "MultitaskClassificationPipeline",
    "MultitaskConfig",
    "MultitaskModel",
    "MultitaskOutput",
    "ZeroShotMultitaskPipeline",
    "check_task_name",
    "collection_paused",
    "configuration_multitask",
    "modeling_multitask",
    "normalize_task",
    "normalize_tasks",
    "pipeline_module",
    "ranking_module",
    "register_pipeline",
]
