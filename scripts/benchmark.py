"""Benchmarks: multitask pipeline (torch, ONNX Runtime fp32/int8) vs single-task pipelines and the bare encoder
(speed, memory, model sizes, accuracy, training).

Default (bounded, a few minutes on 2 CPU cores): `python scripts/benchmark.py`. Longer and more precise: `--full`.
Offline smoke run on a tiny random encoder: `--tiny`. See `polyhead.benchmark` for what each variant is.

The fastest serving path of YOUR model on THIS machine (about a minute; `--write` saves it to the folder's
serving.json, read by handler.py and scripts/predict.py): `python scripts/benchmark.py --choose MODEL_DIR --write`.
"""

import argparse
import sys

import datasets
import torch
import transformers

from polyhead.benchmark import DEFAULT_DATA_DIR, format_report, run_benchmark, save_report
from polyhead.benchmark.choose import COMPILED, DEFAULT_PATHS, MIN_AGREEMENT
from polyhead.benchmark.cli import check_outputs, int_at_least, int_list, one_line_errors
from polyhead.benchmark.inputs import TASK_DATASETS
from polyhead.benchmark.plots import plot_report


FULL = {"num_texts": 512, "batch1_texts": 128, "repeats": 7}
FULL_ACCURACY = {"max_train_samples": 3000, "max_eval_samples": None, "epochs": 2.0}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--tasks",
        type=int_list(1, len(TASK_DATASETS)),
        default="3,6",
        help=f"Task counts T, comma-separated (1 to {len(TASK_DATASETS)}).",
    )
    parser.add_argument(
        "--batch-sizes", type=int_list(1), default="1,32", help="Inference batch sizes, comma-separated."
    )
    parser.add_argument("--num-texts", type=int_at_least(1), default=96, help="Real tweets timed per pass.")
    parser.add_argument(
        "--batch1-texts", type=int_at_least(0), default=24, help="Texts timed at batch size 1 (0: all)."
    )
    parser.add_argument("--repeats", type=int_at_least(1), default=5, help="Interleaved timing rounds (median kept).")
    parser.add_argument("--train-samples", type=int, default=600, help="Train examples per task (accuracy).")
    parser.add_argument("--eval-samples", type=int, default=500, help="Test examples per task (accuracy).")
    parser.add_argument("--epochs", type=float, default=1.0, help="Training epochs (accuracy).")
    parser.add_argument("--full", action="store_true", help=f"Longer run: {FULL} and {FULL_ACCURACY}.")
    parser.add_argument("--tiny", action="store_true", help="Tiny random encoder and synthetic texts (smoke test).")
    parser.add_argument("--skip-accuracy", action="store_true", help="No training (accuracy, training speed).")
    parser.add_argument("--skip-memory", action="store_true", help="No memory subprocesses.")
    parser.add_argument("--skip-int8", action="store_true", help="No torch int8 dynamic quantization variant.")
    parser.add_argument("--skip-onnx", action="store_true", help="No ONNX Runtime variants (exports, fp32, int8).")
    parser.add_argument(
        "--bf16", action="store_true", help="Also time the multitask pipeline in bfloat16 (fast on CPUs with AMX)."
    )
    parser.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR), help="The shared data folder.")
    parser.add_argument(
        "--output", default="outputs/benchmark.json", help="Where the JSON report goes (PNG plots beside it)."
    )
    parser.add_argument("--work-dir", default=None, help="Keep models and ONNX exports here (default: temp).")
    choose = parser.add_argument_group("choosing a serving path (--choose)")
    choose.add_argument(
        "--choose", metavar="MODEL_DIR", help="Time torch fp32/bf16 and ONNX fp32/int8 on MODEL_DIR and pick one."
    )
    choose.add_argument("--write", action="store_true", help="Write the pick to MODEL_DIR/serving.json.")
    choose.add_argument(
        "--compiled",
        action="store_true",
        help="Also time polyhead's compiled torch path (bfloat16 where the CPU runs it faster); compiles for minutes.",
    )
    choose.add_argument("--time-budget", type=float, default=60.0, help="Seconds of timing (at least one round).")
    choose.add_argument("--texts", help="Sample texts: .jsonl/.csv/.txt (default: tweets from --data-dir).")
    choose.add_argument("--text-column", default="text", help="The text column of --texts.")
    choose.add_argument("--choose-texts", type=int, default=512, help="Sample texts timed and compared.")
    choose.add_argument("--batch-size", type=int, default=32, help="Batch size timed.")
    choose.add_argument(
        "--min-agreement",
        type=float,
        default=100 * MIN_AGREEMENT,
        help="Percent of the texts whose labels must equal torch fp32's, for every task, for a path to be chosen.",
    )
    choose.add_argument("--num-threads", type=int, default=None, help="torch / onnxruntime threads (default: all).")
    return parser.parse_args(argv)


def run_choose(args: argparse.Namespace) -> None:
    from polyhead.benchmark.choose import check_min_agreement, choose_backend, format_choice, sample_texts
    from polyhead.saving import check_model_folder

    try:
        min_agreement = check_min_agreement(args.min_agreement / 100)
    except ValueError:
        sys.exit(f"error: --min-agreement is a percent of texts in (0, 100], e.g. 99.5, got {args.min_agreement:g}")
    try:
        check_model_folder(args.choose)
        texts = sample_texts(args.choose_texts, args.texts, args.text_column, args.data_dir)
    except (FileNotFoundError, KeyError, ValueError) as error:
        sys.exit(f"error: {error.args[0] if isinstance(error, KeyError) else error}")
    choice = choose_backend(
        args.choose,
        texts,
        batch_size=args.batch_size,
        time_budget=args.time_budget,
        num_threads=args.num_threads,
        min_agreement=min_agreement,
        paths=DEFAULT_PATHS + ((COMPILED,) if args.compiled else ()),
        write=args.write,
    )
    print(format_choice(choice))
    print(f"({choice.seconds:.0f} s in all)" + (f"; written to {args.choose}/serving.json" if args.write else ""))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    transformers.logging.set_verbosity_error()  # one load report per pipeline would bury the tables
    transformers.logging.disable_progress_bar()
    datasets.disable_progress_bars()
    if args.choose:
        return run_choose(args)
    with one_line_errors():  # bad paths, data or settings: one line, exit status 1
        check_outputs(args.output, folders={"--work-dir": args.work_dir})  # before any work: measurements kept
        run(args)


def run(args: argparse.Namespace) -> None:
    torch.set_num_threads(2)
    accuracy = {"max_train_samples": args.train_samples, "max_eval_samples": args.eval_samples, "epochs": args.epochs}
    sizes = {"num_texts": args.num_texts, "batch1_texts": args.batch1_texts or None, "repeats": args.repeats}
    if args.full:
        sizes, accuracy = FULL, FULL_ACCURACY
    report = run_benchmark(
        task_counts=args.tasks,
        batch_sizes=args.batch_sizes,
        tiny=args.tiny,
        memory=not args.skip_memory,
        accuracy=not args.skip_accuracy,
        int8=not args.skip_int8,
        onnx=not args.skip_onnx,
        bf16=args.bf16,
        accuracy_options=accuracy,
        data_dir=args.data_dir,
        work_dir=args.work_dir,
        **sizes,
    )
    print(format_report(report))
    print(f"\nJSON report: {save_report(report, args.output)}")
    print("Plots:", ", ".join(str(path) for path in plot_report(report.to_dict(), args.output)))


if __name__ == "__main__":
    main()
