"""Multiple-choice tasks: data rows, the collator, training, evaluation, save/load with remote code, the pipeline."""

import json
import random
import textwrap
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from helpers import BLOCKER, labelled_split, run_fresh, training_args
from huggingface_hub import ModelCard

from polyhead.data import MultitaskCollator, load_task_data, tokenize_task_data
from polyhead.publishing.model_card import render_model_card
from polyhead.remote_code import MULTIPLE_CHOICE, MultitaskClassificationPipeline, MultitaskModel, ranking_module
from polyhead.saving import save_model_folder
from polyhead.tasks import TaskSpec
from polyhead.testing_utils import WORDS, tiny_multitask_config, tiny_tokenizer
from polyhead.training.arguments import DataArguments, ModelArguments, MultitaskTrainingArguments
from polyhead.training.trainer import make_trainer, prepare_tasks, run


MIXED_TASKS = {
    "sentiment": {"labels": ["negative", "positive"]},
    "topic": {"labels": ["a", "b", "c"], "problem_type": "multi_label_classification"},
    "nli": {"labels": ["entailment", "contradiction"], "text_pair": True},
    "copa": {"problem_type": MULTIPLE_CHOICE},
}


RIGHT, WRONG = ["great", "good", "amazing", "happy"], ["bad", "terrible", "awful", "boring", "sad"]


def choice_rows(n, seed, by_text=False):
    # The right choice is a positive word among negative ones: learnable by a tiny random encoder. 2-4 choices a row.
    rng = random.Random(seed)
    rows = {"text": [], "question": [], "choices": [], "label": []}
    for _ in range(n):
        options = rng.sample(WRONG, rng.randint(1, 3))
        answer = rng.randrange(len(options) + 1)
        options.insert(answer, rng.choice(RIGHT))
        rows["text"].append(" ".join(rng.sample(WORDS, 4)))
        rows["question"].append("which")
        rows["choices"].append(options)
        rows["label"].append(options[answer] if by_text else answer)
    return datasets.Dataset.from_dict(rows)


def copa_spec(n=48, **kwargs):
    data = datasets.DatasetDict(
        train=choice_rows(n, 0), validation=choice_rows(16, 1, by_text=True), test=choice_rows(16, 2)
    )
    return TaskSpec("copa", dataset=data, problem_type=MULTIPLE_CHOICE, **kwargs)


@pytest.fixture
def mixed_model():
    torch.manual_seed(0)
    return MultitaskModel(tiny_multitask_config(tasks=MIXED_TASKS)).eval()


def test_config_normalises_a_multiple_choice_task_to_one_score():
    config = tiny_multitask_config(tasks=MIXED_TASKS)
    assert config.tasks["copa"] == {"labels": ["score"], "problem_type": MULTIPLE_CHOICE}
    assert config.tasks_of_kind(True) == ["copa"] and "copa" not in config.tasks_of_kind(False)
    with pytest.raises(ValueError, match="takes no labels"):
        tiny_multitask_config(tasks={"copa": {"problem_type": MULTIPLE_CHOICE, "labels": ["a", "b"]}})
    assert ranking_module.MULTIPLE_CHOICE == MULTIPLE_CHOICE  # the pipeline's copy of the name


def test_rows_with_varying_choice_counts_are_padded_and_masked():
    data = load_task_data([copa_spec()])["copa"]
    assert data.labels == ["score"] and data.head == {"labels": ["score"], "problem_type": MULTIPLE_CHOICE}
    eval_rows = data.splits["eval"]  # labelled by the right choice's text: read as its index
    assert [row["choices"][i] for row, i in zip(eval_rows, data.label_ids("eval"))] == eval_rows["label"]
    encoded = tokenize_task_data(data, tiny_tokenizer(), max_length=32)["train"]
    batch = MultitaskCollator(tiny_tokenizer())([encoded[i] for i in range(6)])
    counts = [len(encoded[i]["input_ids"]) for i in range(6)]
    assert batch["input_ids"].shape[:2] == (6, max(counts)) and batch["task"] == "copa"
    assert batch["choice_mask"].sum(dim=1).tolist() == counts
    model = MultitaskModel(tiny_multitask_config(tasks=MIXED_TASKS))
    out = model(**batch)
    assert out.logits["copa"].shape == (6, max(counts)) and out.loss.requires_grad
    padded = ~batch["choice_mask"]
    assert (out.logits["copa"][padded] == torch.finfo(torch.float32).min).all()
    assert torch.allclose(torch.softmax(out.logits["copa"], -1)[padded], torch.tensor(0.0))


