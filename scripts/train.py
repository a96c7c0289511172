"""Multitask training: `python scripts/train.py configs/tiny.yaml [--flag value ...]` or all flags on the command line.

Arguments: `polyhead.arguments` (ModelArguments, DataArguments, MultitaskTrainingArguments). Multi-GPU:
`accelerate launch scripts/train.py configs/tweets.yaml`.
"""

import json

from polyhead.arguments import parse_args
from polyhead.training import run


if __name__ == "__main__":
    results = run(*parse_args())
    if results["multitask"]:
        print(json.dumps({"average": results["multitask"]["average"]}, indent=2))
