"""The model card: golden rendering from fixed inputs, YAML round trip, optional sections, real widget answers."""

import copy
import json
import os
import socket
from pathlib import Path

import pytest
import yaml
from helpers import BASELINES, RESULTS, SINGLE_METRICS, TRAINING_ARGS, _task_spec
from huggingface_hub import ModelCard
from transformers import pipeline

from polyhead.publishing.model_card import (
    GENERATED_MARKER,
    MultitaskCardData,
    encoder_hub_id,
    flatten_prediction,
    is_generated_card,
    render_model_card,
    write_model_card,
)
from polyhead.remote_code import MULTIPLE_CHOICE, MultitaskModel
from polyhead.run_folder import write_results
from polyhead.saving import save_model_folder
from polyhead.serving.inference import pipeline_answers, predict_widget
from polyhead.testing_utils import TINY_NLI_TASKS, TINY_TASKS, tiny_multitask_config, tiny_tokenizer


GOLDEN = Path(__file__).parent / "golden" / "model_card.md"
WIDGET = [
    {
        "text": 'the team win the "big" game today',
        "output": {
            "sentiment": [{"label": "positive", "score": 0.91234}],
            "topic": [{"label": "sport", "score": 0.87}],
            "emotions": [{"label": "joy", "score": 0.7712}, {"label": "fear", "score": 0.41}],
        },
    },
    {
        "text": "bad phone",
        "output": {
            "sentiment": [{"label": "negative", "score": 0.8}],
            "topic": [{"label": "tech", "score": 0.66}],
            "emotions": [],
        },
    },
]
VERSIONS = {"Python": "3.11.9", "polyhead": "0.1.0", "transformers": "5.23.0", "torch": "2.7.0"}
IMAGES = ["confusion_matrix_emotions.png", "confusion_matrix_sentiment.png", "confusion_matrix_topic.png"]


def render(**overrides):
    kwargs = {
        "config": {"tasks": TINY_TASKS},
        "results": RESULTS,
        "training_args": TRAINING_ARGS,
        "repo_id": "polyhead/tiny-multitask",
        "revision": "v1.0",
        "card_data": MultitaskCardData(license="mit", language=["en", "fr"], datasets=["org/extra"]),
        "baseline_results": BASELINES,
        "widget": WIDGET,
        "images": IMAGES,
        "versions": VERSIONS,
    }
    kwargs.update(overrides)
    return render_model_card(kwargs.pop("config"), kwargs.pop("results"), kwargs.pop("training_args"), **kwargs)


def test_card_matches_golden_file():
    text = render()
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(text, encoding="utf-8")
    assert text == GOLDEN.read_text(encoding="utf-8"), (
        "regenerate with UPDATE_GOLDEN=1 pytest tests/test_model_card.py"
    )


def test_metadata_parses_back_with_one_result_per_task_and_metric(tmp_path):
    (tmp_path / "README.md").write_text(render(), encoding="utf-8")
    card = ModelCard.load(tmp_path / "README.md")
    data = card.data
    assert (data.library_name, data.pipeline_tag, data.license) == ("transformers", "text-classification", "mit")
    assert {"multitask", "text-classification", "custom_code"} <= set(data.tags)
    assert data.base_model == "google-bert/bert-base-uncased"
    assert data.datasets == ["org/extra", "org/tweet-sentiment"]  # in-memory and local data are not Hub ids
    results = data.eval_results
    assert len(results) == sum(len(metrics) for metrics in RESULTS["tasks"].values())
    for task, metrics in RESULTS["tasks"].items():
        mine = [r for r in results if r.dataset_config == task]
        assert len(mine) == len(metrics) and {r.dataset_split for r in mine} == {"test"}
        assert sorted(r.metric_value for r in mine) == sorted(round(v, 4) for v in metrics.values())
    assert {r.dataset_type for r in results if r.dataset_config == "sentiment"} == {"org/tweet-sentiment"}
    f1_micro = next(r for r in results if r.dataset_config == "emotions" and r.metric_name == "F1 (micro)")
    assert (f1_micro.metric_type, f1_micro.metric_config) == ("f1", "micro")
    header = yaml.safe_load(card.content.split("---")[1])
    assert header["widget"][0]["output"][2] == {"label": "emotions: joy", "score": 0.7712}
    assert len(header["model-index"][0]["results"]) == 3  # one entry per task: nothing merged


