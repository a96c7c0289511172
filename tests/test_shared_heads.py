"""Heads shared by label list: `--share_heads_by_labels`, the config's `shared_heads`, one head module per group."""

import json
from pathlib import Path

import datasets
import pytest
import torch
from helpers import labelled_split, training_args
from transformers import AutoModel

from polyhead.remote_code import MULTIPLE_CHOICE, MultitaskClassificationPipeline, MultitaskConfig, MultitaskModel
from polyhead.saving import save_model_folder
from polyhead.tasks import TaskSpec
from polyhead.testing_utils import tiny_multitask_config, tiny_tokenizer
from polyhead.training.arguments import DataArguments, ModelArguments
from polyhead.training.head_options import shared_heads_by_labels
from polyhead.training.trainer import make_trainer, prepare_tasks, run


NLI = ["entailment", "neutral", "contradiction"]
TASKS = {
    "mnli": {"labels": NLI, "problem_type": "single_label_classification"},
    "snli": {"labels": [" Entailment", "neutral", "CONTRADICTION"], "problem_type": "single_label_classification"},
    "topic": {"labels": NLI, "problem_type": "multi_label_classification"},  # same labels, another problem type
    "copa": {"labels": ["score"], "problem_type": MULTIPLE_CHOICE},
    "copa2": {"labels": ["score"], "problem_type": MULTIPLE_CHOICE},
}


def test_grouping_by_normalised_labels_and_problem_type():
    assert shared_heads_by_labels(TASKS) == {"mnli": ["mnli", "snli"]}  # multiple-choice heads are never grouped
    assert shared_heads_by_labels({"a": TASKS["mnli"], "b": TASKS["topic"]}) is None


def test_labels_in_another_order_are_refused_clearly():
    swapped = {
        **TASKS,
        "anli": {"labels": ["neutral", "entailment", "contradiction"], "problem_type": TASKS["mnli"]["problem_type"]},
    }
    with pytest.raises(ValueError, match="same labels in different orders.*anli.*same `labels` list"):
        shared_heads_by_labels(swapped)


@pytest.mark.parametrize(
    "shared, message",
    [
        ({"mnli": ["mnli", "topic"]}, "cannot share a head"),
        ({"mnli": ["mnli", "nope"]}, "unknown tasks"),
        ({"mnli": ["snli", "mnli"]}, "must list 'mnli' first"),
        ({"mnli": ["mnli", "snli"], "topic": ["topic", "snli"]}, "two groups"),
        (["mnli", "snli"], "must be"),
    ],
)
def test_config_refuses_bad_groups(shared, message):
    with pytest.raises(ValueError, match=message):
        tiny_multitask_config(tasks=TASKS, shared_heads=shared)


def test_one_head_module_answers_every_task_of_its_group(tmp_path):
    torch.manual_seed(0)
    model = MultitaskModel(tiny_multitask_config(tasks=TASKS, shared_heads={"mnli": ["mnli", "snli"]})).eval()
    assert set(model.heads) == {"mnli", "topic", "copa", "copa2"}
    out = model(input_ids=torch.tensor([[2, 5, 6, 3]]))
    assert torch.equal(out.logits["mnli"], out.logits["snli"]) and set(out.logits) == {"mnli", "snli", "topic"}
    answers = MultitaskClassificationPipeline(model=model, tokenizer=tiny_tokenizer())("good movie", top_k=None)
    assert [a["label"] for a in answers["snli"]][0] in TASKS["snli"]["labels"]
    assert [a["score"] for a in answers["snli"]] == [a["score"] for a in answers["mnli"]]
    folder = save_model_folder(model, tiny_tokenizer(), tmp_path / "model")
    assert json.loads((folder / "config.json").read_text())["shared_heads"] == {"mnli": ["mnli", "snli"]}
    loaded = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
    assert loaded.config.shared_heads == {"mnli": ["mnli", "snli"]}
    assert torch.equal(loaded(input_ids=torch.tensor([[2, 5, 6, 3]])).logits["snli"], out.logits["snli"])
    with pytest.raises(ValueError, match="shares a head"):
        model.remove_task("snli")


def test_configs_without_the_field_load_as_before():
    config = MultitaskConfig.from_dict(tiny_multitask_config().to_dict())
    assert config.shared_heads is None and "shared_heads" not in config.to_dict()


