"""Writes a Gradio Space (a live demo page) for a multitask model: app.py, space_config.json, requirements.txt and
README.md with the Space metadata.

    python scripts/make_space.py org/tweets-multitask outputs/space          # a Hub model, pinned to its commit
    python scripts/make_space.py outputs/demo-model outputs/space            # a local folder: runs offline, here only
    cd outputs/space && python app.py                                        # the page on http://127.0.0.1:7860

Upload it with `hf upload --repo-type space org/name outputs/space`, or publish the model and its
Space in one go with `scripts/publish.py MODEL_FOLDER --repo-id org/model --space org/model-demo`. Needs
`pip install 'polyhead[space]'` (gradio).
"""

import argparse
import sys

from polyhead.space import SpaceError, SpaceSettings, write_space


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="A polyhead model folder, or a Hub model repo id (org/name).")
    parser.add_argument("out_dir", help="A new or empty folder for the Space's files.")
    parser.add_argument(
        "--revision", default=None, help="Hub branch, tag or commit (pinned to its commit); a Hub model only."
    )
    parser.add_argument(
        "--repo-id", default=None, help="For a local folder: the Hub repo named in the Space metadata (models:)."
    )
    parser.add_argument("--title", default=None, help="Page and Space title (default: the model's name).")
    parser.add_argument("--emoji", default="🏷️", help="The Space's emoji on the Hub.")
    parser.add_argument("--description", default=None, help="A line under the title.")
    parser.add_argument(
        "--examples", nargs="+", default=None, help="Example texts (default: the model card's widget texts)."
    )
    parser.add_argument("--license", default="apache-2.0", help="The Space's license.")
    parser.add_argument("--endpoint", default=None, help="Hub URL (default: HF_ENDPOINT or huggingface.co).")
    parser.add_argument("--token", default=None, help="Hub token (default: the logged-in one).")
    parser.add_argument("--overwrite", action="store_true", help="Replace an earlier Space in OUT_DIR.")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        settings = SpaceSettings(
            title=args.title,
            emoji=args.emoji,
            description=args.description,
            examples=args.examples,
            license=args.license,
        )
        out = write_space(
            args.model,
            args.out_dir,
            settings,
            revision=args.revision,
            repo_id=args.repo_id,
            endpoint=args.endpoint,
            token=args.token,
            overwrite=args.overwrite,
        )
    except SpaceError as error:
        sys.exit(f"error: {error}")
    print(f"Space written to {out}: run it with `cd {out} && python app.py`.")


if __name__ == "__main__":
    main()
