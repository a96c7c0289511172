"""MultitaskTrainer on the tiny encoder: loss falls, checkpoint resume, loss weights, arguments, baselines."""

import json
import os
import random
import stat
import subprocess
import sys
from pathlib import Path

import datasets
import pytest
import torch
import yaml
from helpers import labelled_split, tiny_task_specs, training_args

from polyhead.data import MultitaskCollator
from polyhead.tasks import TaskSpec
from polyhead.testing_utils import WORDS, tiny_tokenizer
from polyhead.training.arguments import DataArguments, ModelArguments, MultitaskTrainingArguments, parse_args
from polyhead.training.trainer import MultitaskTrainer, make_trainer, prepare_tasks, run


ROOT = Path(__file__).resolve().parent.parent


class RecordingCollator(MultitaskCollator):
    def __init__(self, tokenizer):
        super().__init__(tokenizer)
        self.seen = []

    def __call__(self, features):
        batch = super().__call__(features)
        self.seen.append((batch["task"], batch["input_ids"][0].tolist()))
        return batch


def _trainer(tmp_path, collator=None, specs=None, compute_metrics=None, **kwargs):
    tokenizer = tiny_tokenizer()
    prepared = prepare_tasks(ModelArguments(), DataArguments(tasks=specs or tiny_task_specs()), tokenizer)
    arguments = training_args(tmp_path, **kwargs)
    trainer = make_trainer(
        prepared, tokenizer, ModelArguments(), DataArguments(), arguments, compute_metrics=compute_metrics
    )
    if collator is not None:
        trainer.data_collator = collator
    return trainer


def test_loss_falls_and_batches_are_single_task(tmp_path):
    collator = RecordingCollator(tiny_tokenizer())
    trainer = _trainer(tmp_path, collator, num_train_epochs=4)
    before = trainer.evaluate()
    trainer.train()
    after = trainer.evaluate()
    assert after["eval_sentiment_loss"] < before["eval_sentiment_loss"]
    assert after["eval_topic_loss"] < before["eval_topic_loss"]
    assert trainer.state.log_history[-2]["train_loss"] > 0
    assert {task for task, _ in collator.seen} == {"sentiment", "topic", "emotions"}


def test_evaluate_reports_every_task_and_average(tmp_path):
    metrics = _trainer(tmp_path).evaluate()
    assert {"eval_sentiment_f1_macro", "eval_topic_accuracy", "eval_average_primary", "eval_loss"} <= set(metrics)
    assert "eval_emotions_f1_micro" not in metrics  # emotions has no validation split
    expected = (metrics["eval_sentiment_f1_macro"] + metrics["eval_topic_f1_macro"]) / 2
    assert metrics["eval_average_primary"] == pytest.approx(expected)


def test_evaluate_runs_every_task_in_one_pass_and_encodes_shared_texts_once(tmp_path):
    # sentiment and a second task on the SAME validation texts: 16 distinct texts, batch 8 -> 2 encoder passes in
    # all, not a DataLoader and an evaluation loop per task.
    sentiment = tiny_task_specs()[0]
    shared = sentiment.dataset["validation"]
    mood = datasets.DatasetDict(
        train=sentiment.dataset["train"].map(lambda row: {"label": "up" if row["label"] == "good" else "down"}),
        validation=shared.map(lambda row: {"label": "up" if row["label"] == "good" else "down"}),
    )
    trainer = _trainer(tmp_path, specs=[sentiment, TaskSpec("mood", dataset=mood)], per_device_eval_batch_size=8)
    calls = []
    handle = trainer.model.encoder.register_forward_pre_hook(lambda *args: calls.append(1))
    try:
        metrics = trainer.evaluate()
    finally:
        handle.remove()
    assert len(calls) == 2
    assert {"eval_sentiment_accuracy", "eval_mood_accuracy", "eval_sentiment_loss", "eval_mood_loss"} <= set(metrics)


