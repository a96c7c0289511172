"""Multitask training: `python scripts/train.py configs/tiny.yaml [--flag value ...]` or all flags on the command line.

Arguments: `polyhead.arguments` (ModelArguments, DataArguments, MultitaskTrainingArguments). Multi-GPU:
`accelerate launch scripts/train.py configs/tweets.yaml`. Arguments that cannot train and a `--model_dir` whose
writing could delete files are refused before anything is read, with a one-line error and exit status 1.
"""

import json
import sys

from polyhead.arguments import parse_args
from polyhead.training import check_output_locations, run


if __name__ == "__main__":
    try:
        arguments = parse_args()
        check_output_locations(arguments[2])
    except (ValueError, FileExistsError) as error:
        sys.exit(f"error: {error}")
    results = run(*arguments)
    if results["multitask"]:
        print(json.dumps({"average": results["multitask"]["average"]}, indent=2))
