"""Scores a saved model folder on any task's split.

    python scripts/evaluate_model.py MODEL_DIR --tasks configs/tweets.yaml --split test --output_dir outputs/eval
    python scripts/evaluate_model.py MODEL_DIR --tasks emotion=../shared/data/tweet_emotion --split validation
    python scripts/evaluate_model.py MODEL_DIR --tasks emotion=data/meld:text=utterance,label=emotion --num_threads 2

Writes results.json, classification_report_<task>.txt and confusion_matrix_<task>.png into --output_dir. The
majority-class baseline comes from each task's train split, when the task has one.
"""

import argparse
import json
import sys

import torch

from polyhead.evaluation.scoring import evaluate_saved_model, format_results_table
from polyhead.training.arguments import disable_progress_bars


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir", help="A saved model folder (loaded with trust_remote_code=True).")
    parser.add_argument("--tasks", nargs="+", required=True, help="name=folder, JSON task objects or a tasks file.")
    parser.add_argument("--split", default="test", help="Split role: test, eval (validation) or train.")
    parser.add_argument("--output_dir", default=None, help="Where results go (default: <model_dir>/eval-<split>).")
    parser.add_argument("--batch_size", type=positive_int, default=32)
    parser.add_argument(
        "--max_length",
        type=positive_int,
        default=None,
        help="Truncation (default: the length the model was trained with, as its folder records).",
    )
    parser.add_argument("--max_samples", type=positive_int, default=None, help="Subsample each task's split.")
    parser.add_argument("--num_threads", type=positive_int, default=None, help="torch CPU threads (default: torch's).")
    args = parser.parse_args(argv)
    if args.num_threads is not None:
        torch.set_num_threads(args.num_threads)
    if not sys.stderr.isatty():
        disable_progress_bars()  # no carriage-return progress bars in a redirected log
    try:
        results = evaluate_saved_model(
            args.model_dir, args.tasks, args.split, args.output_dir, args.batch_size, args.max_length, args.max_samples
        )
    except (ValueError, OSError) as error:  # bad arguments, data or model: the message says what to fix
        sys.exit(f"error: {error}")
    print(format_results_table(results))
    print(json.dumps({"average": results["average"]}, indent=2))
    for task, capped in results.get("capped", {}).items():
        print(f"{task}: scored {capped['scored']} of the {capped['split_rows']} rows of the split (--max_samples)")
    return results


if __name__ == "__main__":
    main()
