"""Evaluation: metrics match a hand computation, files are written, saved models score from the command line."""

import hashlib
import json
import shutil

import datasets
import numpy as np
import pytest
import torch
from helpers import script_main

from polyhead import MultitaskModel
from polyhead.data import MultitaskCollator, load_task_data, tokenize_task_data
from polyhead.evaluation.scoring import (
    evaluate_model,
    format_results_table,
    majority_predictions,
    predict_all_logits,
    predict_logits,
    score_task,
)
from polyhead.saving import save_model_folder
from polyhead.tasks import TaskSpec
from polyhead.testing_utils import tiny_multitask_config


SINGLE = {"labels": ["neg", "pos", "neutral"], "problem_type": "single_label_classification"}
MULTI = {"labels": ["a", "b"], "problem_type": "multi_label_classification", "threshold": 0.5}


def test_single_label_metrics_by_hand():
    logits = np.array([[3.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 1.0]])
    references = np.array([0, 1, 0, 2])  # predictions 0, 1, 1, 2
    results, predictions = score_task(SINGLE, logits, references)
    assert predictions.tolist() == [0, 1, 1, 2]
    # per class: neg P=1 R=.5 F1=2/3; pos P=.5 R=1 F1=2/3; neutral P=R=F1=1
    assert results["accuracy"] == pytest.approx(0.75)
    assert results["precision_macro"] == pytest.approx((1 + 0.5 + 1) / 3)
    assert results["recall_macro"] == pytest.approx((0.5 + 1 + 1) / 3)
    assert results["f1_macro"] == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)


def test_multi_label_metrics_by_hand():
    logits = np.array([[5.0, -5.0], [5.0, 5.0], [-5.0, -5.0]])  # predicted {a}, {a, b}, {}
    references = np.array([[1, 0], [1, 0], [0, 1]])
    results, _ = score_task(MULTI, logits, references)
    # a: tp=2 fp=0 fn=0; b: tp=0 fp=1 fn=1 -> micro P=2/3 R=2/3 F1=2/3; macro F1=(1+0)/2; exact match 1/3
    assert results["f1_micro"] == pytest.approx(2 / 3)
    assert results["f1_macro"] == pytest.approx(0.5)
    assert results["exact_match"] == pytest.approx(1 / 3)


def test_majority_predictions():
    assert majority_predictions("single_label_classification", [1, 1, 0], 3, 2).tolist() == [1, 1, 1]
    multi = majority_predictions("multi_label_classification", [[1, 0], [1, 0], [0, 1]], 2, 2)
    assert multi.tolist() == [[1, 0], [1, 0]]


@pytest.fixture
def scored(tmp_path, tokenizer):
    torch.manual_seed(0)
    model = MultitaskModel(tiny_multitask_config()).eval()
    texts = ["i love this movie", "bad phone", "the team win", "money and stock", "great game today", "sad news"]
    specs = [
        TaskSpec(
            "sentiment",
            dataset=datasets.Dataset.from_dict({"text": texts, "label": ["positive", "negative"] * 3}),
            labels=["negative", "positive"],
            test_size=0,  # scored on all of its rows (the train split): nothing held out
            validation_size=0,
        ),
        TaskSpec(
            "emotions",
            dataset=datasets.Dataset.from_dict({"text": texts, "label": [["joy"], [], ["fear", "joy"]] * 2}),
            labels=["anger", "fear", "joy", "sadness"],
            test_size=0,
            validation_size=0,
        ),
    ]
    data = load_task_data(specs)
    encoded = {name: tokenize_task_data(task, tokenizer)["train"] for name, task in data.items()}
    train_labels = {name: task.label_ids("train") for name, task in data.items()}
    results = evaluate_model(model, tokenizer, encoded, "test", 4, tmp_path / "eval", train_labels, progress=False)
    return model, tokenizer, encoded, results, tmp_path / "eval"