def test_optional_sections_are_left_out_when_their_inputs_are_missing():
    full = render()
    assert (
        "## Multitask vs single-task models" in full
        and "![Confusion matrix of topic](confusion_matrix_topic.png)" in full
    )
    bare = render(baseline_results=None, images=(), widget=None, training_args=None, versions=None)
    assert "single-task" not in bare and "Confusion matrices" not in bare and "### Hyperparameters" not in bare
    assert "widget:" not in bare and 'classifier("some text")' in bare and "- not recorded" in bare
    minimal = {"tasks": {"sentiment": SINGLE_METRICS}}
    text = render(results=minimal, baseline_results=None, training_args=None)
    assert "Average over tasks" not in text and "Majority-class baseline" not in text
    assert len(ModelCard(text).data.eval_results) == len(SINGLE_METRICS)


def test_rendering_needs_no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network access during rendering")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    assert render() == GOLDEN.read_text(encoding="utf-8")


def test_hub_card_fields_escape_text_and_keep_the_marker():
    text = render()
    assert is_generated_card(text) and GENERATED_MARKER in text
    assert 'classifier("the team win the \\"big\\" game today")' in text
    assert not is_generated_card("---\nlicense: mit\n---\n# My own card\n")


@pytest.fixture
def model_folder(model, tokenizer, tmp_path):
    def extra(folder):
        (folder / "results.json").write_text(json.dumps(RESULTS), encoding="utf-8")
        (folder / "training_args.json").write_text(json.dumps(TRAINING_ARGS), encoding="utf-8")
        (folder / "confusion_matrix_topic.png").write_bytes(b"\x89PNG\r\n\x1a\n")

    return save_model_folder(model, tokenizer, tmp_path / "model", extra=extra)


def test_written_card_widget_shows_the_real_pipeline_answers(model_folder, model, tokenizer, monkeypatch):
    texts = ["i love this movie", "the phone is bad and not good"]
    monkeypatch.setattr(socket.socket, "connect", lambda *a, **k: (_ for _ in ()).throw(OSError("network")))
    path = write_model_card(model_folder, repo_id="org/tiny", card_data=MultitaskCardData(widget_texts=texts))
    text = path.read_text(encoding="utf-8")
    header = yaml.safe_load(text.split("---")[1])
    classifier = pipeline("multitask-classification", model=model, tokenizer=tokenizer)
    for example, sentence in zip(header["widget"], texts):
        expected = flatten_prediction(classifier(sentence))
        assert example["text"] == sentence
        assert [item["label"] for item in example["output"]] == [item["label"] for item in expected]
        assert [item["score"] for item in example["output"]] == pytest.approx([i["score"] for i in expected], abs=1e-4)
    assert "confusion_matrix_topic.png" in text and "## Multitask vs single-task models" not in text
    assert "- transformers: " in text


def test_widget_answers_come_from_the_shared_inference_helper(model_folder, model, tokenizer):
    """The card's widget and the demo get their answers from polyhead.serving.inference: the pipeline's answer on
    each text, the same with this package's code and with the folder's own remote code."""
    texts = ["i love this movie", "the team win the game today"]
    classifier = pipeline("multitask-classification", model=model.eval(), tokenizer=tokenizer)
    widget = predict_widget(model_folder, texts)
    assert [example["text"] for example in widget] == texts
    remote = pipeline_answers(model_folder, texts, trust_remote_code=True)
    for example, answer, text in zip(widget, remote, texts, strict=True):
        expected = classifier(text)
        for output in (example["output"], answer):
            assert output.keys() == expected.keys()
            for task, labels in expected.items():
                assert [item["label"] for item in output[task]] == [item["label"] for item in labels]
                assert [i["score"] for i in output[task]] == pytest.approx([i["score"] for i in labels], abs=1e-5)


