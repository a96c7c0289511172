"""Exports the shared encoder of a multitask model alone, as a standard transformers folder (no remote code).

    python scripts/export_encoder.py outputs/run/model outputs/encoder

The folder (safetensors weights, config, tokenizer, a README.md naming the tasks it was trained on and their data)
loads with AutoModel.from_pretrained(OUT) and AutoModelForSequenceClassification.from_pretrained(OUT, num_labels=k):
a starting point for fine-tuning on new tasks (see docs/recycling.md). Its hidden states are checked against the
multitask model's before the folder is moved into place. Exits 1 with a one-line error otherwise.
"""

import argparse
import json
import sys

from polyhead.exporters.encoder import export_encoder


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir", help="A multitask model folder (<output_dir>/model of scripts/train.py).")
    parser.add_argument("out_dir", help="A new or empty folder.")
    parser.add_argument("--text", action="append", default=None, help="Texts to check the encoder on (repeatable).")
    args = parser.parse_args(argv)
    try:
        result = export_encoder(args.model_dir, args.out_dir, texts=args.text)
    except (ValueError, OSError) as error:  # OSError (FileExistsError among them): weights that do not load
        sys.exit(f"error: {error}")
    summary = {"folder": str(result.folder), "architecture": result.architecture, "tasks": result.tasks}
    summary["max_abs_hidden_state_difference"] = result.max_abs_diff
    print(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    main()