def test_padding_choices_do_not_change_the_real_scores(mixed_model):
    tokenizer = tiny_tokenizer()
    pairs = tokenizer(["good movie"] * 3, ["good", "bad", "tech"], padding=True, return_tensors="pt")
    full = mixed_model(**{k: v[None] for k, v in pairs.items()}).logits["copa"]
    padded = {k: torch.cat([v, v[:1]])[None] for k, v in pairs.items()}
    mask = torch.tensor([[True, True, True, False]])
    assert torch.allclose(mixed_model(**padded, choice_mask=mask).logits["copa"][:, :3], full, atol=1e-6)


@pytest.mark.parametrize(
    "rows, message",
    [
        ({"choices": [["only"]], "label": [0]}, "at least 2 distinct"),
        ({"choices": [["a", "a"]], "label": [0]}, "at least 2 distinct"),
        ({"choices": [["good", "bad"]], "label": ["tech"]}, "not among its choices"),
        ({"choices": [["good", "bad"]], "label": [2]}, "not among its choices"),
    ],
)
def test_bad_rows_name_the_row_and_the_fix(rows, message):
    data = datasets.Dataset.from_dict({"text": ["a movie"], **rows})
    spec = TaskSpec("copa", dataset=data, problem_type=MULTIPLE_CHOICE, validation_size=0, test_size=0)
    with pytest.raises(ValueError, match=f"row 0 of its train split.*{message}"):
        load_task_data([spec])


def test_model_answers_other_tasks_from_one_pass_and_refuses_the_wrong_kind(mixed_model):
    ids = torch.tensor([[2, 5, 6, 3]])
    assert set(mixed_model(input_ids=ids).logits) == {"sentiment", "topic", "nli"}
    with pytest.raises(ValueError, match="do not take inputs"):
        mixed_model(input_ids=ids, task="copa")
    with pytest.raises(ValueError, match="do not take multiple-choice"):
        mixed_model(input_ids=ids[None], task="sentiment")
    with pytest.raises(ValueError, match="index of the right choice"):
        mixed_model(input_ids=ids[None].expand(1, 2, 4), labels=torch.tensor([2]))


@pytest.mark.parametrize(
    "inputs, message",
    [  # each failed inside the encoder or in indexing (IndexError, "not enough values to unpack"), or scored nothing
        (
            {"input_ids": torch.ones(4, dtype=torch.long)},
            r"input_ids must be \(batch, length\), or .* got shape \(4,\)",
        ),
        ({"input_ids": torch.ones(1, 2, 3, 4, dtype=torch.long)}, r"got shape \(1, 2, 3, 4\)"),
        ({"input_ids": torch.ones(2, 3, 7, dtype=torch.long), "choice_mask": torch.ones(2, 4)}, r"= \(2, 3\), got"),
        ({"input_ids": torch.ones(2, 3, 7, dtype=torch.long), "attention_mask": torch.ones(2, 7)}, "attention_mask"),
        ({"input_ids": torch.ones(2, 7, dtype=torch.long), "attention_mask": torch.ones(2, 6)}, r"\(2, 7\); got"),
        (
            {"input_ids": torch.ones(2, 7, dtype=torch.long), "choice_mask": torch.ones(2, 3)},
            "not \\(batch, length\\)",
        ),
        (
            {"input_ids": torch.ones(2, 3, 7, dtype=torch.long), "choice_mask": torch.tensor([[1, 1, 0], [0, 0, 0]])},
            r"choice_mask rows \[1\] have no real choice",
        ),
    ],
)
def test_inputs_of_the_wrong_shape_are_named(mixed_model, inputs, message):
    with pytest.raises(ValueError, match=message):
        mixed_model(**inputs)