def test_one_pass_evaluation_equals_the_trainer_loop_per_task(tmp_path, monkeypatch):
    # The Trainer's per-task loop (what several processes use) and the one-pass evaluation agree on every metric
    # and loss; class weights (topic) and multi-label (emotions, given a validation split here) included.
    specs = tiny_task_specs()
    specs[2].dataset["validation"] = labelled_split(12, ["joy", "fear"], 6, multi=True)
    trainer = _trainer(tmp_path, specs=specs, num_train_epochs=2)
    trainer.train()
    one_pass = trainer.evaluate()
    monkeypatch.setattr(MultitaskTrainingArguments, "world_size", property(lambda self: 2))
    per_task = trainer.evaluate()
    keys = {key for key in one_pass if not key.endswith("_runtime")}
    assert keys == {key for key in per_task if not key.endswith("_runtime")}
    assert "eval_emotions_f1_micro" in keys and "eval_topic_loss" in keys
    for key in keys:
        assert one_pass[key] == pytest.approx(per_task[key], rel=1e-5, abs=1e-6), key


def test_checkpoint_resume_lands_on_the_same_batches(tmp_path):
    # 48 + 24 + 24 rows, batch 8: 12 batches an epoch, 2 epochs; resume from step 15 (epoch 2, 3 batches in).
    full = RecordingCollator(tiny_tokenizer())
    trainer = _trainer(tmp_path, full, num_train_epochs=2, save_strategy="steps", save_steps=15)
    trainer.train()
    assert trainer.state.global_step == 24
    final_weights = {k: v.clone() for k, v in trainer.model.state_dict().items()}

    resumed = RecordingCollator(tiny_tokenizer())
    trainer = _trainer(tmp_path, resumed, num_train_epochs=2, save_strategy="steps", save_steps=15)
    trainer.train(resume_from_checkpoint=str(tmp_path / "run" / "checkpoint-15"))
    assert trainer.state.global_step == 24
    assert resumed.seen == full.seen[15:]
    for key, value in trainer.model.state_dict().items():
        torch.testing.assert_close(value, final_weights[key])


def test_loss_weights_scale_the_task_loss(tmp_path):
    specs = tiny_task_specs()
    trainer = _trainer(tmp_path, specs=specs)
    batch = next(iter(trainer.get_train_dataloader()))
    trainer.model.eval()
    with torch.no_grad():
        base = trainer.compute_loss(trainer.model, batch)
        trainer.loss_weights[batch["task"]] = 3.0
        assert trainer.compute_loss(trainer.model, batch) == pytest.approx(3 * base.item(), rel=1e-5)


def test_class_weights_change_the_loss(tmp_path):
    trainer = _trainer(tmp_path)
    dataset = trainer.eval_datasets["topic"]
    batch = trainer.data_collator([dataset[i] for i in range(8)])
    trainer.model.eval()
    with torch.no_grad():
        weighted = trainer.compute_loss(trainer.model, batch)
        trainer.class_weights.pop("topic")
        plain = trainer.compute_loss(trainer.model, batch)
    assert weighted.item() != pytest.approx(plain.item())


def test_label_smoothing_factor_smooths_training_losses_only(tmp_path):
    trainer = _trainer(tmp_path, label_smoothing_factor=0.2)
    batch = next(iter(trainer.get_train_dataloader()))
    task, labels = batch["task"], batch["labels"]
    with torch.no_grad():
        trainer.model.train()
        torch.manual_seed(0)
        smoothed = trainer.compute_loss(trainer.model, batch)
        torch.manual_seed(0)  # the same dropout masks
        logits = trainer.model(**{k: v for k, v in batch.items() if k != "labels"}).logits[task]
        trainer.model.eval()
        evaluation = trainer.compute_loss(trainer.model, batch)
        eval_logits = trainer.model(**{k: v for k, v in batch.items() if k != "labels"}).logits[task]
    assert smoothed.item() == pytest.approx(trainer.model.task_loss(task, logits, labels, label_smoothing=0.2).item())
    assert smoothed.item() != pytest.approx(trainer.model.task_loss(task, logits, labels).item())
    assert evaluation.item() == pytest.approx(trainer.model.task_loss(task, eval_logits, labels).item())


