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
    for required in (
        "polyhead_remote/configuration_multitask.py",
        "polyhead_remote/modeling_multitask.py",
        "polyhead_remote/pipelines/multitask_classification.py",
        "polyhead/model_cards/multitask_model_card_template.md",
        "polyhead/metrics/multiclass_classification/multiclass_classification.py",
    ):
        assert required in names
    assert not [n for n in names if n.startswith(("polyhead_remote/tests", "polyhead_remote/scripts"))]
