"""The Gradio Space writer and publisher (polyhead.space, scripts/make_space.py, scripts/publish.py --space), and
the generated app's handlers called directly (bad input, truncation, batch mode against bulk prediction). The page
in a real browser: tests/test_space_browser.py."""

import importlib.util
import json
import logging
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from helpers import script_main
from huggingface_hub import HfApi, SpaceCard
from test_model_card import RESULTS

import polyhead.space
from polyhead import MultitaskModel
from polyhead.publishing.model_card import MultitaskCardData, write_model_card
from polyhead.remote_code import MULTI_LABEL, MULTIPLE_CHOICE, PIPELINE_TASK
from polyhead.saving import save_model_folder
from polyhead.serving.predict import predict_file
from polyhead.space import SPACE_FILES, SpaceError, metrics_table, publish_space, read_model, write_space
from polyhead.testing_utils import TINY_NLI_TASKS, TINY_TASKS, tiny_multitask_config, tiny_tokenizer


_hub_server = pytest.importorskip("hub_server", reason="tests/hub_server.py is missing")
ROOT = Path(__file__).resolve().parent.parent
# One model for every part of the page: a sentence-pair NLI task (so zero-shot), a single-label and a multi-label task.
SPACE_TASKS = {**TINY_NLI_TASKS, "emotions": TINY_TASKS["emotions"]}
EXAMPLES = ["i love this movie", "the team win the game today"]
SPACE_RESULTS = {
    "tasks": {
        "nli": {"accuracy": 0.5, "f1_macro": 0.45},
        "topic": RESULTS["tasks"]["topic"],
        "emotions": {"f1_micro": 0.61, "f1_macro": 0.5},
    },
    "primary_metrics": {"nli": "accuracy", "topic": "f1_macro", "emotions": "f1_micro"},
    "majority_baseline": {"topic": {"f1_macro": 0.1}},
    "split": "test",
}


def save_space_model(folder: Path) -> Path:
    """A tiny random model with `SPACE_TASKS`, its results and a generated card whose widget holds `EXAMPLES`."""
    torch.manual_seed(0)
    model = MultitaskModel(tiny_multitask_config(tasks=SPACE_TASKS)).eval()

    def extra(tmp):
        (tmp / "results.json").write_text(json.dumps(SPACE_RESULTS), encoding="utf-8")

    save_model_folder(model, tiny_tokenizer(), folder, extra=extra)
    write_model_card(folder, repo_id="org/tiny-space", card_data=MultitaskCardData(widget_texts=EXAMPLES))
    return folder


@pytest.fixture(scope="module")
def space_model(tmp_path_factory):
    return save_space_model(tmp_path_factory.mktemp("space-model") / "model")


@pytest.fixture(scope="module")
def space_dir(space_model, tmp_path_factory):
    return write_space(space_model, tmp_path_factory.mktemp("spaces") / "space")


def load_app_module(path: Path):
    """An app.py as a module (its page is not launched)."""
    spec = importlib.util.spec_from_file_location("polyhead_space_app", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def app(space_dir):
    """The generated app.py as a module."""
    pytest.importorskip("gradio", reason="gradio is not installed: pip install 'polyhead[space]'")
    return load_app_module(space_dir / "app.py")


@pytest.fixture(scope="module")
def classifier(app, space_dir):
    settings = app.load_settings(space_dir / "space_config.json")
    return app.load_classifier(settings["model"], settings.get("revision"))


def test_local_space_files_and_metadata(space_dir, space_model):
    assert sorted(p.name for p in space_dir.iterdir()) == sorted(SPACE_FILES)
    assert (space_dir / "app.py").read_bytes() == (ROOT / "polyhead" / "space" / "app.py").read_bytes()
    config = json.loads((space_dir / "space_config.json").read_text(encoding="utf-8"))
    assert config["model"] == str(space_model.resolve()) and config["local"] and config["revision"] is None
    assert config["examples"] == EXAMPLES  # the card's widget texts
    assert "| `topic` | F1 (macro) | 0.6833 | 0.1000 |" in config["metrics_table"]
    data = SpaceCard.load(space_dir / "README.md").data
    assert (data.sdk, data.app_file, data.models) == ("gradio", "app.py", None)  # no Hub repo named
    import gradio  # noqa: PLC0415 (the extra: the metadata pins the installed gradio)

    assert data.sdk_version == gradio.__version__
    requirements = (space_dir / "requirements.txt").read_text(encoding="utf-8").split()
    assert [line.split("==")[0] for line in requirements] == ["torch", "transformers", "pandas"]
    assert all("==" in line and line.split("==")[1][0].isdigit() for line in requirements)


def test_metrics_table_without_results_is_empty():
    assert metrics_table(None) == "" and metrics_table({"tasks": {}}) == ""


def test_not_a_polyhead_folder_is_refused_with_a_readable_message(tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text('{"model_type": "bert"}', encoding="utf-8")
    with pytest.raises(SpaceError, match="is not a polyhead model folder"):
        read_model(tmp_path / "model")
    with pytest.raises(SpaceError, match="neither a model folder nor a Hub repo id"):
        read_model(tmp_path / "missing" / "deeper")
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "make_space.py"), str(tmp_path / "model"), str(tmp_path / "space")],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 1 and out.stderr.startswith("error: ") and "Traceback" not in out.stderr
    assert "is not a polyhead model folder" in out.stderr and not (tmp_path / "space").exists()


