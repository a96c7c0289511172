"""Zero-shot accuracy of a model's NLI task on labelled sets it never saw, against the majority baseline.

`python scripts/eval_zero_shot.py MODEL_DIR [--datasets sst2,trec] [--max-samples 300] [--data-dir ../shared/data]
[--template "This example is {}."] [--batch-size 32] [--output FILE]`. See `polyhead.benchmark.zero_shot`.
"""

import argparse
import json
from pathlib import Path

from transformers import AutoTokenizer, pipeline

from polyhead import MultitaskModel
from polyhead.benchmark.zero_shot import LABEL_NAMES, read_rows, zero_shot_accuracy


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir")
    parser.add_argument("--datasets", default="sst2,trec")
    parser.add_argument("--max-samples", type=int, default=300, help="Seeded sample of each test split.")
    parser.add_argument("--data-dir", default=str(Path(__file__).resolve().parent.parent.parent / "shared" / "data"))
    parser.add_argument("--template", default="This example is {}.")
    parser.add_argument("--nli-task", default=None)
    parser.add_argument("--batch-size", type=int, default=32, help="(text, hypothesis) pairs per forward.")
    parser.add_argument("--output", default=None)
    args = parser.parse_args(argv)
    model = MultitaskModel.from_pretrained(args.model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(args.model_dir)
    classifier = pipeline("multitask-classification", model=model, tokenizer=tokenizer)
    report = {}
    for name in args.datasets.split(","):
        folder = Path(args.data_dir) / name
        train_labels = [row["label"] for row in read_rows(folder / "train.jsonl")]
        names = LABEL_NAMES.get(name) or {label: label for label in sorted(set(train_labels))}
        rows = read_rows(folder / "test.jsonl", args.max_samples)
        report[name] = zero_shot_accuracy(
            classifier, rows, names, train_labels, args.template, args.nli_task, args.batch_size
        )
        print(name, json.dumps(report[name]))
    if args.output:
        Path(args.output).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
