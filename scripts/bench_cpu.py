"""CPU acceleration benchmark: torch float32, bfloat16 eager, compiled (bfloat16 where the CPU runs it faster) and ONNX
Runtime int8, at batch 32 and batch 1 (one call per text), each against the measured matmul peak of its dtype, with
label agreement against float32 on real texts. One process per runtime, interleaved rounds. Writes a Markdown table, a
JSON report and a plot (`--output` and beside it). See `polyhead.benchmark.cpu` and docs/cpu-acceleration.md.

    python scripts/bench_cpu.py --model outputs/model --output outputs/cpu/cpu.json
"""

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

from polyhead.benchmark.cli import check_outputs, int_at_least, name_list, one_line_errors, pair_list
from polyhead.benchmark.cpu import VARIANTS


TRAINING_PROFILES = ("train-fp32", "train-bf16")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="A saved multitask model (default: all-MiniLM-L6-v2 with 3 random heads).")
    parser.add_argument("--data-dir", default=None, help="The shared data folder (real tweets).")
    parser.add_argument(
        "--num-texts", type=int_at_least(1), default=256, help="Real texts timed at batch 32 and compared."
    )
    parser.add_argument(
        "--batch1-texts", type=int_at_least(1), default=32, help="Texts timed at batch 1, one call each."
    )
    parser.add_argument("--repeats", type=int_at_least(1), default=3, help="Interleaved rounds (median kept).")
    parser.add_argument("--threads", type=int_at_least(1), default=2)
    parser.add_argument(
        "--variants",
        type=name_list(VARIANTS),
        default="torch-fp32,torch-bf16,torch-compiled,onnx-int8",
        help="Comma-separated, of: torch-fp32, torch-bf16, torch-compiled, torch-compiled-autotune-small (compiled, "
        "max-autotune's GEMM templates for the batch-1 buckets: minutes more of warm-up), onnx-int8.",
    )
    parser.add_argument(
        "--profile",
        type=name_list(VARIANTS + TRAINING_PROFILES, allow_empty=True),
        default="torch-bf16,torch-compiled,train-bf16",
        help="Variants profiled per operator; train-fp32 / train-bf16 profile a training step.",
    )
    parser.add_argument(
        "--test-sets",
        type=pair_list("task", "data_folder"),
        default="",
        help="task=data_folder,... : each variant's accuracy on the folder's test.jsonl (the model's single-label "
        "tasks), e.g. sst2=../shared/data/sst2,trec=../shared/data/trec",
    )
    parser.add_argument(
        "--test-rows", type=int_at_least(1), default=None, help="At most this many test rows per task."
    )
    parser.add_argument("--output", default="outputs/cpu/cpu.json", help="JSON report; .md table and .png beside it.")
    parser.add_argument("--tiny", action="store_true", help="Tiny random encoder and synthetic texts (smoke test).")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    with one_line_errors():  # bad paths, model or data: one line, exit status 1
        check_outputs(args.output, beside=(".md", ".png"))  # before any work: the measurements are not lost at the end
        if args.model:
            from polyhead.run_folder import check_model_source

            check_model_source(args.model, hub_ids=False)
        test_sets = read_test_sets(args.test_sets, args.test_rows)
        run(args, test_sets, argv)


def read_test_sets(folders: dict[str, str], rows: int | None) -> dict[str, list[dict]]:
    """The first `rows` rows of each task's `<data_folder>/test.jsonl`, read before any model is built."""
    from polyhead.benchmark.inputs import read_jsonl

    test_sets = {}
    for task, folder in folders.items():
        path = Path(folder) / "test.jsonl"
        if not path.is_file():
            raise ValueError(f"--test-sets {task}={folder}: no {path}; give task=data_folder with a test.jsonl.")
        test_sets[task] = read_jsonl(path)[:rows]
    return test_sets


def run(args: argparse.Namespace, test_sets: dict[str, list[dict]], argv=None) -> None:
    import datasets
    import transformers

    from polyhead.benchmark.cpu import format_cpu_report, plot_cpu_report, run_cpu_benchmark
    from polyhead.benchmark.inputs import DEFAULT_DATA_DIR, load_texts, save_tiny_encoder, synthetic_texts
    from polyhead.benchmark.variants import multitask_model, onnx_available
    from polyhead.saving import save_model_folder

    transformers.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    variants = list(args.variants)
    with tempfile.TemporaryDirectory(prefix="polyhead-cpu-") as scratch:
        model_dir = Path(args.model) if args.model else None
        if model_dir is None:
            from transformers import AutoTokenizer

            from polyhead.encoders import local_encoder_path

            encoder = save_tiny_encoder(Path(scratch) / "tiny") if args.tiny else local_encoder_path()
            tasks = {f"task{i}": {"labels": [f"l{j}" for j in range(n)]} for i, n in enumerate((2, 4, 6))}
            model_dir = save_model_folder(
                multitask_model(encoder, tasks), AutoTokenizer.from_pretrained(encoder), Path(scratch) / "model"
            )
        data_dir = args.data_dir or DEFAULT_DATA_DIR
        texts = synthetic_texts(args.num_texts) if args.tiny else load_texts(args.num_texts, data_dir)
        onnx_dir = None
        if "onnx-int8" in variants:
            if onnx_available():
                from polyhead.exporters.onnx import export_onnx

                onnx_dir = Path(scratch) / "onnx-model"
                shutil.copytree(model_dir, onnx_dir, ignore=shutil.ignore_patterns("onnx", "serving.json"))
                export_onnx(onnx_dir, int8=True, texts=texts[:16])
            else:
                variants.remove("onnx-int8")
                print("onnx-int8 skipped: pip install 'polyhead[onnx]'", file=sys.stderr)
        report = run_cpu_benchmark(
            model_dir, texts, batch1_texts=args.batch1_texts, repeats=args.repeats, threads=args.threads,
            variants=variants, onnx_dir=onnx_dir, profile=args.profile,
            test_sets=test_sets,
        )  # fmt: skip
    report["command"] = "python scripts/bench_cpu.py " + " ".join(sys.argv[1:] if argv is None else argv)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n")  # first: the measurements survive any later error
    table = format_cpu_report(report)
    profiles = {**report["profiles"], **{f"{name} (training step)": row["profile"]
                                         for name, row in report["training"].items() if "profile" in row}}  # fmt: skip
    output.with_suffix(".md").write_text(table + "\n\n" + "\n\n".join(
        f"### {variant}\n\n```\n{text}\n```" for variant, text in profiles.items()) + "\n")  # fmt: skip
    print(table)
    print(f"\nJSON: {output}; table and profiles: {output.with_suffix('.md')}; plot: "
          f"{plot_cpu_report(report, output.with_suffix('.png'))}")  # fmt: skip


if __name__ == "__main__":
    main()
