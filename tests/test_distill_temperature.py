"""Per-task distillation temperature (`--task_distill_temperature task=T` over `--distill_temperature`): parsed and
checked before any teacher runs, applied to each task's soft targets and to its loss, recorded in results.json, the
end-of-run table and the model card."""

import json
import re

import numpy as np
import pytest
import torch
from helpers import script_main
from test_distill import _jsonl, _texts, _training_args, no_teacher_runs, teachers  # noqa: F401  (fixtures)

import polyhead.distill.job as job_module
import polyhead.distill.trainer as trainer_module
from polyhead.distill import (
    DistillArguments,
    DistillationTrainer,
    format_distillation_table,
    parse_distill_args,
    plan_distillation,
    run,
)
from polyhead.distill.arguments import MAX_TEMPERATURE, MIN_TEMPERATURE
from polyhead.publishing.model_card import render_model_card
from polyhead.training.arguments import DataArguments, ModelArguments
from polyhead.training.trainer import build_model, load_tokenizer


JOINT = "sentiment+topic+emotion-distilbert"
TEMPERATURES = {"sentiment": 0.5, "topic": 2.0}  # topic: the default 2 (no override)
OUT_OF_RANGE = r"must be a number from 0\.01 to 100"


def _teachers_list(folders):
    """Two single-label teachers of two kinds (a BERT classifier, a polyhead model's task) and a multi-label one."""
    return [f"sentiment={folders['sentiment']}", f"{folders['multitask']}:topic", folders["emotions"]]


def _distill_args(folders, texts, **kwargs):
    return DistillArguments(teacher=_teachers_list(folders), texts=[texts], **kwargs)


# --- parsing and bad input ----------------------------------------------------------------------------------------


def test_flag_is_repeatable_and_parsed_into_task_temperatures(tmp_path):
    argv = ["--teacher", "x", "--texts", "t.jsonl", "--output_dir", str(tmp_path)]
    argv += ["--task_distill_temperature", "question=0.5", "--distill_temperature", "3"]
    _, _, distill_args, _ = parse_distill_args([*argv, "--task_distill_temperature=emotion=1e-1"])
    assert distill_args.task_distill_temperature == ["question=0.5", "emotion=1e-1"]
    heads = {name: {"problem_type": "single_label_classification"} for name in ("question", "emotion", "spam")}
    assert distill_args.temperatures(heads) == {"question": 0.5, "emotion": 0.1, "spam": 3.0}
    # A mapping (Python, or a config file) works as the strings do; no override: the default for every task.
    assert DistillArguments(task_distill_temperature={"spam": 0.25}).temperatures(heads)["spam"] == 0.25
    assert set(DistillArguments().temperatures(heads).values()) == {2.0}


@pytest.mark.parametrize(
    "values, message",
    [
        (["question"], r"expects 'task=T' with T a number \(e\.g\. question=0\.5\), got 'question'"),
        (["question=warm"], r"expects 'task=T'.*got 'question=warm'"),
        (["=0.5"], r"expects 'task=T'.*got '=0.5'"),
        (["question=0"], rf"question: the temperature {OUT_OF_RANGE}, got 0: lower, the loss"),
        (["question=-1"], rf"question: the temperature {OUT_OF_RANGE}, got -1:"),
        (["question=nan"], rf"question: the temperature {OUT_OF_RANGE}, got nan:"),
        (["question=inf"], rf"question: the temperature {OUT_OF_RANGE}, got inf:.*higher, T\^2 overflows"),
        (["question=1e30"], rf"question: the temperature {OUT_OF_RANGE}, got 1e30:"),  # finite, but T^2 overflows
        (["question=100.5"], rf"question: the temperature {OUT_OF_RANGE}, got 100.5:"),
        (["question=1e-30"], rf"question: the temperature {OUT_OF_RANGE}, got 1e-30:"),
        (["question=0.5", "question=1"], "names task 'question' twice"),
    ],
)
def test_malformed_task_temperatures_are_refused_when_parsed(tmp_path, values, message):
    with pytest.raises(ValueError, match=message):
        DistillArguments(task_distill_temperature=values)
    argv = ["--teacher", "x", "--texts", "t.jsonl", "--output_dir", str(tmp_path), "--task_distill_temperature"]
    with pytest.raises(ValueError, match=message):
        parse_distill_args([*argv, *values])


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "1e30", "1000", "0", "-2", "1e-30", "0.001"])
def test_a_default_temperature_outside_the_range_is_refused_when_parsed(tmp_path, value):
    message = rf"distill_temperature {OUT_OF_RANGE}, got {re.escape(str(float(value)))}:"
    with pytest.raises(ValueError, match=message):
        DistillArguments(distill_temperature=float(value))
    argv = ["--teacher", "x", "--texts", "t.jsonl", "--output_dir", str(tmp_path), f"--distill_temperature={value}"]
    with pytest.raises(ValueError, match=message):
        parse_distill_args(argv)


