"""A newcomer's first run: one data file (or a folder with only train) gets validation and test splits carved from
its train rows; end-of-run tables work when some or no task is scored."""

import json
import random
import shutil
from collections import Counter
from pathlib import Path

import datasets
import numpy as np
import pytest
from helpers import script_main

from polyhead.data import carve_splits, held_out_rows, load_task_data
from polyhead.evaluation.scoring import evaluate_saved_model, format_results_table
from polyhead.publishing.model_card import render_model_card
from polyhead.run_folder import read_training_args
from polyhead.tasks import TaskSpec, parse_task
from polyhead.testing_utils import WORDS


def _rows(n, labels, seed=0, multi=False):
    # Unique texts (a row number in each), the label word in the text: learnable and traceable.
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = rng.choice(labels)
        text = " ".join([label, *rng.sample(WORDS, 3), f"row{i}"])
        rows.append({"text": text, "label": [label, rng.choice(labels)] if multi else label})
    return rows


def _write(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".csv":
        lines = ["text,label"] + [f"{row['text']},{row['label']}" for row in rows]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    else:
        path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def _train(tmp_path, capsys, *tasks, extra=()):
    output = tmp_path / "out"
    argv = ["--encoder_name_or_path", "tiny-random-bert", "--tasks", *tasks, "--output_dir", str(output)]
    argv += ["--num_train_epochs", "1", "--per_device_train_batch_size", "16", "--max_length", "16"]
    argv += ["--report_to", "none", "--save_strategy", "no", "--num_threads", "1", *extra]
    results = script_main("train")(argv)  # returns normally (exit status 0) or raises SystemExit
    return results["multitask"], output / "model", capsys.readouterr().out


def _texts(path: Path) -> list[str]:
    if path.suffix == ".csv":
        return [line.split(",")[0] for line in path.read_text(encoding="utf-8").splitlines()[1:]]
    return [json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines()]


def _check_carved(model_dir: Path, task: str, all_texts: list[str], sizes: dict[str, int], spec: TaskSpec):
    """The run's split sizes, and the carved rows (recomputed from the same data and seed) disjoint from training."""
    info = read_training_args(model_dir)
    recorded = {entry["name"]: entry for entry in info["data"]["tasks"]}[task]
    spec.test_size, spec.validation_size = recorded["test_size"], recorded["validation_size"]  # as the run resolved
    data = load_task_data([spec], split_seed=info["data"]["split_seed"])[task]
    texts = {role: list(dataset["text"]) for role, dataset in data.splits.items()}
    assert {role: len(values) for role, values in texts.items()} == sizes
    assert info["num_train_examples"][task] == sizes["train"]
    for role in set(texts) - {"train"}:
        assert not set(texts[role]) & set(texts["train"]), role
    assert sorted(sum(texts.values(), [])) == sorted(all_texts)  # nothing lost, nothing repeated


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_one_file_trains_scores_on_carved_splits_and_writes_a_card(tmp_path, capsys, suffix):
    path = _write(tmp_path / f"data{suffix}", _rows(100, ["good", "bad", "meh"]))
    results, model_dir, printed = _train(tmp_path, capsys, f"a={path}")
    held = results["held_out"]["a"]
    assert held["test"] == {"from": "train", "fraction": 0.1, "seed": 42, "rows": 10, "stratified": True}
    assert held["validation"]["rows"] == 9  # 10% of the 90 rows left after the test rows
    assert results["split"] == "test" and results["num_examples"] == {"a": 10}
    assert "accuracy" in results["tasks"]["a"] and "not scored" not in printed
    _check_carved(model_dir, "a", _texts(path), {"train": 81, "eval": 9, "test": 10}, parse_task(f"a={path}"))
    saved = json.loads((model_dir / "results.json").read_text())
    assert saved["held_out"] == results["held_out"]
    card = render_model_card(
        json.loads((model_dir / "config.json").read_text()), saved, read_training_args(model_dir), repo_id="org/m"
    )
    assert "held out: 10% of the train rows, seed 42, stratified by label" in card
    assert "| Accuracy |" in card and "## Evaluation" in card  # the metrics table of the scored task


def test_stratified_carving_keeps_each_label_share_and_is_reproducible():
    labels = ["a"] * 60 + ["b"] * 30 + ["c"] * 10
    kept, held = held_out_rows(100, 0.2, np.random.default_rng([42, 0]), labels)
    assert Counter(labels[i] for i in held) == {"a": 12, "b": 6, "c": 2}
    assert sorted(kept + held) == list(range(100))
    again = held_out_rows(100, 0.2, np.random.default_rng([42, 0]), labels)
    other = held_out_rows(100, 0.2, np.random.default_rng([43, 0]), labels)
    assert again == (kept, held) and other[1] != held


def test_folder_with_only_train_and_evaluation_scores_the_same_rows(tmp_path, capsys):
    folder = tmp_path / "task"
    path = _write(folder / "train.jsonl", _rows(60, ["x", "y"]))
    results, model_dir, _ = _train(tmp_path, capsys, f"t={folder}", extra=["--test_size", "0.2"])
    assert results["held_out"]["t"]["test"]["rows"] == 12 and results["num_examples"] == {"t": 12}
    _check_carved(model_dir, "t", _texts(path), {"train": 43, "eval": 5, "test": 12}, parse_task(f"t={folder}"))
    # A later evaluation run on the same data carves the same rows with the run's recorded fraction and seed.
    again = evaluate_saved_model(model_dir, [f"t={folder}"], output_dir=tmp_path / "eval")
    assert again["num_examples"] == {"t": 12} and again["held_out"]["t"]["test"] == results["held_out"]["t"]["test"]
    assert again["tasks"]["t"] == pytest.approx(results["tasks"]["t"])


def test_given_validation_split_is_kept_and_only_test_is_carved(tmp_path, capsys):
    folder = tmp_path / "task"
    train = _write(folder / "train.csv", _rows(50, ["x", "y"], seed=1))
    validation = _write(folder / "validation.csv", _rows(7, ["x", "y"], seed=2))
    results, model_dir, _ = _train(tmp_path, capsys, f"t={folder}")
    assert set(results["held_out"]["t"]) == {"test"} and results["num_examples"] == {"t": 5}
    spec = parse_task(f"t={folder}")
    data = load_task_data([spec])["t"]
    assert list(data.splits["eval"]["text"]) == _texts(validation)  # the user's split, untouched
    _check_carved(model_dir, "t", _texts(train) + _texts(validation), {"train": 45, "eval": 7, "test": 5}, spec)


def test_multi_label_single_file_carves_a_plain_seeded_fraction(tmp_path, capsys):
    path = _write(tmp_path / "tags.jsonl", _rows(80, ["red", "blue", "green"], multi=True))
    results, model_dir, _ = _train(tmp_path, capsys, f"tags={path}")
    assert results["problem_types"] == {"tags": "multi_label_classification"}
    assert results["held_out"]["tags"]["test"]["stratified"] is False
    assert "f1_micro" in results["tasks"]["tags"]
    _check_carved(model_dir, "tags", _texts(path), {"train": 65, "eval": 7, "test": 8}, parse_task(f"tags={path}"))


def test_run_where_no_task_is_scored_exits_cleanly_and_says_how_to_score(tmp_path, capsys):
    a = _write(tmp_path / "a.csv", _rows(30, ["x", "y"]))
    b = _write(tmp_path / "b.jsonl", _rows(30, ["p", "q"], seed=3))
    extra = ["--test_size", "0", "--validation_size", "0"]
    results, model_dir, printed = _train(tmp_path, capsys, f"a={a}", f"b={b}", extra=extra)
    assert results["tasks"] == {} and results["not_scored"] == ["a", "b"] and "held_out" not in results
    assert "not scored (no test or validation split): a, b." in printed
    assert "--test_size 0.1" in printed
    assert (model_dir / "model.safetensors").is_file()


def test_some_tasks_scored_table_names_the_others():
    results = {
        "tasks": {"a": {"accuracy": 0.5, "f1_macro": 0.4, "precision_macro": 0.4, "recall_macro": 0.4}},
        "num_examples": {"a": 10},
        "average": {"accuracy": 0.5, "f1_macro": 0.4, "primary": 0.4},
        "not_scored": ["b"],
    }
    table = format_results_table(results)
    assert "0.500" in table and "not scored (no test or validation split): b." in table


def test_shared_source_tasks_carve_the_same_rows():
    rows = _rows(40, ["x", "y"])
    dataset = datasets.Dataset.from_list([{**row, "other": row["label"][::-1]} for row in rows])
    specs = [TaskSpec("a", dataset=dataset), TaskSpec("b", dataset=dataset, label_column="other")]
    data = load_task_data(specs)
    assert list(data["a"].splits["test"]["text"]) == list(data["b"].splits["test"]["text"])
    assert data["a"].held_out["test"]["stratified"] is False


def test_bad_fractions_and_too_small_train_split_are_named():
    with pytest.raises(ValueError, match=r"test_size must be a fraction of the train rows in \[0, 1\)"):
        TaskSpec("a", data_files="a.csv", test_size=1.5)
    two = datasets.Dataset.from_list([{"text": "one", "label": "x"}, {"text": "two", "label": "y"}])
    with pytest.raises(ValueError, match=r"only 2 row\(s\).*set test_size=0"):
        carve_splits(TaskSpec("a", dataset=two, test_size=0.9), {"train": two}, stratify=False)
    splits, held_out = carve_splits(TaskSpec("a", dataset=two), {"train": two})  # 10% of 2 rows: not one row
    assert held_out == {} and len(splits["train"]) == 2 and set(splits) == {"train"}
    assert parse_task("a=data.csv:test_size=0.2,validation_size=0").test_size == 0.2


def test_one_task_of_a_shared_source_is_scored_on_the_rows_its_run_held_out(tmp_path, capsys):
    """Two tasks on one file carve the same unstratified rows; scoring one of them alone carved stratified rows,
    other rows than the run held out (some of them trained on). The run's record now decides."""
    rows = [{**row, "other": row["label"][::-1]} for row in _rows(60, ["good", "bad", "meh"])]
    path = _write(tmp_path / "data.jsonl", rows)
    results, model_dir, _ = _train(tmp_path, capsys, f"a={path}", f"b={path}:label=other")
    assert results["held_out"]["a"]["test"]["stratified"] is False
    alone = evaluate_saved_model(str(model_dir), [f"a={path}"], output_dir=str(tmp_path / "eval"))
    assert alone["held_out"]["a"] == results["held_out"]["a"]
    spec = parse_task(f"a={path}")
    spec.test_size, spec.validation_size = 0.1, 0.1
    carved = load_task_data([spec], stratified={"a": False})["a"].splits["test"]["text"]
    together = load_task_data([spec, parse_task(f"b={path}:label=other")])["a"].splits["test"]["text"]
    assert list(carved) == list(together)


def test_evaluation_recognises_the_runs_train_data_however_it_is_spelled(tmp_path, capsys, monkeypatch, caplog):
    """A relative path at training and an absolute one here (another working directory), `dataset: folder` at
    training and `name=folder` here, a copy of the file elsewhere: the rows the run held out are scored, not the whole
    file (most of it trained on). Runs recorded before the absolute paths are matched from the folders above the
    file, with a warning; other data is scored whole with a warning that names the run's."""
    work = tmp_path / "work"
    a = _write(work / "data" / "a.jsonl", _rows(60, ["x", "y"]))
    b = _write(work / "bfolder" / "train.jsonl", _rows(60, ["p", "q"], seed=5))
    monkeypatch.chdir(work)
    results, model_dir, _ = _train(tmp_path, capsys, "a=data/a.jsonl", json.dumps({"name": "b", "dataset": "bfolder"}))
    assert results["num_examples"] == {"a": 6, "b": 6}
    recorded = {entry["name"]: entry for entry in read_training_args(model_dir)["data"]["tasks"]}
    assert recorded["a"]["data_files"] == {"train": "data/a.jsonl"}  # the keys as given are kept
    assert recorded["a"]["resolved_data_files"] == {"train": [str(a.resolve())]}
    assert recorded["b"]["dataset"] == "bfolder" and recorded["b"]["resolved_data_files"] == {
        "train": [str(b.resolve())]
    }
    assert len(recorded["a"]["train_sha256"]) == 1 and len(recorded["a"]["train_sha256"][0]) == 64
    assert recorded["b"]["local_dataset"] is True and recorded["a"]["local_dataset"] is False
    monkeypatch.chdir(tmp_path)
    tasks = [f"a={a}", f"b={b.parent}"]

    def evaluate(*tasks):
        caplog.clear()
        with caplog.at_level("WARNING", logger="polyhead.evaluation.scoring"):
            return evaluate_saved_model(model_dir, list(tasks), output_dir=tmp_path / "eval")

    again = evaluate(*tasks)
    assert again["num_examples"] == {"a": 6, "b": 6} and "scored whole" not in caplog.text
    assert "held out 6 of its 60 train rows (10%, seed 42" in caplog.text  # scored, not trained: no training hint
    assert "keep them in training" not in caplog.text
    assert again["held_out"] == results["held_out"]
    assert again["tasks"]["a"] == pytest.approx(results["tasks"]["a"])
    # The published model, by its Hub id (from the Hub cache, offline): its training_args.json is read as the folder's.
    from huggingface_hub import constants

    snapshot = tmp_path / "hub-cache" / "models--org--carved" / "snapshots" / ("c" * 40)
    shutil.copytree(model_dir, snapshot)
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text("c" * 40)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    caplog.clear()
    with caplog.at_level("WARNING", logger="polyhead.evaluation.scoring"):
        by_id = evaluate_saved_model("org/carved", tasks, output_dir=tmp_path / "eval-hub")
    assert by_id["num_examples"] == {"a": 6, "b": 6} and by_id["held_out"] == results["held_out"]
    assert "records no train data" not in caplog.text
    copy = _write(tmp_path / "elsewhere" / "a.jsonl", [json.loads(line) for line in a.read_text().splitlines()])
    assert evaluate(f"a={copy}")["num_examples"] == {"a": 6} and "scored whole" not in caplog.text
    other = _write(tmp_path / "other" / "a.jsonl", _rows(60, ["x", "y"], seed=9))
    assert evaluate(f"a={other}")["num_examples"] == {"a": 60}
    assert (
        f"{other} is scored whole as its 'test' split: neither its path nor its content is the training" in caplog.text
    )
    # A run recorded before: paths as given only, relative to a working directory it did not record.
    info_path = model_dir / "training_args.json"
    info = json.loads(info_path.read_text())
    for entry in info["data"]["tasks"]:
        del entry["resolved_data_files"], entry["train_sha256"]
    info_path.write_text(json.dumps(info))
    assert evaluate(*tasks)["num_examples"] == {"a": 6, "b": 6} and "scored whole" not in caplog.text
    assert (
        f"recorded as 'data/a.jsonl' relative to a working directory the run did not record (found from {work})"
        in (caplog.text)
    )
    assert "recorded as 'bfolder' relative to a working directory" in caplog.text
    assert evaluate(f"a={copy}")["num_examples"] == {"a": 60}  # no checksum recorded: another file is another file
    assert "does not match the training run's train data, recorded as 'data/a.jsonl' relative to a working " in (
        caplog.text
    )
    assert "evaluate from the training's working directory with the recorded path" in caplog.text


def test_the_runs_train_file_alone_is_not_carved_for_a_split_the_run_was_given(tmp_path, capsys):
    """The run read its test rows from its own test file and carved only validation rows out of train.jsonl: carving
    test rows out of train.jsonl here would score rows it trained on. Refused, naming the run's test file; the
    validation rows are carved as the run carved them (without a test share first)."""
    folder = tmp_path / "task"
    _write(folder / "train.jsonl", _rows(60, ["x", "y"]))
    test = _write(folder / "test.jsonl", _rows(8, ["x", "y"], seed=2))
    results, model_dir, _ = _train(tmp_path, capsys, f"t={folder}", extra=["--final_eval_split", "eval"])
    assert set(results["held_out"]["t"]) == {"validation"} and results["num_examples"] == {"t": 6}
    alone = f"t={folder / 'train.jsonl'}"
    with pytest.raises(
        ValueError, match=rf"held none of its rows out as its 'test' split \(it read that from {test}\): score"
    ):
        evaluate_saved_model(model_dir, [alone], split="test", output_dir=tmp_path / "eval")
    validation = evaluate_saved_model(model_dir, [alone], split="validation", output_dir=tmp_path / "eval")
    assert validation["held_out"]["t"] == results["held_out"]["t"] and validation["num_examples"] == {"t": 6}
    assert validation["tasks"]["t"] == pytest.approx(results["tasks"]["t"])