@pytest.mark.parametrize("factor", [-0.1, 1.0])
def test_label_smoothing_factor_out_of_range_is_refused(tmp_path, factor):
    with pytest.raises(ValueError, match=r"label_smoothing_factor must be in \[0, 1\)"):
        training_args(tmp_path, label_smoothing_factor=factor)


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [  # each was accepted, then raised from inside training or stopped it silently
        ("--temperature", "0", "temperature must be a finite number > 0, got 0.0"),
        ("--temperature", "nan", "temperature must be a finite number > 0, got nan"),
        ("--early_stopping_patience", "0", "early_stopping_patience must be an integer >= 1, got 0"),
        ("--seed", "-1", r"seed must be in \[0, 2\*\*32 - 1\] for every run \(seeds -1 to -1\)"),
    ],
)
def test_options_that_cannot_work_are_refused_when_parsed(option, value, message):
    from polyhead.training.arguments import parse_args

    with pytest.raises(ValueError, match=message):
        parse_args(["--tasks", "a=/nonexistent", "--output_dir", "/tmp/x", option, value])
    with pytest.raises(ValueError, match=r"seeds 4294967295 to 4294967296"):
        parse_args(["--tasks", "a=/x", "--output_dir", "/tmp/x", "--seed", str(2**32 - 1), "--seeds", "2",
                    "--single_task_baselines", "true"])  # fmt: skip


def test_group_by_length_groups_each_tasks_rows_by_their_tokens(tmp_path):
    trainer = _trainer(tmp_path, train_sampling_strategy="group_by_length")
    lengths = trainer.train_lengths()
    assert lengths == [[len(ids) for ids in dataset["input_ids"]] for dataset in trainer.train_datasets.values()]
    sampler = trainer.make_batch_sampler()
    assert sampler.lengths == lengths
    assert _trainer(tmp_path, num_train_epochs=1).make_batch_sampler().lengths is None  # default: shuffled
    first = trainer.train_datasets[next(iter(trainer.train_datasets))]
    trainer.train_datasets[next(iter(trainer.train_datasets))] = first.add_column("length", [7] * len(first))
    assert trainer.train_lengths()[0] == [7] * len(first)  # a precomputed `length_column_name` column wins
    assert trainer.train().training_loss > 0


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ({"train_sampling_strategy": "sequential"}, "train_sampling_strategy='sequential' is not supported"),
        ({"dataloader_drop_last": True}, "dataloader_drop_last is not supported"),
    ],
)
def test_trainer_options_the_task_sampler_replaces_are_refused(tmp_path, option, message):
    with pytest.raises(ValueError, match=message):
        training_args(tmp_path, **option)


def test_bad_input_raises_before_training(tmp_path):
    specs = [TaskSpec("t", dataset=datasets.Dataset.from_dict({"sentence": ["a b"], "label": ["x"]}))]
    with pytest.raises(ValueError, match="column"):
        run(ModelArguments(), DataArguments(tasks=specs), training_args(tmp_path))
    assert not (tmp_path / "run").exists()


def test_parse_yaml_and_json_config(tmp_path):
    config = {
        "encoder_name_or_path": "tiny-random-bert",
        "tasks": [{"name": "a", "data_files": "a.jsonl", "loss_weight": 2.0}],
        "sampling": "temperature",
        "temperature": 3.0,
        "learning_rate": "5e-4",
        "output_dir": str(tmp_path),
        "lr_scheduler_type": "reduce_lr_on_plateau",
        "eval_strategy": "epoch",
        "save_strategy": "epoch",
        "early_stopping_patience": 2,
    }
    for name, dump in (("c.yaml", yaml.safe_dump), ("c.json", json.dumps)):
        (tmp_path / name).write_text(dump(config))
        model_args, data_args, training_args = parse_args([str(tmp_path / name), "--temperature", "4"])
        assert data_args.task_specs()[0].loss_weight == 2.0 and data_args.temperature == 4.0
        assert training_args.learning_rate == 5e-4 and training_args.load_best_model_at_end
        assert training_args.metric_for_best_model == "average_primary" and training_args.greater_is_better
        assert training_args.lr_scheduler_kwargs == {"mode": "max", "factor": 0.5}