def test_pipeline_answers_choices_sorted_and_other_inputs_by_other_tasks(mixed_model):
    classifier = MultitaskClassificationPipeline(model=mixed_model, tokenizer=tiny_tokenizer())
    answer = classifier({"text": "good movie", "question": "why", "choices": ["good", "bad", "tech"]})
    assert list(answer) == ["copa"] and sorted(a["label"] for a in answer["copa"]) == ["bad", "good", "tech"]
    scores = [a["score"] for a in answer["copa"]]
    assert scores == sorted(scores, reverse=True) and sum(scores) == pytest.approx(1.0)
    mixed = classifier(["good movie", {"text": "good movie", "question": "why", "choices": ["good", "bad", "tech"]}])
    assert set(mixed[0]) == {"sentiment", "topic", "nli"} and mixed[1] == answer
    assert classifier({"text": "x", "choices": ["a", "b", "c"]}, top_k=1)["copa"][0]["label"] in "abc"


@pytest.mark.parametrize(
    "inputs, kwargs, message",
    [
        ({"text": "a", "choices": ["a"]}, {}, "at least 2 distinct"),
        ({"text": "a", "choices": "ab"}, {}, "at least 2 distinct"),
        ({"text": "a", "choices": ["a", "b"], "label": 0}, {}, "has keys"),
        ("a movie", {"tasks": ["copa"]}, "cannot answer texts"),
        ({"text": "a", "choices": ["a", "b"]}, {"tasks": ["sentiment"]}, "cannot answer multiple-choice"),
    ],
)
def test_pipeline_bad_inputs(mixed_model, inputs, kwargs, message):
    classifier = MultitaskClassificationPipeline(model=mixed_model, tokenizer=tiny_tokenizer())
    with pytest.raises(ValueError, match=message):
        classifier(inputs, **kwargs)


def test_a_model_without_multiple_choice_tasks_refuses_choices():
    model = MultitaskModel(tiny_multitask_config()).eval()
    classifier = MultitaskClassificationPipeline(model=model, tokenizer=tiny_tokenizer())
    with pytest.raises(ValueError, match="cannot answer multiple-choice"):
        classifier({"text": "a movie", "choices": ["good", "bad"]})


def mixed_specs():
    sentiment = datasets.DatasetDict(
        train=labelled_split(32, ["good", "bad"], 0), test=labelled_split(8, ["good", "bad"], 1)
    )
    return [TaskSpec("sentiment", dataset=sentiment, validation_size=0), copa_spec()]