def test_write_keeps_a_hand_edited_readme_unless_asked(model_folder):
    readme = model_folder / "README.md"
    readme.write_text("# my own card\n", encoding="utf-8")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_model_card(model_folder, repo_id="org/tiny")
    assert readme.read_text() == "# my own card\n"
    write_model_card(model_folder, repo_id="org/tiny", overwrite=True)
    first = readme.read_text()
    assert is_generated_card(first)
    write_model_card(model_folder, repo_id="org/tiny", revision="v2")  # a generated card is regenerated freely
    assert 'revision="v2"' in readme.read_text()


def test_render_does_not_mutate_its_inputs():
    results, training_args, widget = copy.deepcopy(RESULTS), copy.deepcopy(TRAINING_ARGS), copy.deepcopy(WIDGET)
    card_data = MultitaskCardData(datasets=["org/extra"])
    render(results=results, training_args=training_args, widget=widget, card_data=card_data)
    assert (results, training_args, widget) == (RESULTS, TRAINING_ARGS, WIDGET)
    assert card_data.datasets == ["org/extra"] and card_data.repo_id is None


def test_data_table_tells_tasks_from_local_folders_and_shared_files_apart():
    def files(folder):
        return {split: f"/home/me/data/{folder}/{split}.jsonl" for split in ("train", "validation", "test")}

    training_args = {
        "model": {"encoder_name_or_path": "/home/me/encoders/minilm", "base_model": "org/minilm"},
        "data": {
            "tasks": [
                _task_spec("irony", data_files=files("tweet_irony")),
                _task_spec("emotion", data_files=files("meld"), text_column="utterance", label_column="emotion"),
                _task_spec("sentiment", data_files=files("meld"), text_column="utterance", label_column="sentiment"),
            ]
        },
    }
    tasks = {name: {"labels": ["a", "b"]} for name in ("irony", "emotion", "sentiment")}
    results = {"tasks": {name: SINGLE_METRICS for name in tasks}, "split": "test"}
    card = ModelCard(render_model_card({"tasks": tasks}, results, training_args, repo_id="org/m"))
    rows = {line.split(" | ")[0]: line for line in card.text.splitlines() if line.startswith("| `")}
    assert "local files in `tweet_irony/`: `train.jsonl`, `validation.jsonl`, `test.jsonl`" in rows["| `irony`"]
    assert "`meld/`" in rows["| `emotion`"] and "label column `emotion`" in rows["| `emotion`"]
    assert "text column `utterance`, label column `sentiment`" in rows["| `sentiment`"]
    assert "/home/me" not in card.text  # local paths stay local
    assert card.data.base_model == "org/minilm"  # recorded at training time from the local encoder's metadata


def test_card_data_names_base_model_and_task_datasets():
    card_data = MultitaskCardData(
        base_model="org/encoder", datasets=["org/extra"], task_datasets={"topic": "org/news-topics"}
    )
    card = ModelCard(render(card_data=card_data))
    assert card.data.base_model == "org/encoder"
    assert card.data.datasets == ["org/extra", "org/tweet-sentiment", "org/news-topics"]
    assert "| `topic` | [org/news-topics](https://huggingface.co/datasets/org/news-topics) |" in card.text
    with pytest.raises(ValueError, match="lacks"):
        render(card_data=MultitaskCardData(task_datasets={"nope": "org/x"}))


def test_encoder_hub_id_reads_a_local_encoders_own_metadata(tmp_path):
    assert encoder_hub_id("sentence-transformers/all-MiniLM-L6-v2") == "sentence-transformers/all-MiniLM-L6-v2"
    assert encoder_hub_id(tmp_path) is None and encoder_hub_id("tiny-random-bert") is None
    (tmp_path / "config.json").write_text(json.dumps({"_name_or_path": "nreimers/MiniLM-L6-H384-uncased"}))
    assert encoder_hub_id(tmp_path) == "nreimers/MiniLM-L6-H384-uncased"
    # A sentence-transformers card names the model itself; config.json holds the checkpoint it was tuned from.
    (tmp_path / "README.md").write_text(
        "---\nlicense: mit\n---\nmodel = SentenceTransformer('sentence-transformers/x-v2')"
    )
    assert encoder_hub_id(tmp_path) == "sentence-transformers/x-v2"
    (tmp_path / "README.md").write_text("---\nbase_model: org/base\n---\n# card\n")
    assert encoder_hub_id(tmp_path) == "org/base"
    (tmp_path / "config.json").write_text(json.dumps({"_name_or_path": str(tmp_path)}))  # a local path is no id
    (tmp_path / "README.md").unlink()
    assert encoder_hub_id(tmp_path) is None


