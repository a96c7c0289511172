"""Recycling benchmark: fine-tune the raw encoder and the multitask model's exported encoder on tasks the multitask
model never saw (same settings and seeds), and compare test accuracy (see polyhead.benchmark.recycling).

    python scripts/bench_recycling.py                      # MiniLM, the defaults (bounded for 2 busy CPU cores)
    python scripts/bench_recycling.py --seeds 0,1,2,3,4 --target-train-samples 2000
    python scripts/bench_recycling.py --tiny               # tiny random encoder, synthetic tasks (seconds)

Writes the JSON report (rewritten after every run), its Markdown table (.md) and plot (.png) at --output.
"""

import argparse
import dataclasses
import tempfile

import torch
import transformers

from polyhead.benchmark.cli import check_outputs, int_at_least, int_list, name_list, one_line_errors
from polyhead.benchmark.inputs import DEFAULT_DATA_DIR
from polyhead.benchmark.recycling import TINY, RecyclingSettings, recycling_table, run_recycling, write_tiny_data
from polyhead.training.arguments import disable_progress_bars


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    defaults = RecyclingSettings()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoder", default=defaults.encoder, help="The raw encoder (short name, Hub id or folder).")
    parser.add_argument(
        "--source-tasks", type=name_list(), default=",".join(defaults.source_tasks), help="Multitask tasks."
    )
    parser.add_argument(
        "--target-tasks", type=name_list(), default=",".join(defaults.target_tasks), help="Held-out tasks."
    )
    parser.add_argument(
        "--seeds", type=int_list(0), default=",".join(map(str, defaults.seeds)), help="Fine-tuning seeds."
    )
    parser.add_argument("--source-train-samples", type=int_at_least(1), default=defaults.source_train_samples)
    parser.add_argument("--source-epochs", type=float, default=defaults.source_epochs)
    parser.add_argument("--target-train-samples", type=int_at_least(1), default=defaults.target_train_samples)
    parser.add_argument("--target-epochs", type=float, default=defaults.target_epochs)
    parser.add_argument(
        "--eval-samples", type=int_at_least(1), default=defaults.eval_samples, help="Test rows per held-out task."
    )
    parser.add_argument("--max-length", type=int_at_least(1), default=defaults.max_length)
    parser.add_argument("--learning-rate", type=float, default=defaults.learning_rate)
    parser.add_argument("--num-threads", type=int, default=defaults.num_threads, help="torch CPU threads.")
    parser.add_argument(
        "--reuse-multitask", action="store_true", help="Fine-tune from the multitask model already in --work-dir."
    )
    parser.add_argument("--tiny", action="store_true", help="Tiny random encoder and synthetic tasks (smoke test).")
    parser.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR), help="The folder holding the task folders.")
    parser.add_argument("--work-dir", default="outputs/recycling_work", help="Models are trained here.")
    parser.add_argument("--output", default="outputs/recycling.json", help="The JSON report (.md and .png beside).")
    return parser.parse_args(argv)


def settings_from(args: argparse.Namespace) -> RecyclingSettings:
    settings = RecyclingSettings(
        encoder=args.encoder,
        source_tasks=tuple(args.source_tasks),
        target_tasks=tuple(args.target_tasks),
        seeds=tuple(args.seeds),
        source_train_samples=args.source_train_samples,
        source_epochs=args.source_epochs,
        target_train_samples=args.target_train_samples,
        target_epochs=args.target_epochs,
        eval_samples=args.eval_samples,
        max_length=args.max_length,
        learning_rate=args.learning_rate,
        num_threads=args.num_threads,
    )
    return dataclasses.replace(settings, **TINY) if args.tiny else settings


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    with one_line_errors():  # bad paths, data or settings: one line, exit status 1
        check_outputs(args.output, beside=(".md", ".png"), folders={"--work-dir": args.work_dir})  # before any work
        return run(args)


def run(args: argparse.Namespace) -> dict:
    transformers.logging.set_verbosity_error()  # one load report per run would bury the progress lines
    disable_progress_bars()
    settings = settings_from(args)
    if settings.num_threads:
        torch.set_num_threads(settings.num_threads)
    with tempfile.TemporaryDirectory(prefix="polyhead-recycling-") as tmp:
        data_dir = write_tiny_data(tmp) if args.tiny else args.data_dir
        report = run_recycling(
            settings,
            data_dir,
            args.work_dir,
            args.output,
            log=lambda line: print(line, flush=True),
            reuse_multitask=args.reuse_multitask,
        )
    print(recycling_table(report))
    print(f"JSON report: {args.output}")
    return report


if __name__ == "__main__":
    main()
