"""Scores a saved model folder on any task's split.

    python scripts/evaluate_model.py MODEL_DIR --tasks configs/tweets.yaml --split test --output_dir outputs/eval
    python scripts/evaluate_model.py MODEL_DIR --tasks emotion=../shared/data/tweet_emotion --split validation
    python scripts/evaluate_model.py MODEL_DIR --tasks emotion=data/meld:text=utterance,label=emotion --num_threads 2

Writes results.json, classification_report_<task>.txt and confusion_matrix_<task>.png into --output_dir (an earlier
evaluation there is replaced: the reports of tasks this one does not score are removed, with a warning). The
majority-class baseline comes from each task's train split, when the task has one. Multi-label tasks are scored at the
model's thresholds (its tuned per-label ones when it has them), or at a threshold=0.3 given in the task spec for every
label; the output says which, results.json records them under "thresholds". results.json also records the SHA-256
of the weights scored ("weights_sha256"): scripts/publish.py --results refuses an evaluation of other weights.
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
    for task, used in results.get("thresholds", {}).items():
        print(f"{task}: {describe_thresholds(used)}")
    return results


def describe_thresholds(used: dict) -> str:
    """One line on the thresholds a multi-label task was scored at (its `results.json` `"thresholds"` entry)."""
    if used.get("per_label"):
        values = used["per_label"].values()
        return (
            f"scored at the model's tuned per-label thresholds ({min(values):g} to {max(values):g}; its scores at "
            f"the task threshold {used['threshold']:g} are the results' untuned_thresholds)"
        )
    source = "threshold= given" if used.get("from") == "evaluation" else "the model's"
    return f"scored at threshold {used['threshold']:g} for every label ({source})"


if __name__ == "__main__":
    main()
