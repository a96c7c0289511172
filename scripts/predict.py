"""Bulk prediction with a saved multitask model: every task's label and score for every row of a file.

    python scripts/predict.py outputs/demo-model tweets.csv predictions.parquet --onnx
    python scripts/predict.py outputs/demo-model tweets.jsonl predictions.jsonl --resume   # after an interruption

Input: CSV, JSON Lines (.jsonl or .json: one JSON object a line) or Parquet with a text column (--text-column) and
optionally a second text (--text-pair-column). Output: JSONL or Parquet (never the input file), input columns kept as
the file holds them, input order kept, plus `<task>` and `<task>_score` per task. The whole input is checked before
anything is written: a refused run leaves no output behind. See `polyhead.serving.predict`.
"""

import argparse
import sys

from polyhead.serving import ONNX_FILE, QUANTIZED_FILE
from polyhead.serving.predict import TORCH_DTYPES, predict_file


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="A saved multitask model folder.")
    parser.add_argument("input", help="A .csv, .jsonl (or .json: JSON Lines) or .parquet file.")
    parser.add_argument("output", help="A .jsonl or .parquet file, not the input.")
    parser.add_argument("--text-column", default="text")
    parser.add_argument("--text-pair-column", default=None)
    parser.add_argument("--onnx", action="store_true", help=f"Run {ONNX_FILE} on onnxruntime.")
    parser.add_argument("--int8", action="store_true", help=f"With --onnx: run {QUANTIZED_FILE}.")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--chunk-size", type=int, default=4096, help="Rows sorted by length and written at a time.")
    parser.add_argument("--max-length", type=int, default=None)
    parser.add_argument("--num-threads", type=int, default=None, help="torch / onnxruntime threads.")
    parser.add_argument(
        "--dtype",
        choices=list(TORCH_DTYPES),
        default=None,
        help="torch model precision (default: the model folder's serving.json, written by scripts/benchmark.py "
        "--choose --write, else float32 torch); bfloat16 is ~3x faster on Intel Xeon CPUs with AMX (Sapphire "
        "Rapids on), slower on CPUs without bfloat16 instructions.",
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        default=None,
        help="The compiled path (torch.compile; bfloat16 where the CPU runs it faster than float32, unless --dtype "
        "says otherwise): faster after a warm-up of ~10-40 s per new batch/length bucket (docs/cpu-acceleration.md).",
    )
    parser.add_argument("--resume", action="store_true", help="Continue an interrupted run (no row is duplicated).")
    parser.add_argument("--overwrite", action="store_true", help="Start again, replacing the output.")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    if args.int8 and not args.onnx:
        parser.error("--int8 needs --onnx")
    if args.onnx and args.dtype not in (None, "float32"):
        parser.error("--dtype is for the torch model; with --onnx, --int8 picks the quantized graph")
    if args.onnx and args.compile:
        parser.error("--compile is for the torch model; drop --onnx (or --compile)")
    try:
        result = predict_file(
            args.model,
            args.input,
            args.output,
            text_column=args.text_column,
            text_pair_column=args.text_pair_column,
            onnx_file=(QUANTIZED_FILE if args.int8 else ONNX_FILE) if args.onnx else None,
            batch_size=args.batch_size,
            chunk_size=args.chunk_size,
            max_length=args.max_length,
            num_threads=args.num_threads,
            dtype=args.dtype,
            compile=args.compile,
            resume=args.resume,
            overwrite=args.overwrite,
            progress=not args.no_progress,
        )
    except (OSError, ImportError, KeyError, ValueError) as error:  # OSError: a Hub id that does not load
        print(f"error: {error.args[0] if isinstance(error, KeyError) else error}", file=sys.stderr)
        return 1
    rate = result.rows_written / result.seconds if result.seconds else 0.0
    resumed = f" (after {result.rows_resumed} rows from an earlier run)" if result.rows_resumed else ""
    print(
        f"wrote {result.rows_written} rows{resumed} to {result.output} in {result.seconds:.1f} s ({rate:.1f} texts/s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