def test_out_dir_is_never_clobbered(space_model, tmp_path):
    write_space(space_model, tmp_path / "space")
    with pytest.raises(SpaceError, match="--overwrite"):
        write_space(space_model, tmp_path / "space")
    write_space(space_model, tmp_path / "space", overwrite=True)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(SpaceError, match="not a Space's"):
        write_space(space_model, tmp_path / "other", overwrite=True)
    assert (tmp_path / "other" / "notes.txt").read_text(encoding="utf-8") == "mine"


def test_a_malformed_repo_id_for_the_metadata_is_refused_before_writing(space_model, tmp_path):
    with pytest.raises(SpaceError, match=r"--repo-id\) 'bad id' is not a valid Hub repo id .*org/name"):
        write_space(space_model, tmp_path / "space", repo_id="bad id")
    with pytest.raises(SystemExit) as failed:  # the CLI: one `error:` line, no traceback
        script_main("make_space")([str(space_model), str(tmp_path / "space"), "--repo-id", "org/a b"])
    assert str(failed.value.code).startswith("error: The model repo id for the Space metadata (--repo-id) 'org/a b'")
    assert not (tmp_path / "space").exists()  # nothing written, let alone the malformed id


def test_empty_example_texts_are_refused_before_writing(space_model, tmp_path):
    with pytest.raises(SystemExit) as failed:
        script_main("make_space")([str(space_model), str(tmp_path / "space"), "--examples", "fine", " "])
    assert str(failed.value.code).startswith("error: Example texts [1] (counted from 0) are empty or not strings")
    assert not (tmp_path / "space").exists()


# -- the Hub: a Space from a model repo, and publish.py --space ------------------------------------------------------


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    with _hub_server.serving(tmp_path_factory.mktemp("hub")) as server:
        yield server


def test_space_from_a_hub_repo_pins_its_commit(hub, space_model, tmp_path):
    api = HfApi(endpoint=hub.url, token="test-token")
    api.create_repo("org/tiny-space", private=True)  # read with the token
    commit = api.upload_folder(repo_id="org/tiny-space", folder_path=space_model).oid
    api.upload_file(repo_id="org/tiny-space", path_or_fileobj=b"later", path_in_repo="notes.txt")  # main moves on
    out = write_space("org/tiny-space", tmp_path / "space", revision=commit, endpoint=hub.url, token="test-token")
    config = json.loads((out / "space_config.json").read_text(encoding="utf-8"))
    assert (config["model"], config["revision"], config["local"]) == ("org/tiny-space", commit, False)
    assert config["examples"] == EXAMPLES and "`emotions`" in config["metrics_table"]
    assert SpaceCard.load(out / "README.md").data.models == ["org/tiny-space"]
    with pytest.raises(SpaceError, match="was not found"):
        write_space("org/missing", tmp_path / "other", endpoint=hub.url, token="test-token")


