"""Distillation benchmark: train separate classifiers with the plain transformers recipe, distil them into one polyhead
model, and measure accuracy, agreement and speed against them (see polyhead.benchmark.distillation).

    python scripts/bench_distill.py                                  # the measured run of docs/distillation.md
    python scripts/bench_distill.py --extra-texts traffic.jsonl --epochs 1
    python scripts/bench_distill.py --tiny                           # tiny random encoder, synthetic tasks (seconds)

Writes the JSON report, its Markdown table (.md) and plot (.png) at --output.
"""

import argparse
import dataclasses
import tempfile

import torch
import transformers

from polyhead.benchmark.cli import check_outputs, int_at_least, name_list, one_line_errors
from polyhead.benchmark.distillation import (
    TINY,
    DistillBenchSettings,
    distill_table,
    run_distill_bench,
    write_tiny_data,
)
from polyhead.benchmark.inputs import DEFAULT_DATA_DIR
from polyhead.training.arguments import disable_progress_bars


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    defaults = DistillBenchSettings()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoder", default=defaults.encoder, help="Every teacher's and the student's encoder.")
    parser.add_argument(
        "--teachers",
        type=name_list(),
        default=",".join(defaults.teachers),
        help="Comma-separated name=task[:train rows], tasks of --data-dir (single-label, single-text).",
    )
    parser.add_argument("--teacher-epochs", type=float, default=defaults.teacher_epochs)
    parser.add_argument("--teacher-learning-rate", type=float, default=defaults.teacher_learning_rate)
    parser.add_argument("--teacher-batch-size", type=int_at_least(1), default=defaults.teacher_batch_size)
    parser.add_argument("--epochs", type=float, default=defaults.epochs, help="The student's epochs.")
    parser.add_argument("--learning-rate", type=float, default=defaults.learning_rate, help="The student's.")
    parser.add_argument(
        "--batch-size", type=int_at_least(1), default=defaults.batch_size, help="The student's and labelling."
    )
    parser.add_argument("--max-length", type=int_at_least(1), default=defaults.max_length)
    parser.add_argument("--temperature", type=float, default=defaults.temperature, help="--distill_temperature.")
    parser.add_argument(
        "--extra-texts", nargs="*", default=[], help="More unlabeled text files (a 'text' column) for the student."
    )
    parser.add_argument("--bf16", type=lambda v: v.lower() == "true", default=defaults.bf16, help="true or false.")
    parser.add_argument("--speed-texts", type=int_at_least(1), default=defaults.speed_texts)
    parser.add_argument("--speed-rounds", type=int_at_least(1), default=defaults.speed_rounds)
    parser.add_argument("--num-threads", type=int, default=defaults.num_threads, help="torch CPU threads.")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--tiny", action="store_true", help="Tiny random encoder and synthetic tasks (smoke test).")
    parser.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR), help="The folder holding the task folders.")
    parser.add_argument("--work-dir", default="outputs/distill_bench", help="Teachers, their outputs, the student.")
    parser.add_argument(
        "--output", default="outputs/distill_bench.json", help="The JSON report (.md and .png beside)."
    )
    return parser.parse_args(argv)


def settings_from(args: argparse.Namespace) -> DistillBenchSettings:
    settings = DistillBenchSettings(
        encoder=args.encoder,
        teachers=tuple(args.teachers),
        teacher_epochs=args.teacher_epochs,
        teacher_learning_rate=args.teacher_learning_rate,
        teacher_batch_size=args.teacher_batch_size,
        epochs=args.epochs,
        learning_rate=args.learning_rate,
        batch_size=args.batch_size,
        max_length=args.max_length,
        temperature=args.temperature,
        extra_texts=tuple(args.extra_texts),
        bf16=args.bf16,
        speed_texts=args.speed_texts,
        speed_rounds=args.speed_rounds,
        num_threads=args.num_threads,
        seed=args.seed,
    )
    return dataclasses.replace(settings, **TINY) if args.tiny else settings


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    with one_line_errors():  # bad paths, data or settings: one line, exit status 1
        check_outputs(args.output, beside=(".md", ".png"), folders={"--work-dir": args.work_dir})  # before any work
        return run(args)


def run(args: argparse.Namespace) -> dict:
    transformers.logging.set_verbosity_error()  # one load report per model would bury the progress lines
    disable_progress_bars()
    settings = settings_from(args)
    if settings.num_threads:
        torch.set_num_threads(settings.num_threads)
    with tempfile.TemporaryDirectory(prefix="polyhead-distill-bench-") as tmp:
        data_dir = write_tiny_data(tmp) if args.tiny else args.data_dir
        report = run_distill_bench(
            settings, data_dir, args.work_dir, args.output, log=lambda line: print(line, flush=True)
        )
    print(distill_table(report))
    print(f"JSON report: {args.output}")
    return report


if __name__ == "__main__":
    main()