def test_evaluate_model_matches_hand_computation_and_writes_files(scored):
    model, tokenizer, encoded, results, folder = scored
    logits, labels = predict_logits(model, encoded["sentiment"], tokenizer, "sentiment", progress=False)
    accuracy = float((logits.argmax(-1) == labels).mean())
    assert results["tasks"]["sentiment"]["accuracy"] == pytest.approx(accuracy)
    assert results["average"]["primary"] == pytest.approx(
        (results["tasks"]["sentiment"]["f1_macro"] + results["tasks"]["emotions"]["f1_micro"]) / 2
    )
    assert results["num_examples"] == {"sentiment": 6, "emotions": 6} and results["split"] == "test"
    assert results["majority_baseline"]["sentiment"]["accuracy"] == pytest.approx(0.5)
    saved = json.loads((folder / "results.json").read_text())
    assert saved["tasks"] == results["tasks"]
    for task in ("sentiment", "emotions"):
        assert (folder / f"confusion_matrix_{task}.png").read_bytes()[:4] == b"\x89PNG"
        assert (folder / f"confusion_matrix_{task}.csv").read_text().count("\n") == 1 + len(
            model.config.task(task)["labels"]
        )
        assert "precision" in (folder / f"classification_report_{task}.txt").read_text()
    table = format_results_table(results)
    assert "sentiment" in table and "majority acc" in table


def per_task_logits(model, dataset, tokenizer, task, batch_size):
    """One DataLoader per task through `model.forward`: how evaluation ran before the one-pass evaluation."""
    columns = [c for c in ("input_ids", "attention_mask", "token_type_ids", "labels") if c in dataset.column_names]
    rows = dataset.select_columns(columns).add_column("task", [task] * len(dataset))
    loader = torch.utils.data.DataLoader(rows, batch_size=batch_size, collate_fn=MultitaskCollator(tokenizer))
    logits, labels = [], []
    with torch.no_grad():
        for batch in loader:
            labels.append(batch.pop("labels").numpy())
            logits.append(model(**batch).logits[task].numpy())
    return np.concatenate(logits), np.concatenate(labels)


def test_one_pass_logits_equal_per_task_logits_and_shared_texts_are_encoded_once(tokenizer):
    torch.manual_seed(0)
    tasks = {f"single{i}": {"labels": ["a", "b", "c"][: 2 + i % 2]} for i in range(4)}
    tasks.update({f"multi{i}": {**MULTI, "labels": ["x", "y", "z"]} for i in range(3)})
    tasks["pairs"] = dict(SINGLE)
    model = MultitaskModel(tiny_multitask_config(tasks=tasks)).eval()
    shared = ["i love this movie", "bad phone", "the team win the game today", "money", "sad news and bad day"]
    sets = {}
    for i, name in enumerate(tasks):
        texts = shared if i % 2 else shared[:3] + [f"{shared[3]} and {word}" for word in ("good", "bad", "sport")]
        if name == "pairs":
            encoded = tokenizer(texts, ["this is good"] * len(texts))  # token_type_ids 1 on the second text
        else:
            encoded = tokenizer(texts)
        multi = name.startswith("multi")
        labels = (
            [[float((i + j) % 2), 1.0, 0.0] for j in range(len(texts))]
            if multi
            else [j % 2 for j in range(len(texts))]
        )
        sets[name] = datasets.Dataset.from_dict({**encoded, "labels": labels})
    encoded_rows = []
    encode = model.encode
    model.encode = lambda **batch: encoded_rows.append(len(batch["input_ids"])) or encode(**batch)
    predicted = predict_all_logits(model, sets, tokenizer, batch_size=3, progress=False)
    model.encode = encode
    # 5 shared texts + 3 other texts + 5 pairs: each distinct input once, in batches that mix tasks
    assert sum(encoded_rows) == 13 and max(encoded_rows) == 3
    assert list(predicted) == list(sets)
    for name, dataset in sets.items():
        logits, labels = predicted[name]
        expected_logits, expected_labels = per_task_logits(model, dataset, tokenizer, name, batch_size=2)
        np.testing.assert_allclose(logits, expected_logits, atol=1e-5, rtol=0)
        assert labels.dtype == expected_labels.dtype and np.array_equal(labels, expected_labels)
        # one task alone, from a dataset formatted as torch tensors: the same
        alone, alone_labels = predict_logits(model, dataset.with_format("torch"), tokenizer, name, progress=False)
        np.testing.assert_allclose(alone, expected_logits, atol=1e-5, rtol=0)
        assert np.array_equal(alone_labels, expected_labels)