def test_publish_with_space_pushes_the_demo_in_one_commit(hub, space_model, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    import publish as publish_script  # noqa: PLC0415 (scripts/publish.py)

    result = publish_script.main(
        [str(space_model), "--repo-id", "org/published", "--space", "org/published-demo", "--endpoint", hub.url,
         "--token", "test-token"]
    )  # fmt: skip
    history = hub.commits("org/published-demo", repo_type="space")
    assert len(history) == 2  # the repo's initial commit, then the Space in one commit
    files = hub.files("org/published-demo", repo_type="space")
    assert sorted(name for name in files if name != ".gitattributes") == sorted(SPACE_FILES)
    path = tmp_path / "README.md"
    path.write_bytes(files["README.md"])
    data = SpaceCard.load(path).data
    assert (data.sdk, data.models, data.title) == ("gradio", ["org/published"], "published")
    config = json.loads(files["space_config.json"])
    assert (config["model"], config["revision"]) == ("org/published", result.commit_oid)  # pinned to the model
    assert config["examples"] == EXAMPLES and not config["local"]


def closed_port_url() -> str:
    """The URL of a local port that nobody listens on: every connection is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_make_space_from_a_malformed_or_unreachable_hub_model_is_one_line(hub, tmp_path):
    make_space = script_main("make_space")
    with pytest.raises(SystemExit) as failed:  # checked without a network call
        make_space(["org/bad name", str(tmp_path / "space"), "--endpoint", closed_port_url()])
    message = str(failed.value.code)
    assert message.startswith("error: org/bad name is neither a model folder") and "org/name" in message
    with pytest.raises(SystemExit) as failed:  # the Hub cannot be reached at all
        make_space(["org/tiny-space", str(tmp_path / "space"), "--endpoint", closed_port_url(), "--token", "t"])
    message = str(failed.value.code)
    assert message.startswith("error: Could not read model repo org/tiny-space from the Hub at http://127.0.0.1:")
    assert "--endpoint" in message and "\n" not in message and not (tmp_path / "space").exists()


@pytest.mark.parametrize("space_id", ["bad space id", "demo", "org/x--y"])
def test_publish_with_a_bad_space_id_publishes_nothing(hub, space_model, space_id):
    with pytest.raises(SystemExit) as failed:
        script_main("publish")(
            [str(space_model), "--repo-id", "org/bad-space", "--space", space_id, "--endpoint", hub.url, "--token",
             "test-token"]
        )  # fmt: skip
    message = str(failed.value.code)
    assert message.startswith(f"error: Space id {space_id!r} is not a valid Hub repo id") and "org/name" in message
    assert message.endswith("Nothing was published.")
    assert not HfApi(endpoint=hub.url, token="test-token").repo_exists("org/bad-space")  # the model was not uploaded
    with pytest.raises(SpaceError, match="is not a valid Hub repo id"):  # the library refuses it as well
        publish_space(space_model, space_id, endpoint=hub.url, token="test-token")


def test_a_space_that_fails_after_the_model_is_published_says_so(space_model, tmp_path, monkeypatch):
    publish_space_first = polyhead.space.publish_space
    with _hub_server.serving(tmp_path / "hub") as server:

        def server_gone(*args, **kwargs):  # the Hub goes away between the model's commit and the Space's
            server.stop()
            return publish_space_first(*args, **kwargs)

        monkeypatch.setattr(polyhead.space, "publish_space", server_gone)
        with pytest.raises(SystemExit) as failed:
            script_main("publish")(
                [str(space_model), "--repo-id", "org/gone", "--space", "org/gone-demo", "--endpoint", server.url,
                 "--token", "test-token"]
            )  # fmt: skip
        message = str(failed.value.code)
        model_commit = server.commits("org/gone")[0]
    assert message.startswith(f"error: the model was published ({server.url}/org/gone/commit/{model_commit})")
    assert "its Space was not: Publishing the Space org/gone-demo" in message and "\n" not in message
    assert ("space", "org/gone-demo") not in server.repos


# -- the generated app's handlers ------------------------------------------------------------------------------------


def test_app_constants_equal_the_configs(app):
    # app.py runs on a Space where polyhead is not installed: it keeps its own copies.
    assert (app.PIPELINE_TASK, app.MULTI_LABEL) == (PIPELINE_TASK, MULTI_LABEL)


def test_app_answers_equal_the_pipeline(app, classifier, space_model):
    from transformers import pipeline

    reference = pipeline(PIPELINE_TASK, model=str(space_model), trust_remote_code=True)
    values, note = app.classify(classifier, EXAMPLES[0], "", ["topic", "emotions"])
    expected = reference(EXAMPLES[0], tasks=["topic", "emotions"], top_k=None)
    assert note == "" and list(values) == ["topic", "emotions"]
    for task, answer in expected.items():
        assert list(values[task]) == [item["label"] for item in answer]
    values, _ = app.classify(classifier, "a man plays", "a person plays", ["nli"])
    best = reference({"text": "a man plays", "text_pair": "a person plays"}, tasks=["nli"])["nli"][0]["label"]
    assert next(iter(values["nli"])) == best
    scores, _ = app.zero_shot(classifier, "i love this movie", "movies, sport", "This is about {}.", False)
    expected = reference(
        "i love this movie", candidate_labels=["movies", "sport"], hypothesis_template="This is about {}."
    )
    assert list(scores) == expected["labels"]


@pytest.fixture(scope="module")
def bpe_classifier(app, tmp_path_factory):
    """A tiny RoBERTa model whose byte-level BPE tokenizer reads a leading space and a newline as tokens, with an NLI
    task (so zero-shot) and a topic task."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaTokenizerFast

    from polyhead.presets import WORDS
    from polyhead.remote_code import MultitaskConfig
    from polyhead.testing_utils import tiny_encoder_config

    bpe = ByteLevelBPETokenizer()
    specials = ["<pad>", "<unk>", "<s>", "</s>", "<mask>"]
    bpe.train_from_iterator([" ".join(WORDS)] * 10, vocab_size=400, special_tokens=specials, show_progress=False)
    folder = tmp_path_factory.mktemp("bpe-model")
    bpe.save_model(str(folder))
    merges = (folder / "merges.txt").read_text(encoding="utf-8").splitlines()[1:]  # after its "#version" line
    tokenizer = RobertaTokenizerFast(
        vocab=json.loads((folder / "vocab.json").read_text(encoding="utf-8")),
        merges=[tuple(line.split()) for line in merges if line], model_max_length=64,
        bos_token="<s>", eos_token="</s>", sep_token="</s>", cls_token="<s>", unk_token="<unk>", pad_token="<pad>",
        mask_token="<mask>",
    )  # fmt: skip
    tokens = tokenizer.tokenize(" i love\n")
    assert (tokens[0], tokens[-1]) == ("Ġ", "Ċ")  # a leading space and a newline are tokens
    torch.manual_seed(0)
    config = MultitaskConfig(encoder=tiny_encoder_config("roberta", vocab_size=len(tokenizer)), tasks=TINY_NLI_TASKS)
    model = MultitaskModel(config).eval()
    with torch.no_grad():
        for weight in model.heads.parameters():
            weight.mul_(20)  # scores far enough apart to show a token more or less
    save_model_folder(model, tokenizer, folder / "model")
    return app.load_classifier(str(folder / "model"), None)


def test_app_passes_the_text_as_typed_to_the_pipeline(app, bpe_classifier):
    # The Classify and Zero-shot tabs stripped the text (and the second text): on a byte-level BPE tokenizer their
    # scores differed from the pipeline's, the Batch tab's and predict.py's, which read the text as given.
    text, pair = " i love this movie\n", "the team win the game \n"

    def scores(answer):
        return {item["label"]: item["score"] for item in answer}

    both, both_stripped = {"text": text, "text_pair": pair}, {"text": text.strip(), "text_pair": pair.strip()}
    for second, inputs, as_stripped in (
        ("", text, text.strip()),
        ("  ", text, text.strip()),
        (pair, both, both_stripped),
    ):
        values, _ = app.classify(bpe_classifier, text, second, ["nli", "topic"])
        expected = bpe_classifier(inputs, tasks=["nli", "topic"], top_k=None)
        stripped = bpe_classifier(as_stripped, tasks=["nli", "topic"], top_k=None)
        for task in ("nli", "topic"):
            assert values[task] == pytest.approx(scores(expected[task]), abs=1e-6)
            assert values[task] != pytest.approx(scores(stripped[task]), abs=1e-4)  # the spaces count here
    zero_shot, _ = app.zero_shot(bpe_classifier, text, "movies, sport", "This is about {}.", False)
    expected = bpe_classifier(text, candidate_labels=["movies", "sport"], hypothesis_template="This is about {}.")
    stripped = bpe_classifier(
        text.strip(), candidate_labels=["movies", "sport"], hypothesis_template="This is about {}."
    )
    assert zero_shot == pytest.approx(dict(zip(expected["labels"], expected["scores"])), abs=1e-6)
    assert zero_shot != pytest.approx(dict(zip(stripped["labels"], stripped["scores"])), abs=1e-4)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda app, c: app.classify(c, "   ", "", ["topic"]), "The text is empty"),
        (lambda app, c: app.classify(c, "good", "", []), "No task is selected"),
        (lambda app, c: app.zero_shot(c, "good", " , ", "This is {}.", False), "No candidate labels"),
        (lambda app, c: app.zero_shot(c, "good", "a, b", "no slot", False), "has no '{}'"),
    ],
)
def test_app_bad_input_says_what_to_do(app, classifier, call, message):
    with pytest.raises(app.InputError, match=message):
        call(app, classifier)
    assert message in app._shown(app.InputError(message))