def test_data_seed_zero_is_a_seed(tmp_path):
    """`--data_seed 0` seeds subsampling and batch order with 0, not with `--seed` (0 is a seed, not "unset")."""
    assert training_args(tmp_path, seed=3, data_seed=0).sampling_seed == 0
    assert training_args(tmp_path, seed=3).sampling_seed == 3


def test_tiny_preset_config_parses():
    model_args, data_args, training_args = parse_args(["configs/tiny.yaml"])
    assert model_args.encoder_name_or_path == "tiny-random-bert" and len(data_args.tasks) >= 2


def test_run_writes_folder_and_baselines(tmp_path, monkeypatch):
    threads = []
    monkeypatch.setattr(torch, "set_num_threads", threads.append)
    args = training_args(
        tmp_path,
        single_task_baselines=True,
        eval_strategy="epoch",
        num_train_epochs=2,
        save_strategy="epoch",
        keep_baseline_checkpoints=True,
        num_threads=1,
    )
    results = run(ModelArguments(), DataArguments(tasks=tiny_task_specs(24)), args)
    assert threads == [1]
    assert list((tmp_path / "run" / "baselines" / "topic").glob("checkpoint-*"))  # kept when asked
    folder = tmp_path / "run" / "model"
    saved = json.loads((folder / "results.json").read_text())
    # emotions has only a train split: trained, not scored; topic (no test split) is scored on validation
    assert saved["tasks"].keys() == {"sentiment", "topic"} == results["multitask"]["tasks"].keys()
    info = json.loads((folder / "training_args.json").read_text())
    assert {"model", "data", "training", "tasks", "num_train_examples", "log_history"} <= set(info)
    assert info["data"]["tasks"][0]["dataset"] == "<in-memory DatasetDict>"
    # the trained length is saved with the tokenizer: the default wherever the model runs (tiny encoder: 80 positions)
    tokenizer_config = json.loads((folder / "tokenizer_config.json").read_text())
    assert tokenizer_config["model_max_length"] == info["model"]["max_length"] == 80
    baselines = json.loads((folder / "baselines" / "results.json").read_text())
    assert baselines["tasks"].keys() == saved["tasks"].keys()
    assert set(baselines["tasks"]["topic"]) == set(saved["tasks"]["topic"])  # same schema
    assert (tmp_path / "run" / "baselines" / "topic" / "model" / "model.safetensors").is_file()


def test_the_model_folder_is_saved_after_evaluation(tmp_path, monkeypatch):
    """Evaluate, then save: scoring is done before the folder is written, and saving runs no evaluation."""
    from polyhead.training import trainer as training

    events = []

    def score_model(*args, **kwargs):
        events.append("score")
        return real_score(*args, **kwargs)

    def save_model_folder(*args, **kwargs):
        events.append("save")
        return real_save(*args, **kwargs)

    real_score, real_save = training.score_model, training.save_model_folder
    monkeypatch.setattr(training, "score_model", score_model)
    monkeypatch.setattr(training, "save_model_folder", save_model_folder)
    results = run(ModelArguments(), DataArguments(tasks=tiny_task_specs(16)), training_args(tmp_path, max_steps=2))
    assert events == ["score", "save"]
    folder = tmp_path / "run" / "model"
    assert json.loads((folder / "results.json").read_text()) == results["multitask"]
    assert {"classification_report_sentiment.txt", "confusion_matrix_topic.png", "training_args.json"} <= {
        p.name for p in folder.iterdir()
    }