def test_recorded_base_model_wins_over_an_encoder_path_that_looks_like_a_hub_id():
    local = {"encoder_name_or_path": "models/minilm", "base_model": None}  # a relative local folder, no metadata
    assert ModelCard(render(training_args={**TRAINING_ARGS, "model": local})).data.base_model is None
    legacy = {"encoder_name_or_path": "org/encoder"}  # training_args.json from before base_model was recorded
    assert ModelCard(render(training_args={**TRAINING_ARGS, "model": legacy})).data.base_model == "org/encoder"


def table_rows(text):
    """The body rows of every table in `text` as read by a CommonMark + GFM-tables parser: per row, its cells' inline
    tokens (a row split by a stray line break shows up as more rows, each with cells missing)."""
    import markdown_it

    rows, row, body = [], None, False
    for token in markdown_it.MarkdownIt("commonmark").enable("table").parse(text):
        if token.type in ("tbody_open", "tbody_close"):
            body = token.type == "tbody_open"
        elif token.type == "tr_open" and body:
            row = []
        elif token.type == "inline" and row is not None:
            row.append(token)
        elif token.type == "tr_close" and row is not None:
            rows.append(row)
            row = None
    return rows


def codes(cell):
    return [child.content for child in cell.children if child.type == "code_inline"]


def test_table_cells_keep_line_breaks_pipes_and_backticks_in_their_cell():
    labels = ["line\nbreak", "tick`s", "a|b", "`fenced`", "back\\slash"]
    text = "hello | there\nsecond line *not bold* `no code`"
    widget = [
        {"text": text, "output": {"odd": [{"label": "line\nbreak", "score": 0.7}, {"label": "tick`s", "score": 0.2}]}}
    ]
    training_args = {
        "data": {"tasks": [_task_spec("odd", dataset="org/data", dataset_config="cfg`x", label_column="lab|el")]}
    }
    results = {"tasks": {"odd": SINGLE_METRICS}, "split": "test"}
    card = render_model_card(
        {"tasks": {"odd": {"labels": labels}}}, results, training_args, repo_id="org/m", widget=widget
    )
    import markdown_it

    rows = table_rows(card)
    assert len(rows) == 1 + len(SINGLE_METRICS) + 1 + 1  # tasks, metrics, widget, data: no row split in two
    tasks_row, data_row = [row for row in rows if row[0].content == "`odd`"]
    # Every label verbatim in its code span (CommonMark reads a line break in a code span as a space).
    assert codes(tasks_row[3]) == ["line break", "tick`s", "a|b", "`fenced`", "back\\slash"]
    assert codes(data_row[1]) == ["cfg`x", "lab|el"]
    (widget_row,) = [row for row in rows if codes(row[1]) == ["odd"]]
    html = markdown_it.MarkdownIt("commonmark").renderer.renderInline(widget_row[0].children, {}, {})
    assert html == "hello | there<br>second line *not bold* `no code`"  # free text as written, the break kept
    assert codes(widget_row[2]) == ["line break", "tick`s"]
    # The YAML header is written by a YAML library: the same strings parse back.
    header = yaml.safe_load(card.split("---\n")[1])
    assert header["widget"][0]["text"] == text
    assert [item["label"] for item in header["widget"][0]["output"]] == ["odd: line\nbreak", "odd: tick`s"]
    assert ModelCard(card).data.to_dict()["widget"] == header["widget"]


@pytest.mark.parametrize(
    ("card_data", "match"),
    [
        (MultitaskCardData(base_model="bad model|x"), r"Base model 'bad model\|x' is not a valid Hub model id"),
        (MultitaskCardData(datasets=["not a dataset"]), "Dataset 'not a dataset' is not a valid Hub dataset id"),
        (
            MultitaskCardData(task_datasets={"topic": "org/x--y"}),
            r"Dataset 'org/x--y' \(for task 'topic'\) is not a valid Hub dataset id \(Cannot have -- .*org/name",
        ),
    ],
)
def test_card_data_refuses_ids_that_are_no_hub_ids(card_data, match):
    with pytest.raises(ValueError, match=match):  # the card would name and link a repo that cannot exist
        render(card_data=card_data)