def test_app_says_when_the_text_was_truncated(app, classifier):
    limit = app.token_limit(classifier)
    values, note = app.classify(classifier, "good " * (limit + 20), "", ["topic"])
    assert f"only the first {limit}" in note and "truncated" in note and values["topic"]


def test_app_refuses_a_folder_that_is_not_a_polyhead_model(app, tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "bert"}', encoding="utf-8")
    with pytest.raises(app.InputError, match="is not a polyhead multitask model"):
        app.load_classifier(str(tmp_path), None)
    with pytest.raises(app.InputError, match="Could not load a model"):
        app.load_classifier(str(tmp_path / "missing"), None)


def test_app_batch_mode_matches_bulk_prediction(app, classifier, space_model, tmp_path):
    texts = ["i love this movie", "bad phone", "the team win the game today and people are happy"] * 30
    pd.DataFrame({"id": range(len(texts)), "text": texts}).to_csv(tmp_path / "in.csv", index=False)
    frame = app.read_csv(classifier, str(tmp_path / "in.csv"), "text", "")
    predicted = app.predict_frame(classifier, frame, "text", "")
    bulk = predict_file(space_model, tmp_path / "in.csv", tmp_path / "bulk.jsonl", progress=False)
    expected = pd.read_json(bulk.output, lines=True)
    assert list(predicted["topic"]) == list(expected["topic"])
    assert predicted["topic_score"].tolist() == pytest.approx(expected["topic_score"].tolist(), abs=1e-5)
    assert [json.loads(x) for x in predicted["emotions"]] == expected["emotions"].tolist()
    with pytest.raises(app.InputError, match=r"no column 'sentence' \(its columns: 'id', 'text'\)"):
        app.read_csv(classifier, str(tmp_path / "in.csv"), "sentence", "")
    pd.DataFrame({"id": [0, 1, 2], "text": ["fine", " ", ""]}).to_csv(tmp_path / "blank.csv", index=False)
    with pytest.raises(app.InputError, match=r"Column 'text' has missing, non-text or empty values at rows \[1, 2\]"):
        app.read_csv(classifier, str(tmp_path / "blank.csv"), "text", "")