def test_trainer_rejects_unknown_task(tmp_path):
    trainer = _trainer(tmp_path)
    with pytest.raises(ValueError, match="lacks"):
        MultitaskTrainer(trainer.model, trainer.args, train_datasets={"nope": trainer.eval_datasets["topic"]})


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


def test_train_script_end_to_end_redirected(tmp_path):
    # Two tasks from one MELD-style file through the short --tasks form; stdout and stderr go to files, as in
    # `python scripts/train.py ... > log 2>&1`.
    rng = random.Random(0)
    emotions = {"joy": "happy", "anger": "angry", "neutral": "fine"}
    rows = []
    for _ in range(40):
        emotion = rng.choice(list(emotions))
        sentiment = {"joy": "positive", "anger": "negative", "neutral": "neutral"}[emotion]
        rows.append(
            {
                "utterance": " ".join([emotions[emotion], *rng.sample(WORDS, 3)]),
                "emotion": emotion,
                "sentiment": sentiment,
            }
        )
    data = tmp_path / "meld"
    data.mkdir()
    _write_jsonl(data / "train.jsonl", rows[:24])
    _write_jsonl(data / "validation.jsonl", rows[24:32])
    _write_jsonl(data / "test.jsonl", rows[32:])
    out = tmp_path / "out"
    command = [
        sys.executable,
        str(ROOT / "scripts" / "train.py"),
        "--tasks",
        f"emotion={data}:text=utterance,label=emotion",
        f"sentiment={data}:text=utterance,label=sentiment",
        *("--output_dir", str(out), "--num_train_epochs", "2", "--per_device_train_batch_size", "8"),
        *("--eval_strategy", "epoch", "--save_strategy", "epoch", "--report_to", "none", "--logging_steps", "2"),
        *("--single_task_baselines", "true", "--num_threads", "1", "--learning_rate", "1e-3"),
    ]
    stdout, stderr = tmp_path / "stdout.log", tmp_path / "stderr.log"
    with stdout.open("w") as out_file, stderr.open("w") as err_file:
        done = subprocess.run(
            command, stdout=out_file, stderr=err_file, cwd=tmp_path, timeout=600, preexec_fn=lambda: os.umask(0o022)
        )
    log, errors = stdout.read_bytes().decode(), stderr.read_bytes().decode()  # read_text would turn \r into \n
    assert done.returncode == 0, errors[-3000:]
    # The end of the run: the per-task table and the multitask vs single-task comparison.
    tail = log[log.index("Results (test split") :]
    assert "macro F1" in tail and "\nemotion" in tail and "\nsentiment" in tail
    comparison = tail[tail.index("Multitask vs single-task") :]
    assert "single-task" in comparison and "\naverage" in comparison
    # No per-evaluation pin_memory warning on CPU, no progress-bar redraws in the files.
    assert "pin_memory" not in log + errors
    assert "\r" not in log + errors and "\x1b" not in log + errors
    # Baseline checkpoints are gone once their model folders exist; the multitask run's stay (resumable).
    for task in ("emotion", "sentiment"):
        assert (out / "baselines" / task / "model" / "model.safetensors").is_file()
        assert not list((out / "baselines" / task).glob("checkpoint-*"))
    assert list(out.glob("checkpoint-*"))
    info = json.loads((out / "model" / "training_args.json").read_text())
    assert info["training"]["num_threads"] == 1
    assert [t["label_column"] for t in info["data"]["tasks"]] == ["emotion", "sentiment"]
    assert stat.S_IMODE((out / "model" / "model.safetensors").stat().st_mode) == 0o644


def _accuracy(prediction):
    return {"my_accuracy": float((prediction.predictions.argmax(-1) == prediction.label_ids).mean())}


