import ast
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest


ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_has_no_generic_top_level_names(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("polyhead-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top_level == {"polyhead", "polyhead_remote"}
    from polyhead.remote_code import HUB_MODULES

    hub_files = [module.__name__.replace(".", "/") + ".py" for module in HUB_MODULES]
    for required in (
        *hub_files,
        "polyhead/model_cards/multitask_model_card_template.md",
        "polyhead/evaluation/metrics/multiclass_classification/multiclass_classification.py",
    ):
        assert required in names
    assert not [n for n in names if n.startswith(("polyhead_remote/tests", "polyhead_remote/scripts"))]


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def test_library_does_not_import_test_utilities():
    """The tiny preset lives in `polyhead.presets`; `polyhead.testing_utils` is for tests only."""
    sources = [p for p in (ROOT / "polyhead").rglob("*.py") if p.name != "testing_utils.py"]
    sources += sorted((ROOT / "scripts").glob("*.py"))
    offenders = [str(p.relative_to(ROOT)) for p in sources if "polyhead.testing_utils" in _imported_modules(p)]
    assert not offenders


def test_shared_constants_are_defined_once():
    """The problem types, the pipeline task and the tiny preset's name are the config's and presets' own."""
    from polyhead import presets
    from polyhead.benchmark import run as benchmark
    from polyhead.demo import run as demo
    from polyhead.evaluation import metrics
    from polyhead.training import arguments
    from polyhead_remote import configuration_multitask as config
    from polyhead_remote import configuration_multitask_checks as checks

    assert metrics.MULTI_LABEL is checks.MULTI_LABEL and metrics.SINGLE_LABEL is checks.SINGLE_LABEL
    assert demo.PIPELINE_TASK is config.PIPELINE_TASK
    assert arguments.TINY_ENCODER is presets.TINY_ENCODER is benchmark.TINY_ENCODER


def test_the_pipeline_files_own_constants_equal_the_configs():
    # The pipeline file is installed as polyhead_remote.pipelines and sits flat in a Hub repo, so it cannot import its
    # sibling config module in both layouts (a Hub file may use single-dot imports only): it keeps its own copies.
    from polyhead_remote import configuration_multitask as config
    from polyhead_remote import configuration_multitask_checks as checks
    from polyhead_remote.pipelines import multitask_classification as pipeline_file
    from polyhead_remote.pipelines import multitask_ranking as ranking_file

    assert pipeline_file.PIPELINE_TASK == config.PIPELINE_TASK
    assert ranking_file.MULTI_LABEL == checks.MULTI_LABEL and ranking_file.MULTIPLE_CHOICE == checks.MULTIPLE_CHOICE