def test_the_range_ends_are_temperatures(tmp_path):
    assert (MIN_TEMPERATURE, MAX_TEMPERATURE) == (0.01, 100.0)
    argv = ["--teacher", "x", "--texts", "t.jsonl", "--output_dir", str(tmp_path), "--distill_temperature", "100"]
    _, _, distill_args, _ = parse_distill_args([*argv, "--task_distill_temperature", "a=0.01", "b=100"])
    heads = {name: {"problem_type": "single_label_classification"} for name in ("a", "b", "c")}
    assert distill_args.temperatures(heads) == {"a": 0.01, "b": 100.0, "c": 100.0}


def test_the_script_refuses_an_infinite_temperature_in_one_line_before_teachers_run(  # it saved an all-NaN student
    tmp_path,
    teachers,  # noqa: F811 (the fixture's value)
    no_teacher_runs,  # noqa: F811 (the fixture's value)
):
    texts = _jsonl(tmp_path / "texts.jsonl", _texts(20))
    argv = ["--teacher", teachers["sentiment"], "--texts", texts, "--output_dir", str(tmp_path / "out")]
    for flags in (["--distill_temperature", "inf"], ["--task_distill_temperature", "sst2-bert=1e30"]):
        with pytest.raises(SystemExit) as failed:
            script_main("distill")([*argv, *flags])
        assert re.match(rf"error: .*{OUT_OF_RANGE}", str(failed.value.code))
        assert not (tmp_path / "out" / "model").exists()


def test_unknown_and_multi_label_tasks_are_refused_before_teachers_run(tmp_path, teachers, no_teacher_runs):  # noqa: F811 (the fixture's value)
    texts = _jsonl(tmp_path / "texts.jsonl", _texts(20))

    def distill(*values):
        distill_args = _distill_args(teachers, texts, task_distill_temperature=list(values))
        return run(ModelArguments(), DataArguments(), distill_args, _training_args(tmp_path))

    known = r"the teachers' tasks are \['sentiment', 'topic', 'emotion-distilbert'\]"
    with pytest.raises(ValueError, match=rf"names task\(s\) \['question'\] that no teacher has: {known}"):
        distill("sentiment=0.5", "question=0.5")
    with pytest.raises(ValueError, match=r"\['emotion-distilbert'\]: multi-label.*no temperature applies"):
        distill("emotion-distilbert=0.5")


# --- soft targets and loss at each task's temperature ---------------------------------------------------------------


@pytest.fixture(scope="module")
def labelled(tmp_path_factory, teachers):  # noqa: F811 (the fixture's value)
    """The plan (sentiment at 0.5, topic at the default 2, a multi-label task) and the teachers' logits."""
    tmp_path = tmp_path_factory.mktemp("temperatures")
    texts = _jsonl(tmp_path / "texts.jsonl", _texts(30, seed=4))
    distill_args = _distill_args(teachers, texts, task_distill_temperature=["sentiment=0.5"])
    plan = plan_distillation(ModelArguments(), DataArguments(), distill_args)
    outputs = job_module.label_with_teachers(plan, distill_args, str(tmp_path), progress=False)
    return plan, outputs, load_tokenizer(ModelArguments())


