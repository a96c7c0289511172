"""Throughput of the multitask pipeline with T = 1, 10, 100, 500 heads on MiniLM-L6 and real tweets.

`python scripts/bench_heads.py [--tasks 1,10,100,500] [--heads random,calibrated] [--num-texts 256]
[--batch1-texts 48] [--no-per-text-calls] [--repeats 5] [--output outputs/bench_heads.json]`. Random heads return
about half of every multi-label task's labels; calibrated heads (biases shifted on 128 tweets of the validation splits)
about as many per task as go_emotions has per text (its train split). Batch 1 is timed as one call on a list and,
unless `--no-per-text-calls`, as one call per text. See `polyhead.benchmark.heads`.
"""

import argparse
import dataclasses
import json
from pathlib import Path

import torch

from polyhead.benchmark.cli import check_outputs, int_at_least, int_list, name_list, one_line_errors
from polyhead.benchmark.heads import HEADS, heads_table, labels_per_text, measure_heads
from polyhead.benchmark.inputs import DEFAULT_DATA_DIR, load_texts
from polyhead.benchmark.plots import plot_heads


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--tasks", type=int_list(1), default="1,10,100,500", help="Task counts T, comma-separated (first: reference)."
    )
    parser.add_argument(
        "--heads",
        type=name_list(HEADS),
        default=",".join(HEADS),
        help="random and/or calibrated (see polyhead.benchmark.heads).",
    )
    parser.add_argument("--batch-sizes", type=int_list(1), default="32,1", help="Batch sizes, comma-separated.")
    parser.add_argument("--num-texts", type=int_at_least(1), default=256, help="Real tweets timed per pass.")
    parser.add_argument("--batch1-texts", type=int_at_least(1), default=48, help="Texts timed at batch size 1.")
    parser.add_argument(
        "--per-text-calls",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Also time one call per text on the batch-1 texts (as a server answering requests).",
    )
    parser.add_argument("--repeats", type=int_at_least(1), default=5, help="Interleaved rounds (median kept).")
    parser.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR))
    parser.add_argument("--encoder", default=None, help="Encoder folder (default: the installed MiniLM-L6).")
    parser.add_argument("--output", default=None, help="Also write the rows as JSON here (and a PNG plot beside it).")
    parser.add_argument("--threads", type=int_at_least(1), default=None, help="torch CPU threads (default: torch's).")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall", help="cpu: process CPU seconds.")
    args = parser.parse_args(argv)
    with one_line_errors():  # bad paths, data or encoder: one line, exit status 1
        check_outputs(args.output, beside=(".png",))  # before any work: the measurements are not lost at the end
        run(args)


def run(args: argparse.Namespace) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.encoder is None:
        from polyhead.demo.run import encoder_path

        args.encoder = encoder_path()
    rows = measure_heads(
        args.encoder,
        load_texts(args.num_texts, args.data_dir),
        args.tasks,
        args.batch_sizes,
        args.repeats,
        args.batch1_texts,
        args.clock,
        args.heads,
        calibration_texts=load_texts(128, args.data_dir, split="validation"),
        calibration_labels_per_text=labels_per_text(Path(args.data_dir) / "go_emotions" / "train.jsonl"),
        per_text_calls=args.per_text_calls,
    )
    print(f"torch threads: {torch.get_num_threads()}, clock: {args.clock}")
    print(heads_table(rows))
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        records = [dataclasses.asdict(r) for r in rows]
        Path(args.output).write_text(json.dumps(records, indent=2) + "\n")
        print(f"Plot: {plot_heads(records, args.output)}")


if __name__ == "__main__":
    main()
