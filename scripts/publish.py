"""Publishes a model folder to the Hub in one commit (weights, config, code, tokenizer, card, results, plots).

    python scripts/publish.py outputs/model --repo-id org/tweets-multitask --branch v1 --message "First model"
    python scripts/publish.py outputs/model --repo-id org/tweets-multitask --dry-run outputs/upload-preview
    python scripts/publish.py outputs/model --repo-id org/tweets-multitask --private --overwrite-readme
    python scripts/publish.py outputs/model --repo-id org/tweets-multitask --space org/tweets-multitask-demo
    python scripts/publish.py outputs/model --repo-id org/tweets-multitask --results outputs/model/eval-test
    python scripts/publish.py outputs/model --repo-id org/meld --base-model sentence-transformers/all-MiniLM-L6-v2 \
        --datasets emotion=declare-lab/MELD sentiment=declare-lab/MELD

The folder is verified first (complete weights that match config.json, it loads, no symbolic link out of it).
The model card is generated unless a hand-edited README (no polyhead marker) is in the folder or on the branch;
--overwrite-readme replaces it. The commit also deletes the branch's files of the kinds publishing uploads that the
folder lacks (an earlier model's onnx/ graphs, weights files, reports of tasks it no longer has), and says which.
--results DIR publishes an evaluation of the model (the folder scripts/evaluate_model.py wrote, by default
MODEL/eval-test) instead of the folder's results.json and reports; it must have evaluated this folder's weights (an
evaluation of other weights is refused). The folder's serving.json (the pick of scripts/benchmark.py --choose MODEL
--write), which the endpoint's handler.py serves, is published with the model and named in the summary: delete it
before publishing to leave it out, or choose again on hardware like the endpoint's. --dry-run writes the upload
into a new folder, atomically, and makes no network call (the branch is not read: neither a hand-edited README on it
nor the files the commit would delete are checked). For a server other than huggingface.co use
--endpoint URL (and HF_HUB_DISABLE_XET=1 if it has no Xet storage). --base-model and --datasets name the encoder
and the data in the card's metadata: Hub ids, a malformed one refused like a malformed --repo-id, before anything is
written. --space ORG/NAME also publishes a live demo of the model (a Gradio Space, see scripts/make_space.py) pinned
to the new commit, in one commit to that Space (needs `polyhead[space]`); with --dry-run the Space is written to
DIR-space instead.
"""

import argparse
import json
import sys

from polyhead.publishing.model_card import MultitaskCardData
from polyhead.publishing.upload import HUB_ERRORS, PublishError, PublishResult, publish_model
from polyhead.run_folder import RESULTS_FILE
from polyhead.serving.settings import SETTINGS_FILE


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", help="A model folder written by polyhead (save_model_folder / scripts/train.py).")
    parser.add_argument(
        "--repo-id", required=True, help="Target repo, org/name (a bare name: your own namespace, from whoami)."
    )
    parser.add_argument(
        "--private",
        action="store_true",
        help="Create the repo private (an existing repo keeps its visibility: a public one is named in a warning).",
    )
    parser.add_argument("--branch", default="main", help="Target branch, created from main when missing.")
    parser.add_argument("--message", default=None, help="Commit message.")
    parser.add_argument(
        "--dry-run", metavar="DIR", default=None, help="Write the exact upload to DIR; upload nothing."
    )
    parser.add_argument("--overwrite-readme", action="store_true", help="Replace a hand-edited README by the card.")
    parser.add_argument(
        "--results",
        metavar="DIR",
        default=None,
        help="An evaluation of the model (scripts/evaluate_model.py's output folder, by default MODEL/eval-test): "
        f"its {RESULTS_FILE} and reports are published instead of the folder's.",
    )
    parser.add_argument("--endpoint", default=None, help="Hub URL (default: HF_ENDPOINT or huggingface.co).")
    parser.add_argument("--token", default=None, help="Hub token (default: the logged-in one).")
    parser.add_argument("--license", default="apache-2.0", help="License of the model card metadata.")
    parser.add_argument("--language", nargs="+", default=["en"], help="Language codes of the model card metadata.")
    parser.add_argument("--widget-text", nargs="+", default=[], help="Example texts for the card's widget.")
    parser.add_argument(
        "--base-model",
        default=None,
        help="Hub id of the pretrained encoder (default: the one training recorded, also for a local encoder folder "
        "whose own metadata names it).",
    )
    parser.add_argument(
        "--datasets",
        nargs="+",
        default=[],
        metavar="ID|TASK=ID",
        help="Hub dataset ids for the card metadata; TASK=ID also names that task's data source in the card.",
    )
    parser.add_argument(
        "--space",
        default=None,
        metavar="ORG/NAME",
        help="Also publish a Gradio Space demo of the model to this Space repo (one commit), pinned to the new commit",
    )
    return parser.parse_args(argv)