def test_data_table_names_a_local_folder_given_as_dataset_by_its_name():
    training_args = copy.deepcopy(TRAINING_ARGS)
    training_args["data"]["tasks"][1] = _task_spec("topic", dataset="/home/me/data/spamonly")  # a local folder
    card = ModelCard(render(training_args=training_args))
    data = card.text.split("### Data")[1]
    assert "| `topic` | local files in `spamonly/` | 800 |" in data and "not recorded" not in data
    assert "/home/me" not in card.text and "spamonly" not in (card.data.datasets or [])
    # A relative folder reads like a Hub id (org/name): the run's record that it was local keeps it off the Hub.
    training_args["data"]["tasks"][1] = {**_task_spec("topic", dataset="data/spam"), "local_dataset": True}
    card = ModelCard(render(training_args=training_args))
    assert "| `topic` | local files in `spam/` | 800 |" in card.text.split("### Data")[1]
    assert "huggingface.co/datasets/data/spam" not in card.text and "data/spam" not in (card.data.datasets or [])


def test_tasks_the_results_do_not_score_are_named_and_why_after_a_continued_run():
    results = copy.deepcopy(RESULTS)
    del results["tasks"]["topic"], results["tasks"]["emotions"]
    training_args = copy.deepcopy(TRAINING_ARGS)
    training_args["model"]["init_from"] = "/home/me/runs/first/model"
    continued = render(results=results, training_args=training_args, baseline_results=None)
    assert "Not scored here: `topic`, `emotions` (2 of the model's 3 tasks). This run continued from a trained" in (
        continued
    )
    assert "retrained the shared encoder that their heads read" in continued and "/home/me" not in continued
    training_args["model"]["freeze_encoder"] = True  # the encoder did not change: only the missing scores are said
    frozen = render(results=results, training_args=training_args, baseline_results=None)
    assert "Not scored here: `topic`, `emotions`" in frozen and "retrained the shared encoder" not in frozen
    assert "Not scored here" not in render()  # every task scored: nothing to say


def test_baselines_of_another_split_are_not_compared():
    results = {**RESULTS, "split": "validation"}  # e.g. a later evaluation published with --results
    assert "## Multitask vs single-task models" not in render(results=results)
    assert "## Multitask vs single-task models" in render()


CHOICE_TASK = {"copa": {"problem_type": "multiple_choice"}}
PAIR_FIRST = {"nli": TINY_NLI_TASKS["nli"], **TINY_TASKS}


def _python_blocks(text):
    usage = text.split("## Usage", 1)[1]
    return [block.split("```", 1)[0] for block in usage.split("```python\n")[1:]]