def test_training_shares_the_head_and_reports_every_task(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def task(name, labels, seed):
        data = datasets.DatasetDict(train=labelled_split(24, labels, seed), test=labelled_split(8, labels, seed + 1))
        return TaskSpec(name, dataset=data, labels=labels, validation_size=0)

    specs = [task("a", ["good", "bad"], 0), task("b", ["Good", "bad"], 2), task("c", ["sport", "tech"], 4)]
    args = training_args(tmp_path, max_steps=4, eval_strategy="no")
    results = run(ModelArguments(share_heads_by_labels=True), DataArguments(tasks=specs), args)["multitask"]
    assert set(results["tasks"]) == {"a", "b", "c"}
    config = json.loads((Path(args.model_dir) / "config.json").read_text())
    assert config["shared_heads"] == {"a": ["a", "b"]}
    swapped = [task("a", ["good", "bad"], 0), task("b", ["bad", "good"], 2)]
    with pytest.raises(ValueError, match="different orders"):
        run(ModelArguments(share_heads_by_labels=True), DataArguments(tasks=swapped), training_args(tmp_path / "x"))


def test_a_shared_head_trains_at_its_tasks_common_rate_and_different_rates_are_refused(tmp_path):
    def task(name, labels, seed, rate):
        data = datasets.DatasetDict(train=labelled_split(16, labels, seed))
        return TaskSpec(name, dataset=data, labels=labels, validation_size=0, head_learning_rate=rate)

    tokenizer = tiny_tokenizer()
    model_args = ModelArguments(share_heads_by_labels=True)

    def trainer(rate_a, rate_b):
        specs = [task("a", ["good", "bad"], 0, rate_a), task("b", ["good", "bad"], 2, rate_b)]
        prepared = prepare_tasks(model_args, DataArguments(tasks=specs), tokenizer)
        args = training_args(tmp_path, max_steps=1, eval_strategy="no", learning_rate=1e-4)
        return make_trainer(prepared, tokenizer, model_args, DataArguments(), args)

    # b's rate would apply to the head it shares with a, which asks for learning_rate: refused before training
    with pytest.raises(ValueError, match=r"\['a', 'b'\] share one head \('a'.*a: learning_rate, b: 0.05"):
        trainer(None, 5e-2)
    shared = trainer(5e-2, 5e-2)
    optimizer = shared.create_optimizer()
    head = shared.model.heads["a"].weight
    assert next(g["lr"] for g in optimizer.param_groups if any(p is head for p in g["params"])) == 5e-2


def test_exports_refuse_what_they_cannot_reproduce(tmp_path):
    from polyhead.exporters.task_checkpoint import check_exportable, export_task

    torch.manual_seed(0)
    tasks = {name: spec for name, spec in TASKS.items() if name != "topic"}
    config = tiny_multitask_config(tasks=tasks, shared_heads={"mnli": ["mnli", "snli"]}, pooling="native")
    model = MultitaskModel(config).eval()
    with pytest.raises(ValueError, match="multiple-choice tasks and models with task embeddings"):
        check_exportable(model, "copa")
    result = export_task(model, "snli", tmp_path / "snli", tokenizer=tiny_tokenizer())  # the shared head, exactly
    assert result.max_abs_diff <= 1e-5


def test_training_some_tasks_freezes_the_heads_and_vectors_of_the_others():
    from polyhead.training.grow import freeze_heads_except

    config = tiny_multitask_config(tasks=TASKS, shared_heads={"mnli": ["mnli", "snli"]}, task_embeddings=True)
    model = MultitaskModel(config)
    assert freeze_heads_except(model, ["snli"]) == ["topic", "copa", "copa2"]  # mnli's head trains with snli
    assert model.heads["mnli"].weight.requires_grad and not model.heads["topic"].weight.requires_grad
    assert model.task_embeddings["snli"].requires_grad and not model.task_embeddings["mnli"].requires_grad


def test_growing_the_labels_of_a_shared_head_is_refused_for_every_task_of_its_group():
    """Extending one task's labels would leave its head's other tasks with a head of another size (a config that does
    not load, or a KeyError for a task that runs another's head)."""
    from polyhead.data import TaskData
    from polyhead.training.grow import match_label_maps

    tasks = {"mnli": TASKS["mnli"], "snli": TASKS["snli"], "topic": TASKS["topic"]}
    config = MultitaskConfig(
        encoder=tiny_multitask_config().encoder, tasks=tasks, shared_heads={"mnli": ["mnli", "snli"]}
    )
    for name in ("mnli", "snli"):
        spec = TaskSpec(name, dataset=datasets.Dataset.from_dict({"text": [], "label": []}))
        labels = [*config.tasks[name]["labels"], "unsure"]
        grown = TaskData(spec=spec, labels=labels, problem_type="single_label_classification", splits={})
        with pytest.raises(ValueError, match=rf"'{name}': labels \['unsure'\] .* its head is shared with \['"):
            match_label_maps({name: grown}, config, extend_labels=True)


def test_sharing_heads_when_no_labels_match_says_so(caplog):
    from polyhead.training.head_options import config_options

    with caplog.at_level("WARNING", logger="polyhead.training.head_options"):
        options = config_options(
            ModelArguments(share_heads_by_labels=True), {"mnli": TASKS["mnli"], "copa": TASKS["copa"]}
        )
    assert options == {"shared_heads": None} and "no two tasks have the same labels" in caplog.text
