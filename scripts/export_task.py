"""Exports one task of a multitask model as a standard XxxForSequenceClassification checkpoint (no remote code).

    python scripts/export_task.py outputs/run/model emotion outputs/emotion --base-model org/tweets-multitask
    python scripts/export_task.py org/tweets-multitask emotion outputs/emotion --revision v1 --text "what a day"
    python scripts/export_task.py outputs/run/model emotion outputs/emotion --push-to org/tweets-emotion

The folder loads with AutoModelForSequenceClassification and pipeline("text-classification") (the Hub widget,
Inference Providers, text-embeddings-inference), with the same logits as the multitask model for that task (checked
before writing). Only models trained with --pooling native export. Exits 1 with a one-line error otherwise.
"""

import argparse
import json
import sys

from polyhead.exporters.task_checkpoint import export_task, publish_exported_task
from polyhead.publishing.upload import PublishError, check_repo_id


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir", help="A multitask model folder or Hub repo id.")
    parser.add_argument("task", help="The task to export.")
    parser.add_argument("out_dir", help="A new or empty folder.")
    parser.add_argument("--revision", default=None, help="Hub revision of model_dir.")
    parser.add_argument("--base-model", default=None, help="Hub id of the multitask model, for the card.")
    parser.add_argument("--text", action="append", default=None, help="Texts to check the logits on (repeatable).")
    parser.add_argument("--push-to", default=None, help="Also publish the folder to this Hub repo id.")
    parser.add_argument("--branch", default="main")
    parser.add_argument("--private", action="store_true")
    parser.add_argument("--endpoint", default=None, help="Another Hub-compatible server.")
    parser.add_argument(
        "--overwrite-readme",
        action="store_true",
        help="Replace a README edited on the Hub branch by the generated card (kept by default).",
    )
    args = parser.parse_args(argv)
    try:
        if args.push_to:  # before the folder is written: a rerun with a corrected id would find it taken
            check_repo_id(args.push_to)
        result = export_task(
            args.model_dir,
            args.task,
            args.out_dir,
            revision=args.revision,
            base_model=args.base_model,
            texts=args.text,
        )
        summary = {"folder": str(result.folder), "architecture": result.architecture}
        summary["max_abs_logit_difference"] = result.max_abs_diff
        if args.push_to:
            published = publish_exported_task(
                result.folder,
                args.push_to,
                branch=args.branch,
                private=args.private,
                endpoint=args.endpoint,
                overwrite_readme=args.overwrite_readme,
            )
            summary["readme"] = published.readme  # "kept-remote": a hand-edited README on the branch was kept
            summary["commit_url"] = published.commit_url
            summary["deleted"] = published.removed  # an earlier upload's files this checkpoint lacks
    except (ValueError, KeyError, OSError, PublishError) as error:  # OSError: a Hub id that does not load
        sys.exit(f"error: {error.args[0] if isinstance(error, KeyError) else error}")
    print(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    main()