@pytest.mark.parametrize(
    "tasks, options, shown",
    [
        ({**CHOICE_TASK, **TINY_TASKS}, {}, "sentiment"),  # multiple choice first: the first task answering a text
        ({**CHOICE_TASK, **TINY_TASKS}, {"task_embeddings": True}, "sentiment"),
        (PAIR_FIRST, {}, "sentiment"),  # a sentence-pair task first: a single-text task is preferred
        ({**CHOICE_TASK, "nli": TINY_NLI_TASKS["nli"]}, {}, "nli"),  # no single-text task: a pair input
        ({**CHOICE_TASK, "piqa": {"problem_type": "multiple_choice"}}, {}, "copa"),  # all multiple choice
    ],
    ids=["choice-first", "choice-first-embeddings", "pair-first", "choice-and-pair", "all-choice"],
)
def test_card_usage_snippets_run_on_the_saved_model_whatever_the_task_kinds(tmp_path, tasks, options, shown):
    """The usage section's code, executed against a tiny saved model of that shape: the model call names a task whose
    logits it produces (a multiple-choice task never answers a plain text) and the pipeline call answers."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    config = tiny_multitask_config(tasks=tasks, **options)
    folder = save_model_folder(MultitaskModel(config).eval(), tiny_tokenizer(), tmp_path / "model")
    text = render_model_card(config.to_dict(), {"tasks": {}}, repo_id="org/kinds")
    model_code, pipeline_code = _python_blocks(text)
    assert f'outputs.logits["{shown}"]' in model_code
    namespace = {}
    exec(model_code.replace('"org/kinds"', json.dumps(str(folder))), namespace)  # noqa: S102 (our own card's code)
    logits = namespace["outputs"].logits[shown]
    assert logits.shape[0] == 1 and logits.shape[-1] == (2 if shown in ("copa",) else len(tasks[shown]["labels"]))
    pipeline_code = pipeline_code.replace('"org/kinds"', json.dumps(str(folder)))
    last = pipeline_code.strip().splitlines()[-1]
    exec(pipeline_code.replace(last, f"answer = {last}"), namespace)  # noqa: S102
    assert shown in namespace["answer"]


def test_architecture_sentences_follow_shared_heads_task_embeddings_and_multiple_choice():
    tasks = {**CHOICE_TASK, "senta": TINY_TASKS["sentiment"], "sentb": TINY_TASKS["sentiment"], **TINY_TASKS}
    config = {"tasks": tasks, "shared_heads": {"senta": ["senta", "sentb"]}, "task_embeddings": True}
    training_args = copy.deepcopy(TRAINING_ARGS)
    training_args["model"].update(share_heads_by_labels=True, task_embeddings=True, task_embedding_dropout=0.1)
    text = render(config=config, training_args=training_args, widget=None)
    assert "Every task has its own head" not in text and "One forward pass answers every task" not in text
    assert "one classification head per task" not in text
    assert text.count("Tasks `senta` and `sentb` share one head (same labels).") == 2  # description and Tasks
    assert "Every other task has its own head on the shared encoder." in text
    assert "the encoder runs once per task" in text and "T tasks cost" in text
    assert "A multiple-choice task (`copa`) scores each choice" in text and "one encoder row per choice" in text
    assert "| Task | Problem type | Labels | Label names | Head |" in text
    assert (
        "| `sentb` | single-label (binary) | 2 | `negative`, `positive` | `senta` (shared by `senta`, `sentb`) |"
        in text
    )
    assert "| `topic` | single-label (multiclass) | 4 |" in text and text.split("| `topic` |")[1].split("\n")[
        0
    ].endswith("| own |")
    for row in (
        "| `share_heads_by_labels` | True |",
        "| `task_embeddings` | True |",
        "| `task_embedding_dropout` | 0.1 |",
    ):
        assert row in text
    # Without embeddings, multiple choice alone: the plain tasks still share one pass; each choice is one row.
    mixed = render(config={"tasks": {**CHOICE_TASK, **TINY_TASKS}}, widget=None)
    assert "One forward pass answers every task that takes a text or sentence pair." in mixed
    assert "one encoder row per choice" in mixed and "| Head |" not in mixed


def test_plain_card_keeps_its_architecture_wording_and_lists_no_unused_model_options():
    training_args = copy.deepcopy(TRAINING_ARGS)
    training_args["model"].update(share_heads_by_labels=False, task_embeddings=False, task_embedding_dropout=0.1)
    text = render(training_args=training_args)
    assert "Every task has its own head on the shared encoder; one forward pass answers all of them." in text
    assert "with one classification head per task (`sentiment`, `topic`, `emotions`). One forward pass" in text
    assert "share_heads_by_labels" not in text and "task_embedding" not in text and "| Head |" not in text


def test_a_model_of_multiple_choice_tasks_only_gets_a_card_without_a_widget(tmp_path):
    """No task answers a plain text, so there is no widget answer to compute (it raised inside the pipeline)."""
    config = tiny_multitask_config(tasks={"copa": {"problem_type": MULTIPLE_CHOICE}})
    folder = save_model_folder(MultitaskModel(config), tiny_tokenizer(), tmp_path / "mc")
    write_results({"tasks": {"copa": {"accuracy": 0.5}}, "split": "test", "num_examples": {"copa": 10}}, folder)
    assert predict_widget(folder, ["what a day"]) == []
    card = ModelCard(write_model_card(folder, repo_id="org/mc").read_text(encoding="utf-8"))
    assert "widget" not in card.data.to_dict() and '"choices": [' in card.text
