"""Every script answers `--help` (argparse %-formats help texts: one stray `%` broke train.py's and distill.py's)."""

import json
import subprocess
import sys
from pathlib import Path


SCRIPTS = sorted((Path(__file__).resolve().parents[1] / "scripts").glob("*.py"))
# One interpreter runs every script's `--help` as `python script.py --help` would (torch imported once, not 17 times).
RUN_ALL = """
import contextlib, io, json, runpy, sys
codes = {}
for script in sys.argv[1:]:
    sys.argv = [script, "--help"]
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            runpy.run_path(script, run_name="__main__")
        codes[script] = "no exit"
    except SystemExit as done:
        codes[script] = done.code if "usage:" in out.getvalue() else f"exit {done.code} without usage"
    except Exception as error:
        codes[script] = f"{type(error).__name__}: {error}"
print(json.dumps(codes))
"""


def test_every_script_answers_help():
    done = subprocess.run(
        [sys.executable, "-c", RUN_ALL, *map(str, SCRIPTS)], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    codes = json.loads(done.stdout.strip().splitlines()[-1])
    assert {Path(script).name: code for script, code in codes.items() if code not in (0, None)} == {}
    assert len(codes) == len(SCRIPTS) > 10
