"""Exports a saved multitask model to ONNX: MODEL_DIR/onnx/model.onnx (and, with --int8, model_quantized.onnx).

    python scripts/export_onnx.py outputs/demo-model --int8

One graph answers every task (outputs `logits.<task>`); it is kept only if its fp32 logits match torch within --atol.
Needs the onnx extra: pip install 'polyhead[onnx]'. See `polyhead.exporters.onnx`.
"""

import argparse
import sys

from polyhead.exporters.onnx import (
    DEFAULT_ATOL,
    DEFAULT_OPSETS,
    EXPORTERS,
    ExporterError,
    ParityError,
    export_onnx,
    supported_opsets,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir", help="A model folder written by polyhead (scripts/train.py, the demo).")
    parser.add_argument("--int8", action="store_true", help="Also write onnx/model_quantized.onnx (dynamic int8).")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="Replace existing onnx/ graphs (without --int8, an older model_quantized.onnx is removed).",
    )
    parser.add_argument(
        "--atol", type=float, default=DEFAULT_ATOL, help="Largest allowed fp32 logit difference (>= 0)."
    )
    ranges = {name: supported_opsets(name) for name in DEFAULT_OPSETS}
    parser.add_argument(
        "--opset",
        type=int,
        default=None,
        help="ONNX opset version: "
        + ", ".join(f"{name} {r.start}-{r.stop - 1} (default {DEFAULT_OPSETS[name]})" for name, r in ranges.items())
        + ".",
    )
    parser.add_argument(
        "--exporter",
        choices=EXPORTERS,
        default="auto",
        help="auto: TorchScript (fast graph) for BERT/RoBERTa/XLM-R/ELECTRA/DistilBERT, dynamo for other families.",
    )
    args = parser.parse_args(argv)
    try:
        result = export_onnx(
            args.model_dir,
            int8=args.int8,
            overwrite=args.overwrite,
            atol=args.atol,
            opset=args.opset,
            exporter=args.exporter,
        )
    except (OSError, ImportError, ValueError, ParityError, ExporterError) as error:  # ExporterError: torch's failed
        print(f"error: {error}", file=sys.stderr)
        return 1
    names = f"inputs {result.input_names} -> outputs {result.output_names}"
    print(f"{result.exporter} exporter (opset {result.opset}): {names}")
    print(f"fp32 parity: max |onnx - torch| per task {_fmt(result.max_abs_diff)} (atol {args.atol})")
    if result.int8_max_abs_diff is not None:
        print(f"int8: max |onnx - torch| per task {_fmt(result.int8_max_abs_diff)} (not checked)")
    for path in result.files:
        print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB)")
    for path in result.removed:
        print(f"removed {path}: quantized from the replaced fp32 graph (--int8 writes a new one)")
    return 0


def _fmt(diff: dict[str, float]) -> str:
    return "{" + ", ".join(f"{task}: {value:.2e}" for task, value in diff.items()) + "}"


if __name__ == "__main__":
    sys.exit(main())