def test_compute_metrics_is_called_once_per_task_and_logged_beside_ours(tmp_path, monkeypatch):
    # With and without a `task` argument; on one process and through the Trainer's per-task loop (several
    # processes), where the Trainer's own loop must not call it a second time.
    calls = []

    def with_task(prediction, task):
        calls.append((task, prediction.predictions.shape, prediction.label_ids.shape))
        return {"rows": len(prediction.label_ids), **_accuracy(prediction)}

    trainer = _trainer(tmp_path, compute_metrics=with_task)
    one_pass = trainer.evaluate()
    assert sorted(call[0] for call in calls) == ["sentiment", "topic"]  # emotions has no validation split
    rows = {"sentiment": 16, "topic": 12}  # validation rows
    assert {task: shape for task, shape, _ in calls} == {"sentiment": (16, 2), "topic": (12, 3)}
    for task in ("sentiment", "topic"):
        assert one_pass[f"eval_{task}_rows"] == rows[task]
        assert one_pass[f"eval_{task}_my_accuracy"] == pytest.approx(one_pass[f"eval_{task}_accuracy"])
    assert one_pass["eval_average_primary"] == pytest.approx(
        (one_pass["eval_sentiment_f1_macro"] + one_pass["eval_topic_f1_macro"]) / 2
    )
    calls.clear()
    monkeypatch.setattr(MultitaskTrainingArguments, "world_size", property(lambda self: 2))
    per_task = trainer.evaluate()
    assert sorted(call[0] for call in calls) == ["sentiment", "topic"]
    assert per_task["eval_topic_my_accuracy"] == pytest.approx(one_pass["eval_topic_my_accuracy"])

    without_task = _trainer(tmp_path, compute_metrics=_accuracy).evaluate()
    assert without_task["eval_sentiment_my_accuracy"] == pytest.approx(without_task["eval_sentiment_accuracy"])


def test_compute_metrics_may_not_overwrite_a_reported_metric(tmp_path):
    trainer = _trainer(tmp_path, compute_metrics=lambda prediction: {"accuracy": 1.0})
    with pytest.raises(ValueError, match=r"eval_sentiment_accuracy.*already reports.*other names"):
        trainer.evaluate()


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ({"batch_eval_metrics": True}, "batch_eval_metrics is not supported.*once per task"),
        ({"include_for_metrics": ["inputs"]}, r"include_for_metrics=\['inputs'\] is not supported"),
    ],
)
def test_metric_options_evaluation_cannot_honour_are_refused(tmp_path, option, message):
    model = _trainer(tmp_path).model
    with pytest.raises(ValueError, match=message):
        MultitaskTrainer(model, training_args(tmp_path, **option), compute_metrics=_accuracy)
    MultitaskTrainer(model, training_args(tmp_path, **option))  # without compute_metrics they mean nothing


def test_a_compute_metrics_result_can_pick_the_best_checkpoint(tmp_path):
    trainer = _trainer(
        tmp_path,
        compute_metrics=_accuracy,
        num_train_epochs=2,
        eval_strategy="epoch",
        save_strategy="epoch",
        load_best_model_at_end=True,
        metric_for_best_model="topic_my_accuracy",
    )
    trainer.train()
    scores = [log["eval_topic_my_accuracy"] for log in trainer.state.log_history if "eval_topic_my_accuracy" in log]
    assert len(scores) == 2
    assert trainer.state.best_metric == max(scores)


def test_a_metric_evaluation_never_reports_is_refused_before_training(tmp_path):
    best = {"eval_strategy": "epoch", "save_strategy": "epoch", "load_best_model_at_end": True}
    with pytest.raises(ValueError, match=r"metric_for_best_model='accuracy' is not a metric.*sentiment_accuracy"):
        _trainer(tmp_path, metric_for_best_model="accuracy", **best)
    for name in ("average_primary", "eval_topic_f1_macro", "topic_loss", "sentiment_recall_macro"):
        assert _trainer(tmp_path, metric_for_best_model=name, **best).args.metric_for_best_model == name
    with pytest.raises(ValueError, match="emotions_f1_micro"):  # emotions has no validation split: never reported
        _trainer(tmp_path, metric_for_best_model="emotions_f1_micro", **best)
