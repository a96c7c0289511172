"""Zero-shot accuracy of a model's NLI task on labelled sets it never saw, against the majority baseline.

`python scripts/eval_zero_shot.py MODEL_DIR [--datasets sst2,trec] [--max-samples 300] [--data-dir ../shared/data]
[--template "This example is {}."] [--batch-size 32] [--output FILE]`. See `polyhead.benchmark.zero_shot`.

Datasets are single-text, single-label folders NAME/{train,test}.jsonl of --data-dir. Bad arguments, an unusable
model and unreadable or unsuitable data are refused before the model loads, with a one-line error and exit status 1.
"""

import argparse
import json
import sys
from pathlib import Path

from transformers import AutoTokenizer, pipeline

from polyhead import MultitaskModel
from polyhead.benchmark.inputs import DEFAULT_DATA_DIR
from polyhead.benchmark.zero_shot import (
    ZeroShotSet,
    check_report_file,
    load_zero_shot_set,
    nli_task_of,
    parse_dataset_names,
    zero_shot_accuracy,
)
from polyhead.encoders import check_positive_int
from polyhead.remote_code import MultitaskConfig, multitask_inputs
from polyhead.run_folder import check_model_source, check_model_weights, model_loading, write_json


def prepare(args: argparse.Namespace) -> list[ZeroShotSet]:
    """Checks every argument and reads every dataset, before the model's weights load: the datasets to score."""
    check_model_source(args.model_dir)
    local = Path(args.model_dir).is_dir()
    if local:
        check_model_weights(args.model_dir)  # an empty or truncated weights file is named, not a safetensors error
    check_positive_int("--max-samples", args.max_samples)
    check_positive_int("--batch-size", args.batch_size)
    multitask_inputs.check_hypothesis_template(args.template)
    names = parse_dataset_names(args.datasets)
    if args.output:
        check_report_file(args.output, "--output")
    datasets = [load_zero_shot_set(args.data_dir, name, args.max_samples) for name in names]
    if args.output:
        inputs = [path for dataset in datasets for path in dataset.files]
        inputs += list(Path(args.model_dir).iterdir()) if local else []
        if Path(args.output).resolve() in {path.resolve() for path in inputs}:
            raise ValueError(f"--output {args.output!r} is a file this run reads: give another path for the report.")
    with model_loading(args.model_dir):
        config = MultitaskConfig.from_pretrained(args.model_dir)
    nli_task_of(config, args.nli_task)  # no NLI task, several, or --nli-task not one: before the weights load
    return datasets


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir", help="A multitask model folder with an NLI task (or a Hub model id).")
    parser.add_argument("--datasets", default="sst2,trec", help="Comma-separated dataset folders of --data-dir.")
    parser.add_argument("--max-samples", type=int, default=300, help="Seeded sample of each test split.")
    parser.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR))
    parser.add_argument("--template", default="This example is {}.")
    parser.add_argument("--nli-task", default=None, help="The NLI task to use, when the model has several.")
    parser.add_argument("--batch-size", type=int, default=32, help="(text, hypothesis) pairs per forward.")
    parser.add_argument("--output", default=None, help="A JSON file for the report (missing folders are made).")
    args = parser.parse_args(argv)
    try:
        datasets = prepare(args)
        with model_loading(args.model_dir):
            model = MultitaskModel.from_pretrained(args.model_dir).eval()
            tokenizer = AutoTokenizer.from_pretrained(args.model_dir)
        classifier = pipeline("multitask-classification", model=model, tokenizer=tokenizer)
        report = {}
        for dataset in datasets:
            report[dataset.name] = zero_shot_accuracy(
                classifier,
                dataset.rows,
                dataset.names,
                dataset.train_labels,
                args.template,
                args.nli_task,
                args.batch_size,
            )
            print(dataset.name, json.dumps(report[dataset.name]))
        if args.output:
            write_json(args.output, report)  # its folder was checked before any work; missing folders are made
    except (ValueError, OSError) as error:  # bad arguments, data or model: the message says what to fix
        sys.exit("error: " + " ".join(str(error).split()))
    return report


if __name__ == "__main__":
    main()
