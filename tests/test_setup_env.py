"""scripts/setup_env.sh stops before building anything when the disk cannot hold a first build."""

import os
import shutil
import stat
import subprocess
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]


def test_setup_env_refuses_a_first_build_on_a_nearly_full_disk(tmp_path):
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "setup_env.sh", tmp_path / "scripts" / "setup_env.sh")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    df = bin_dir / "df"  # 287 MB free, as once seen on a machine of this workplace
    df.write_text(
        "#!/bin/sh\necho 'Filesystem 1024-blocks Used Available Capacity Mounted'\necho 'vda 1 1 293888 99% /'\n"
    )
    df.chmod(df.stat().st_mode | stat.S_IEXEC)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(
        ["bash", "scripts/setup_env.sh"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert "287 MB free" in done.stderr and "needs about 6 GB" in done.stderr and "free some space" in done.stderr
    assert not (tmp_path / ".venv").exists()  # nothing half-built
