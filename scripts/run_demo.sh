#!/usr/bin/env bash
# The README's main command: installs what the demo needs on a fresh machine, then trains, scores, saves and reloads
# the 3-task demo model (see polyhead/demo/run.py). Extra arguments go to scripts/demo.py, e.g. --num_train_epochs 1.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
.venv/bin/python scripts/demo.py "$@"