def test_training_learns_and_reports_accuracy(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    args = training_args(tmp_path, num_train_epochs=6, eval_strategy="no")
    results = run(ModelArguments(), DataArguments(tasks=mixed_specs()), args)["multitask"]
    assert results["problem_types"]["copa"] == MULTIPLE_CHOICE and results["primary_metrics"]["copa"] == "accuracy"
    assert set(results["tasks"]["copa"]) == {"accuracy"} and results["tasks"]["copa"]["accuracy"] > 0.6
    assert "sentiment" in results["tasks"]
    folder = Path(args.model_dir)
    saved = json.loads((folder / "results.json").read_text())
    assert saved["tasks"]["copa"] == results["tasks"]["copa"]
    config = json.loads((folder / "config.json").read_text())
    card = render_model_card(config, saved, repo_id="org/mixed")
    assert "multiple choice" in card and len(ModelCard(card).data.eval_results) == 1 + 4  # copa + sentiment's 4


LOAD_AND_ANSWER = BLOCKER + textwrap.dedent(
    """
    import json
    from transformers import pipeline
    classifier = pipeline("multitask-classification", model=sys.argv[1], trust_remote_code=True)
    print(json.dumps(classifier(json.loads(sys.argv[2]), top_k=None)))
    """
)


@pytest.mark.slow
def test_saved_mixed_model_answers_through_remote_code(mixed_model, tmp_path):
    folder = save_model_folder(mixed_model, tiny_tokenizer(), tmp_path / "model")
    inputs = ["good movie", {"text": "good movie", "question": "why", "choices": ["good", "bad", "tech"]}]
    out = json.loads(run_fresh(LOAD_AND_ANSWER, str(folder), json.dumps(inputs), cwd=tmp_path).splitlines()[-1])
    expected = MultitaskClassificationPipeline(model=mixed_model, tokenizer=tiny_tokenizer())(inputs, top_k=None)
    assert out[0].keys() == expected[0].keys() and [a["label"] for a in out[1]["copa"]] == [
        a["label"] for a in expected[1]["copa"]
    ]
    assert [a["score"] for a in out[1]["copa"]] == pytest.approx([a["score"] for a in expected[1]["copa"]], abs=1e-5)


def test_a_generator_of_choice_inputs_is_refused_not_misread(mixed_model):
    classifier = MultitaskClassificationPipeline(model=mixed_model, tokenizer=tiny_tokenizer())
    with pytest.raises(ValueError, match="not in a generator"):
        list(classifier(item for item in [{"text": "good movie", "choices": ["good", "bad"]}]))


def test_a_saved_model_is_scored_on_its_multiple_choice_task(mixed_model, tmp_path):
    from polyhead.evaluation.scoring import evaluate_saved_model

    folder = save_model_folder(mixed_model, tiny_tokenizer(), tmp_path / "model")
    results = evaluate_saved_model(folder, [copa_spec()], split="test", output_dir=tmp_path / "eval")
    assert set(results["tasks"]["copa"]) == {"accuracy"} and results["num_examples"]["copa"] == 16
    assert json.loads((tmp_path / "eval" / "results.json").read_text())["primary_metrics"]["copa"] == "accuracy"
    # the model says the task is multiple-choice: the spec needs no problem_type to read its `choices` column
    plain = TaskSpec("copa", dataset=copa_spec().dataset)
    again = evaluate_saved_model(folder, [plain], split="test", output_dir=tmp_path / "eval-plain")
    assert again["tasks"] == results["tasks"]


def test_choices_the_trainer_pads_are_never_chosen_nor_scored(tmp_path, monkeypatch):
    # With several processes each task runs the Trainer's evaluation loop, which pads logits of different widths with
    # -100 (batches here: 2 rows of 2-4 choices; across processes alike). A head whose every logit is below -100
    # (bias -1000) must be scored on its real choices only: as the one-pass evaluation, which pads at the lowest value.
    tokenizer = tiny_tokenizer()
    prepared = prepare_tasks(ModelArguments(), DataArguments(tasks=[copa_spec()]), tokenizer)
    args = training_args(tmp_path, per_device_eval_batch_size=2)
    trainer = make_trainer(prepared, tokenizer, ModelArguments(), DataArguments(), args)
    counts = [len(ids) for ids in trainer.eval_datasets["copa"]["input_ids"]]
    assert len({max(counts[i : i + 2]) for i in range(0, len(counts), 2)}) > 1  # the loop pads narrower batches
    with torch.no_grad():
        trainer.model.heads["copa"].bias.fill_(-1000.0)
    one_pass = trainer.evaluate()
    monkeypatch.setattr(MultitaskTrainingArguments, "world_size", property(lambda self: 2))
    logits, _ = trainer._task_logits(trainer.eval_datasets, None, "eval")["copa"]
    assert logits.shape == (len(counts), max(counts))
    for row, count in enumerate(counts):
        assert (logits[row, :count] < -900).all() and (logits[row, count:] == np.finfo(np.float32).min).all(), row
    per_task = trainer.evaluate()
    assert per_task["eval_copa_accuracy"] == one_pass["eval_copa_accuracy"]
    assert per_task["eval_copa_loss"] == pytest.approx(one_pass["eval_copa_loss"], rel=1e-5)


def test_label_smoothing_trains_a_multiple_choice_task_on_its_real_choices(tmp_path):
    # Rows of 2-4 choices share a batch: the narrower rows' padding (the lowest float) must stay out of the smoothing
    # term (torch's own label smoothing over it gives a loss near 1e37).
    tokenizer = tiny_tokenizer()
    prepared = prepare_tasks(ModelArguments(), DataArguments(tasks=[copa_spec()]), tokenizer)
    args = training_args(tmp_path, label_smoothing_factor=0.1)
    trainer = make_trainer(prepared, tokenizer, ModelArguments(), DataArguments(), args)
    batch = next(iter(trainer.get_train_dataloader()))
    assert not batch["choice_mask"].all()  # the batch holds padding
    trainer.model.train()
    loss = trainer.compute_loss(trainer.model, batch)
    loss.backward()
    assert 0 < loss.item() < 10
    assert all(torch.isfinite(p.grad).all() for p in trainer.model.parameters() if p.grad is not None)
    assert trainer.train().training_loss < 10
