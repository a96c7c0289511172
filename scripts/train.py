"""Multitask training: `python scripts/train.py configs/tiny.yaml [--flag value ...]` or all flags on the command line.

Arguments: `polyhead.training.arguments` (ModelArguments, DataArguments, MultitaskTrainingArguments). Multi-GPU:
`accelerate launch scripts/train.py configs/tweets.yaml`. Ends with the per-task results table and, with
`--single_task_baselines true`, the multitask vs single-task comparison (`--seeds N`: over N seeds, with intervals and
verdicts, polyhead.training.parity). Arguments that cannot train, a `--model_dir` whose writing could delete files
and unreadable or invalid task data are refused before any training step, with a one-line error and exit status 1.
"""

import json
import sys

from polyhead.evaluation.comparison import format_seed_comparison_table
from polyhead.evaluation.scoring import format_comparison_table, format_results_table
from polyhead.run_folder import BASELINE_RESULTS_FILE, RESULTS_FILE
from polyhead.saving import UnsavableModelError
from polyhead.training.arguments import disable_progress_bars, parse_args
from polyhead.training.trainer import ResumeError, prepare_run, run


def main(argv: list[str] | None = None) -> dict:
    try:
        model_args, data_args, training_args = parse_args(argv)
        if training_args.disable_tqdm:
            disable_progress_bars()  # tokenization and saving bars too, e.g. in a redirected log
        prepared_run = prepare_run(model_args, data_args, training_args)  # arguments and data, before any step
    except (ValueError, FileExistsError, FileNotFoundError) as error:
        sys.exit(f"error: {error}")
    try:
        results = run(model_args, data_args, training_args, prepared_run)
    except (UnsavableModelError, ResumeError) as error:  # diverged, or a checkpoint that cannot resume: the fix
        sys.exit(f"error: {error}")
    multitask, baselines = results["multitask"], results["baselines"]
    if multitask:  # empty on the processes other than the main one
        print(f"\nResults ({multitask['split']} split, {training_args.model_dir}/{RESULTS_FILE}):")
        print(format_results_table(multitask))
        if multitask.get("comparison"):
            print(f"\nMultitask vs single-task models over seeds ({training_args.model_dir}/{RESULTS_FILE}):")
            print(format_seed_comparison_table(multitask["comparison"]))
        elif baselines and baselines.get("tasks"):
            print(f"\nMultitask vs single-task models ({training_args.model_dir}/{BASELINE_RESULTS_FILE}):")
            print(format_comparison_table(multitask, baselines))
        print(json.dumps({"average": multitask["average"]}, indent=2))
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