def _softmax(logits, temperature):
    exp = np.exp(logits / temperature - (logits / temperature).max(-1, keepdims=True))
    return exp / exp.sum(-1, keepdims=True)


def test_plan_resolves_each_single_label_tasks_temperature(labelled):
    plan, _, _ = labelled
    assert plan.temperatures == TEMPERATURES  # the multi-label task has none


def test_soft_targets_are_each_tasks_teacher_at_its_temperature(labelled):
    plan, outputs, tokenizer = labelled
    train, _, _ = job_module.build_datasets(plan, outputs, tokenizer, 32, plan.temperatures)
    for task, temperature in {**TEMPERATURES, "emotion-distilbert": None}.items():
        _, logits = job_module._rows_logits(outputs, task, plan.train_rows)
        packed = np.array(train[task]["labels"])
        k = logits.shape[-1]
        expected = 1 / (1 + np.exp(-logits)) if temperature is None else _softmax(logits, temperature)
        np.testing.assert_allclose(packed[:, :k], expected, rtol=1e-5, atol=1e-7)
        if task == "sentiment":  # 0.5 sharpens the biased teacher's distribution: not its temperature-2 targets
            assert not np.allclose(packed[:, :k], _softmax(logits, 2.0), atol=1e-3)


def _trainer(tmp_path, labelled, temperature):
    plan, outputs, tokenizer = labelled
    train, held_out, _ = job_module.build_datasets(plan, outputs, tokenizer, 32, temperature, joint_batches=True)
    torch.manual_seed(0)
    return DistillationTrainer(
        model=build_model(ModelArguments(), plan.heads),
        args=_training_args(tmp_path),
        train_datasets=train,
        eval_datasets=held_out,
        processing_class=tokenizer,
        distill_temperature=temperature,
    )


def _hand_loss(model, batch):
    """Sum over the joint batch's tasks: T^2 * KL(teacher at T || student at T) at each task's T (mean over rows), and
    the per-label BCE for the multi-label task; written out without `distillation_loss`."""
    inputs = {key: value for key, value in batch.items() if key not in ("task", "labels")}
    total, start = 0.0, 0
    for task in JOINT.split("+"):
        logits = model(**inputs, task=task).logits[task].double()
        k = logits.shape[-1]
        if task in TEMPERATURES:
            temperature = TEMPERATURES[task]
            p = batch["labels"][:, start : start + k].double()
            log_q = logits / temperature - torch.logsumexp(logits / temperature, -1, keepdim=True)
            total += ((p * (p.log() - log_q)).sum(-1) * temperature**2).mean().item()
            start += k + 1
        else:
            p = batch["labels"][:, start : start + k].double()
            s = torch.sigmoid(logits)
            total += (-(p * s.log() + (1 - p) * (1 - s).log())).mean().item()
            start += 2 * k
    return total


def test_loss_uses_each_tasks_temperature(tmp_path, labelled):
    plan, _, _ = labelled
    trainer = _trainer(tmp_path, labelled, plan.temperatures)
    model = trainer.model.eval()
    batch = next(iter(trainer.get_train_dataloader()))
    assert batch["task"] == JOINT
    assert trainer.compute_loss(model, batch).item() == pytest.approx(_hand_loss(model, batch), rel=1e-4)
    # The same targets at one temperature (2 for every task) make another loss: the mapping is what counts.
    uniform = _trainer(tmp_path, labelled, 2.0)
    assert [uniform.temperature_for(task) for task in JOINT.split("+")] == [2.0, 2.0, None]
    assert [trainer.temperature_for(task) for task in JOINT.split("+")] == [0.5, 2.0, None]
    assert uniform.compute_loss(model, batch).item() != pytest.approx(_hand_loss(model, batch), rel=1e-3)