def test_evaluate_script_scores_a_saved_folder(scored, tmp_path):
    model, tokenizer, _, _, _ = scored
    folder = save_model_folder(model, tokenizer, tmp_path / "model")
    data = tmp_path / "data"
    data.mkdir()
    rows = [{"text": "i love this movie", "label": "positive"}, {"text": "bad phone", "label": "negative"}]
    (data / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (data / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    main = script_main("evaluate_model")
    threads = torch.get_num_threads()
    try:
        results = main(
            [str(folder), "--tasks", f"sentiment={data}", "--output_dir", str(tmp_path / "out"), "--num_threads", "1"]
        )
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
    assert results["num_examples"] == {"sentiment": 2}
    assert (tmp_path / "out" / "results.json").is_file()
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "test.jsonl").write_text(json.dumps({"text": "x", "label": "maybe"}) + "\n")
    with pytest.raises(SystemExit, match=r"^error: .*\['maybe'\].*not in its label map"):
        main([str(folder), "--tasks", f"sentiment={bad}"])


def test_evaluation_reads_each_task_as_the_models_head_does(scored, tmp_path, caplog):
    """The output folder may not be the model's (its training results.json), a pair head is not scored on single
    texts, `threshold=` is applied to a multi-label task, and a lone file that no training run read is scored whole
    (it was carved: 10% scored, with a hint about training)."""
    from polyhead.evaluation.scoring import evaluate_saved_model

    model, tokenizer, _, _, _ = scored
    folder = save_model_folder(model, tokenizer, tmp_path / "model")
    (folder / "results.json").write_text('{"tasks": {"trained": {}}}')
    texts = ["i love this movie", "bad phone", "the team win", "money and stock", "great game today", "sad news"]
    rows = [{"text": text, "label": ["positive", "negative"][i % 2]} for i, text in enumerate(texts * 5)]
    data = tmp_path / "sentiment.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(ValueError, match=r"output_dir '.*model' is a model folder: .* Leave output_dir out \(.*eval-"):
        evaluate_saved_model(folder, [f"sentiment={data}"], output_dir=folder)
    assert json.loads((folder / "results.json").read_text()) == {"tasks": {"trained": {}}}
    with caplog.at_level("WARNING", logger="polyhead.evaluation.scoring"):
        results = evaluate_saved_model(folder, [f"sentiment={data}"], output_dir=tmp_path / "whole")
    assert results["num_examples"] == {"sentiment": 30} and "held_out" not in results
    assert "sentiment.jsonl is scored whole as its 'test' split: the model folder records no train data" in caplog.text
    with pytest.raises(ValueError, match="head reads one text but the data gives pairs: drop text_pair="):
        evaluate_saved_model(folder, [f"sentiment={data}:text_pair=text"], output_dir=tmp_path / "pair")
    with pytest.raises(ValueError, match="problem_type=multi_label_classification but the model's head is single"):
        evaluate_saved_model(folder, [f"sentiment={data}:problem_type=multi_label_classification"])
    multi = tmp_path / "emotions.jsonl"
    multi.write_text(
        "".join(json.dumps({"text": t, "label": ["joy"] if i % 2 else []}) + "\n" for i, t in enumerate(texts))
    )
    scores = {
        threshold: evaluate_saved_model(folder, [f"emotions={multi}:threshold={threshold}"], output_dir=tmp_path / "t")
        for threshold in (0.01, 0.99)
    }
    assert scores[0.01]["tasks"]["emotions"] != scores[0.99]["tasks"]["emotions"]
    low = json.loads((tmp_path / "t" / "results.json").read_text())  # the 0.99 run: no label reaches it
    assert low["tasks"]["emotions"]["f1_micro"] == 0.0


def test_a_given_threshold_is_applied_even_when_it_equals_the_models_and_results_say_which(scored, tmp_path, capsys):
    """`threshold=` scores every label at that threshold, also when it equals the task threshold of a model with
    tuned per-label thresholds (they were used instead); results.json and the table say which thresholds were used."""
    model, tokenizer, _, _, _ = scored
    labels = model.config.task("emotions")["labels"]
    model.config.tasks["emotions"] = {**model.config.task("emotions"), "threshold": 0.01, "thresholds": [0.99] * 4}
    folder = save_model_folder(model, tokenizer, tmp_path / "model")
    texts = ["i love this movie", "bad phone", "the team win", "money and stock", "great game today", "sad news"]
    multi = tmp_path / "emotions.jsonl"
    multi.write_text("".join(json.dumps({"text": t, "label": ["joy", "fear"]}) + "\n" for t in texts))
    main = script_main("evaluate_model")
    tuned = main([str(folder), "--tasks", f"emotions={multi}", "--output_dir", str(tmp_path / "tuned")])
    assert tuned["tasks"]["emotions"]["f1_micro"] == 0.0  # no score reaches 0.99
    assert tuned["thresholds"]["emotions"] == {
        "from": "model",
        "threshold": 0.01,
        "per_label": dict.fromkeys(labels, 0.99),
    }
    assert "emotions: scored at the model's tuned per-label thresholds (0.99 to 0.99;" in capsys.readouterr().out
    given = main([str(folder), "--tasks", f"emotions={multi}:threshold=0.01", "--output_dir", str(tmp_path / "given")])
    assert given["tasks"]["emotions"] == tuned["untuned_thresholds"]["emotions"]  # every label at 0.01
    assert given["tasks"]["emotions"]["f1_micro"] > 0 and "untuned_thresholds" not in given
    assert given["thresholds"]["emotions"] == {"from": "evaluation", "threshold": 0.01}
    saved = json.loads((tmp_path / "given" / "results.json").read_text())
    assert saved["thresholds"] == given["thresholds"]
    assert "emotions: scored at threshold 0.01 for every label (threshold= given)" in capsys.readouterr().out


def test_evaluating_into_a_folder_removes_the_reports_it_does_not_rewrite(scored, caplog):
    """An earlier evaluation's reports of other tasks would read as this evaluation's, beside its results.json."""
    model, tokenizer, encoded, _, folder = scored
    (folder / "notes.txt").write_text("mine")
    reports = {"classification_report_{}.txt", "confusion_matrix_{}.png", "confusion_matrix_{}.csv"}
    assert {name.format("emotions") for name in reports} <= {path.name for path in folder.iterdir()}
    with caplog.at_level("WARNING", logger="polyhead.evaluation.scoring"):
        results = evaluate_model(model, tokenizer, {"sentiment": encoded["sentiment"]}, "validation", 4, folder)
    names = {path.name for path in folder.iterdir()}
    assert names == {"results.json", "notes.txt", *(name.format("sentiment") for name in reports)}
    assert json.loads((folder / "results.json").read_text())["tasks"] == results["tasks"]
    assert "removed the reports of an earlier evaluation that this one does not rewrite: ['classification_report" in (
        caplog.text
    )


def test_an_evaluation_records_the_weights_it_scored_of_a_folder_or_a_hub_model(scored, tmp_path, monkeypatch, caplog):
    """results.json fingerprints the weights scored (publishing refuses an evaluation of other weights): a folder's
    own, a Hub id's cached snapshot (what from_pretrained loaded), and nothing, without failing, when none is found."""
    from huggingface_hub import constants

    from polyhead.evaluation.scoring import evaluate_saved_model

    model, tokenizer, _, _, _ = scored
    folder = save_model_folder(model, tokenizer, tmp_path / "model")
    data = tmp_path / "data"
    data.mkdir()
    rows = [{"text": "i love this movie", "label": "positive"}, {"text": "bad phone", "label": "negative"}]
    for split in ("train", "test"):
        (data / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    weights = hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()  # what sha256sum prints
    results = evaluate_saved_model(folder, [f"sentiment={data}"], output_dir=tmp_path / "local")
    assert results["weights_sha256"] == weights
    assert json.loads((tmp_path / "local" / "results.json").read_text())["weights_sha256"] == weights

    # A Hub id, loaded offline from the cache: the snapshot's weights, the same bytes as the folder published.
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub-cache" / "models--org--tiny-evaluated"
    shutil.copytree(folder, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    hub = evaluate_saved_model("org/tiny-evaluated", [f"sentiment={data}"], output_dir=tmp_path / "hub")
    assert hub["model"] == "org/tiny-evaluated" and hub["weights_sha256"] == weights
    from polyhead.evaluation.scoring import scored_weights_sha256

    with caplog.at_level("WARNING", logger="polyhead.evaluation.scoring"):
        assert scored_weights_sha256("org/not-cached") is None  # nothing to fingerprint: recorded as such, no error
    assert "No weights of org/not-cached were found in the Hub cache" in caplog.text