def card_data_from_args(args: argparse.Namespace) -> MultitaskCardData:
    """The card's user fields; `--datasets task=org/name` entries name a task's source."""
    task_datasets = dict(item.split("=", 1) for item in args.datasets if "=" in item)
    return MultitaskCardData(
        license=args.license,
        language=args.language,
        widget_texts=args.widget_text,
        base_model=args.base_model,
        datasets=[item for item in args.datasets if "=" not in item],
        task_datasets=task_datasets,
    )


def main(argv: list[str] | None = None) -> PublishResult:
    args = parse_args(argv)
    card_data = card_data_from_args(args)
    if args.space:  # checked before the model is published: the Space's id, and gradio (the Space pins its version)
        from polyhead.space import SpaceError, check_space_id, installed_version

        try:
            check_space_id(args.space)
            installed_version("gradio")
        except SpaceError as error:
            sys.exit(f"error: {error} Nothing was published.")
    try:
        result = publish_model(
            args.folder,
            args.repo_id,
            private=args.private,
            branch=args.branch,
            commit_message=args.message,
            token=args.token,
            endpoint=args.endpoint,
            overwrite_readme=args.overwrite_readme,
            dry_run_dir=args.dry_run,
            card_data=card_data,
            results_dir=args.results,
        )
    except (PublishError, FileNotFoundError, FileExistsError, ValueError) as error:
        sys.exit(f"error: {error}")
    if result.dry_run:
        print(f"Dry run: {len(result.files)} files staged in {args.dry_run} (README: {result.readme}).")
    else:
        print(f"Published {len(result.files)} files to {result.repo_id}@{result.branch}: {result.commit_url}")
    print("\n".join(f"  {name}" for name in result.files))
    if result.removed:
        print(f"Deleted {len(result.removed)} files of an earlier upload that this model lacks:")
        print("\n".join(f"  {name}" for name in result.removed))
    print(describe_serving(result, args.folder))
    if args.space:
        publish_demo(args, result)
    return result


def describe_serving(result: PublishResult, folder: str) -> str:
    """Which serving path the published endpoint handler runs: the published serving.json's pick, or its default."""
    if result.serving is None:
        return (
            f"Serving: no {SETTINGS_FILE} {'would be' if result.dry_run else 'was'} published, so the endpoint's "
            "handler.py serves onnx/model.onnx when it is published, else torch float32 (scripts/benchmark.py "
            "--choose MODEL --write picks one)."
        )
    pick = json.dumps({key: value for key, value in result.serving.items() if key not in ("chosen", "machine")})
    name = result.serving.get("chosen", "a serving path")
    machine = f" measured on {result.serving['machine']}" if "machine" in result.serving else ""
    state = "staged" if result.dry_run else "published"
    return (
        f"Serving: {SETTINGS_FILE} {state}, which picks {name} {pick}{machine}: the endpoint's handler.py serves it. "
        f"To leave it out, delete {folder.rstrip('/')}/{SETTINGS_FILE} before publishing, or choose again on "
        "hardware like the endpoint's."
    )


def publish_demo(args: argparse.Namespace, result: PublishResult) -> None:
    """The model's Space: written next to the dry-run folder, or published pinned to the model's new commit."""
    from polyhead.space import SpaceError, publish_model_space, write_space  # gradio's extra, only when asked

    try:
        if result.dry_run:
            out = write_space(args.folder, f"{args.dry_run.rstrip('/')}-space", repo_id=result.repo_id)
            print(f"Dry run: the Space is in {out}.")
            return
        _, url = publish_model_space(
            args.folder, args.space, result.repo_id, result.commit_oid, private=args.private, token=args.token,
            endpoint=args.endpoint,
        )  # fmt: skip
    except (SpaceError, ValueError, RuntimeError, *HUB_ERRORS) as error:  # any failure: the model is up (or staged)
        if result.dry_run:
            sys.exit(f"error: the dry run staged the model in {args.dry_run}, but not its Space: {error}")
        sys.exit(f"error: the model was published ({result.commit_url}), its Space was not: {error}")
    print(f"Published the Space {args.space}: {url}")


if __name__ == "__main__":
    main()