def test_trainer_refuses_a_mapping_without_a_trained_task(tmp_path, labelled):
    with pytest.raises(ValueError, match=r"No distillation temperature for task 'topic'"):
        _trainer(tmp_path, labelled, {"sentiment": 0.5})


# --- end to end: reaches training, recorded and reported ------------------------------------------------------------


def test_run_trains_each_task_at_its_temperature_and_records_it(tmp_path, teachers, monkeypatch):  # noqa: F811 (the fixture's value)
    packed, used = [], []  # (classes, temperature) of each task's soft targets, and of each training loss
    real_pack, real_loss = job_module.pack_targets, trainer_module.distillation_loss

    def pack_targets(problem_type, logits, temperature, *args):
        packed.append((logits.shape[-1], temperature))
        return real_pack(problem_type, logits, temperature, *args)

    def distillation_loss(problem_type, logits, labels, temperature, *args):
        used.append((logits.shape[-1], temperature))
        return real_loss(problem_type, logits, labels, temperature, *args)

    monkeypatch.setattr(job_module, "pack_targets", pack_targets)
    monkeypatch.setattr(trainer_module, "distillation_loss", distillation_loss)
    texts = _jsonl(tmp_path / "texts.jsonl", _texts(24, seed=5))
    distill_args = _distill_args(
        teachers,
        texts,
        distill_temperature=1.5,
        task_distill_temperature=["sentiment=0.5"],
        speed_texts=2,
        speed_rounds=1,
    )
    results = run(ModelArguments(), DataArguments(), distill_args, _training_args(tmp_path, max_steps=2))
    # sentiment has 2 labels, topic 4, emotion-distilbert 3 (multi-label: no temperature)
    assert packed == [(2, 0.5), (4, 1.5), (3, None)] and set(used) == {(2, 0.5), (4, 1.5), (3, None)}
    folder = tmp_path / "run" / "model"
    summary = json.loads((folder / "results.json").read_text())["distillation"]
    assert summary["temperature"] == 1.5 and summary["temperatures"] == {"sentiment": 0.5, "topic": 1.5}
    info = json.loads((folder / "training_args.json").read_text())["distillation"]
    assert info["task_distill_temperature"] == ["sentiment=0.5"] and info["distill_temperature"] == 1.5
    line = "Soft-target temperature per single-label task: sentiment 0.5, topic 1.5."
    assert line in format_distillation_table(results)
    config = {"tasks": {task: {"labels": ["a", "b"]} for task in summary["agreement"]}}
    card = render_model_card(config, {"tasks": {}, "split": None, "distillation": summary}, repo_id="org/student")
    assert "Soft-target temperature per single-label task: `sentiment` 0.5, `topic` 1.5." in card


def test_one_temperature_is_said_once_and_older_results_still_read():
    same = {"temperature": 2.0, "temperatures": {"sentiment": 2.0, "topic": 2.0}}
    older = {"temperature": 0.5}  # results.json before per-task temperatures
    multi_only = {"temperature": 2.0, "temperatures": {}}
    for summary, expected in (
        (same, "Soft targets of the single-label tasks at temperature 2."),
        (older, "Soft targets of the single-label tasks at temperature 0.5."),
    ):
        results = {"distillation": {"teachers": [], "agreement": {}, "test": {}, **summary}}
        assert expected in format_distillation_table(results)
        config = {"tasks": {"sentiment": {"labels": ["negative", "positive"]}}}
        card = render_model_card(config, {"tasks": {}, "split": None, **results}, repo_id="org/student")
        assert expected in card
    results = {"distillation": {"teachers": [], "agreement": {}, "test": {}, **multi_only}}
    assert "temperature" not in format_distillation_table(results).lower()