def test_publish_dry_run_with_space_writes_it_next_to_the_preview(space_model, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    import publish as publish_script  # noqa: PLC0415 (scripts/publish.py)

    preview = tmp_path / "preview"
    publish_script.main([str(space_model), "--repo-id", "org/x", "--space", "org/x-demo", "--dry-run", str(preview)])
    assert (preview / "config.json").is_file()
    config = json.loads((tmp_path / "preview-space" / "space_config.json").read_text(encoding="utf-8"))
    assert config["local"] and config["model"] == str(space_model.resolve())  # nothing published: the local folder
    assert SpaceCard.load(tmp_path / "preview-space" / "README.md").data.models == ["org/x"]


def test_a_dry_run_whose_space_fails_does_not_claim_a_publish(space_model, tmp_path):
    (tmp_path / "preview-space").mkdir()
    (tmp_path / "preview-space" / "notes.txt").write_text("mine", encoding="utf-8")  # not a Space's folder
    with pytest.raises(SystemExit) as failed:
        script_main("publish")(
            [str(space_model), "--repo-id", "org/x", "--space", "org/x-demo", "--dry-run", str(tmp_path / "preview")]
        )
    message = str(failed.value.code)
    assert message.startswith(f"error: the dry run staged the model in {tmp_path / 'preview'}, but not its Space")
    assert "published" not in message and "not a Space's" in message


# -- multiple-choice tasks, CSV columns, local folders --------------------------------------------------------------


def page_parts(demo, kind):
    """The page's components of one gradio type, in page order."""
    return [block for block in demo.blocks.values() if type(block).__name__ == kind]


def page_handler(demo, name):
    """The page's event handler called `name` (e.g. `run`, `run_batch`), to call as the page does."""
    return next(function.fn for function in demo.fns.values() if function.fn.__name__ == name)


@pytest.fixture(scope="module")
def mc_classifier(app, tmp_path_factory):
    """A model with a topic task, a multi-label task and a multiple-choice task (which needs answer choices)."""
    torch.manual_seed(0)
    tasks = {"topic": TINY_TASKS["topic"], "emotions": TINY_TASKS["emotions"], "mc": {"problem_type": MULTIPLE_CHOICE}}
    folder = tmp_path_factory.mktemp("mc-model") / "model"
    save_model_folder(MultitaskModel(tiny_multitask_config(tasks=tasks)).eval(), tiny_tokenizer(), folder)
    return app.load_classifier(str(folder), None)


def test_app_leaves_multiple_choice_tasks_out_and_says_so(app, mc_classifier, tmp_path):
    demo = app.build_app(mc_classifier, {"title": "mixed"})
    (chosen,) = page_parts(demo, "CheckboxGroup")
    assert chosen.value == ["topic", "emotions"] and [value for _, value in chosen.choices] == ["topic", "emotions"]
    assert [label.label.split()[0] for label in page_parts(demo, "Label")] == ["topic", "emotions"]
    note = next(block.value for block in page_parts(demo, "Markdown") if block.elem_id == "left-out")
    assert "`mc`" in note and "multiple-choice" in note and "choices" in note
    status, *charts = page_handler(demo, "run")("i love this movie", "", chosen.value)  # the default selection
    assert status == "" and all(chart["value"] for chart in charts)
    with pytest.raises(app.InputError, match=r"\['mc'\] are multiple-choice: they need answer choices"):
        app.classify(mc_classifier, "i love this movie", "", ["topic", "mc"])
    pd.DataFrame({"text": ["i love this movie", "bad phone"]}).to_csv(tmp_path / "in.csv", index=False)
    status, out = page_handler(demo, "run_batch")(str(tmp_path / "in.csv"), "text", "")
    assert status.startswith("2 rows predicted")
    assert list(pd.read_csv(out).columns) == ["text", "topic", "topic_score", "emotions", "emotions_score"]


def test_app_of_a_model_with_only_multiple_choice_tasks_says_so(app, tmp_path):
    folder = tmp_path / "model"
    config = tiny_multitask_config(tasks={"mc": {"problem_type": MULTIPLE_CHOICE}})
    save_model_folder(MultitaskModel(config).eval(), tiny_tokenizer(), folder)
    with pytest.raises(app.InputError, match=r"Every task of this model is multiple-choice \(\['mc'\]\)"):
        app.build_app(app.load_classifier(str(folder), None), {"title": "choices"})
    # make_space refuses it before writing a Space with nothing to show
    with pytest.raises(SpaceError, match=r"Every task of .*model is multiple-choice \(\['mc'\]\).*pipeline"):
        write_space(folder, tmp_path / "space")
    assert not (tmp_path / "space").exists()


def test_app_batch_without_a_text_column_name_lists_the_columns(app, classifier, tmp_path):
    pd.DataFrame({"id": [0], "sentence": ["fine"]}).to_csv(tmp_path / "in.csv", index=False)
    with pytest.raises(app.InputError, match=r"No text column named: .* \(the CSV's columns: 'id', 'sentence'\)"):
        app.read_csv(classifier, str(tmp_path / "in.csv"), "", "")


def batch_refusal(app, classifier, path: Path, text_column: str, pair_column: str = "") -> str:
    """The page's Batch answer to an upload that must be refused: its message (no predictions file)."""
    status, out = page_handler(app.build_app(classifier, {"title": "batch"}), "run_batch")(
        str(path), text_column, pair_column
    )
    assert status.startswith("**Error:** ") and out is None, status
    return status.removeprefix("**Error:** ")


def predict_refusal(space_model, path: Path, tmp_path: Path, **options) -> str:
    """scripts/predict.py's (predict_file's) message for the same file, without its path prefix."""
    with pytest.raises(ValueError) as refused:
        predict_file(space_model, path, tmp_path / "out.jsonl", progress=False, **options)
    assert not (tmp_path / "out.jsonl").exists()
    return str(refused.value).removeprefix(f"{path}: ")


def test_app_batch_refuses_an_empty_second_text_as_predict_does(app, classifier, space_model, tmp_path):
    # The page predicted a row with an empty or blank second-text cell as one text, while predict.py (and the
    # pipeline, {"text_pair": ""}) refuse it: now one rule, the model's check_text_rows, refuses it in both.
    texts = [f"a man plays game {i}" for i in range(5)]
    pd.DataFrame({"text": texts, "pair": ["a person plays", "ok", "", "   ", "fine"]}).to_csv(
        tmp_path / "in.csv", index=False
    )
    shown = batch_refusal(app, classifier, tmp_path / "in.csv", "text", "pair")
    assert shown == (
        "Column 'pair' has missing, non-text or empty values at rows [2, 3] (0-based data rows): drop or fill those "
        "rows."
    )
    by_predict = predict_refusal(space_model, tmp_path / "in.csv", tmp_path, text_pair_column="pair")
    assert by_predict == "c" + shown[1:]
    # The Classify tab's second-text box left blank still means one text (a choice of the page, documented).
    alone, _ = app.classify(classifier, texts[2], "  ", ["nli", "topic"])
    assert alone == app.classify(classifier, texts[2], "", ["nli", "topic"])[0]


def test_app_batch_refuses_a_first_row_with_an_extra_field_as_predict_does(app, classifier, space_model, tmp_path):
    # pandas made the first column the index: the page predicted " really" and "2" and its file lost the texts.
    path = tmp_path / "extra.csv"
    path.write_text("text,id\ni love this movie, really,1\nthe phone is bad,2\n", encoding="utf-8")
    shown = batch_refusal(app, classifier, path, "text")
    assert shown == (
        "extra.csv: the first data row has 3 fields but the header names 2 ['text', 'id'] (a trailing comma, or a "
        "comma in an unquoted text?): remove the extra field, or quote the text."
    )
    assert predict_refusal(space_model, path, tmp_path) == shown.removeprefix("extra.csv: ")


def test_app_batch_refuses_a_file_that_is_not_utf8_csv(app, classifier, tmp_path):
    # A lone surrogate cannot come from a CSV (its bytes are not UTF-8): the page names the fix, as predict.py does.
    (tmp_path / "bad.csv").write_bytes(b"text,id\nbad \xed\xa0\x80 text,1\nok,2\n")
    shown = batch_refusal(app, classifier, tmp_path / "bad.csv", "text")
    assert shown.startswith("bad.csv is not UTF-8 text (") and shown.endswith("): save it as UTF-8.")
    # A JSON Lines file read as CSV made a column of each line's text: the page takes CSV only.
    (tmp_path / "in.jsonl").write_text('{"text": "bad \\ud800 text"}\n{"text": "ok"}\n', encoding="utf-8")
    shown = batch_refusal(app, classifier, tmp_path / "in.jsonl", "text")
    assert shown.startswith("in.jsonl is not a .csv file: this page reads CSV files only")


@pytest.mark.parametrize("options", [["--revision", "main"], ["--endpoint", "http://127.0.0.1:9"], ["--token", "t"]])
def test_make_space_refuses_hub_options_for_a_local_folder(space_model, tmp_path, options):
    with pytest.raises(SystemExit) as failed:
        script_main("make_space")([str(space_model), str(tmp_path / "space"), *options])
    message = str(failed.value.code)
    assert message.startswith(f"error: {space_model} is a local model folder: {options[0]} is for a Hub model")
    assert "org/name" in message and "\n" not in message and not (tmp_path / "space").exists()


def test_a_local_folder_space_warns_and_its_page_says_when_the_folder_is_gone(app, space_model, tmp_path, caplog):
    model = shutil.copytree(space_model, tmp_path / "model")
    with caplog.at_level(logging.WARNING, logger="polyhead.space"):
        space = write_space(model, tmp_path / "space", repo_id="org/x")
    assert "runs only where that folder is" in caplog.text and "make_space.py org/x DIR" in caplog.text
    shutil.rmtree(model)  # as on a Space uploaded with `hf upload`: the folder is not there
    page = load_app_module(space / "app.py")
    shown = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(page.gr.Blocks, "launch", lambda demo, **kwargs: shown.append(demo))
        page.main()
    (status,) = page_parts(shown[0], "Markdown")
    assert f"The local model folder {model} no longer exists" in status.value
    assert "`python scripts/make_space.py org/x DIR`" in status.value and "Repo id must be" not in status.value
