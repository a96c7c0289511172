"""Task embeddings: one learned vector per task added to the first token's input embedding, dropped in training."""

import json
from pathlib import Path

import datasets
import pytest
import torch
from helpers import tiny_task_specs, training_args
from transformers import AutoModel, pipeline

from polyhead.evaluation.scoring import predict_all_logits
from polyhead.remote_code import MultitaskClassificationPipeline, MultitaskModel
from polyhead.saving import save_model_folder
from polyhead.testing_utils import TINY_TASKS, tiny_multitask_config, tiny_tokenizer
from polyhead.training.arguments import DataArguments, ModelArguments
from polyhead.training.trainer import run


IDS = torch.tensor([[2, 5, 6, 7, 3], [2, 8, 9, 3, 0]])
MASK = (IDS != 0).long()


@pytest.fixture
def model():
    torch.manual_seed(0)
    model = MultitaskModel(tiny_multitask_config(tasks=TINY_TASKS, task_embeddings=True)).eval()
    for vector in model.task_embeddings.values():  # trained-looking vectors (they start at zero)
        torch.nn.init.normal_(vector, std=1.0)
    return model


def test_off_by_default_and_absent_from_config_json():
    model = MultitaskModel(tiny_multitask_config())
    assert model.task_embeddings is None and not model.config.task_embeddings
    assert "task_embeddings" not in model.config.to_dict() and "task_embedding_dropout" not in model.config.to_dict()


def test_fresh_vectors_start_at_zero_and_leave_the_encoder_as_it_was():
    torch.manual_seed(0)
    model = MultitaskModel(tiny_multitask_config(task_embeddings=True)).eval()
    assert torch.equal(model.encode(IDS, MASK, task="topic"), model.encode(IDS, MASK))


def test_each_task_runs_its_own_pass_with_its_vector(model):
    together = model(input_ids=IDS, attention_mask=MASK).logits
    for task in TINY_TASKS:
        alone = model(input_ids=IDS, attention_mask=MASK, task=task).logits[task]
        torch.testing.assert_close(together[task], alone)
        shared = model.head_logits(model.encode(IDS, MASK), [task])  # the pass without any vector differs
        assert not torch.allclose(alone, shared)


def test_training_drops_the_vector_per_row():
    torch.manual_seed(0)
    model = MultitaskModel(tiny_multitask_config(task_embeddings=True, task_embedding_dropout=0.5))
    torch.nn.init.normal_(model.task_embeddings["topic"], std=1.0)
    model.eval()
    plain = model.encoder.get_input_embeddings()(IDS.repeat(50, 1))
    model.train()
    embedded = model.embed_task("topic", IDS.repeat(50, 1), None)
    dropped = torch.isclose(embedded[:, 0], plain[:, 0]).all(dim=-1)
    assert 0 < dropped.sum() < len(dropped)  # some rows without their vector, not all
    assert torch.equal(embedded[:, 1:], plain[:, 1:])  # only the first token changes


def test_pipeline_and_evaluation_answer_as_the_per_task_forward(model):
    classifier = MultitaskClassificationPipeline(model=model, tokenizer=tiny_tokenizer())
    texts = ["good movie", "bad phone today"]
    together = classifier(texts, top_k=None, batch_size=2)
    for task in TINY_TASKS:
        alone = classifier(texts, tasks=[task], top_k=None)
        for row, single in zip(together, alone):
            assert [a["label"] for a in row[task]] == [a["label"] for a in single[task]]
            assert [a["score"] for a in row[task]] == pytest.approx([a["score"] for a in single[task]], abs=1e-6)
    encoded = tiny_tokenizer()(texts)
    rows = [{**{k: v[i] for k, v in encoded.items()}, "labels": 0} for i in range(2)]
    data = datasets.Dataset.from_list(rows)
    logits = predict_all_logits(model, {"sentiment": data, "topic": data}, tiny_tokenizer(), progress=False)
    batch = tiny_tokenizer()(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = model(**batch, task="topic").logits["topic"]
    torch.testing.assert_close(torch.tensor(logits["topic"][0]), expected, atol=1e-5, rtol=0)


def test_an_embedding_for_an_unknown_task_is_refused(model):
    with pytest.raises(ValueError, match="No task embedding for 'nope'"):
        model.encode(IDS, MASK, task="nope")
    with pytest.raises(ValueError, match="Unknown task"):
        model(input_ids=IDS, task="nope")


def test_a_task_named_like_a_parameter_dict_method_is_refused(model):
    tasks = {"get": {"labels": ["a", "b"]}, "topic": {"labels": ["x", "y"]}}
    with pytest.raises(ValueError, match=r"\['get'\] are nn.ParameterDict attributes: rename them"):
        MultitaskModel(tiny_multitask_config(tasks=tasks, task_embeddings=True))
    assert MultitaskModel(tiny_multitask_config(tasks=tasks)).task_names == ["get", "topic"]  # fine without them
    with pytest.raises(ValueError, match="nn.ParameterDict attributes"):
        model.add_task("copy", ["a", "b"])
    assert "copy" not in model.config.tasks and "copy" not in model.heads


def test_add_and_remove_task_keep_the_vectors_in_step(model):
    model.add_task("extra", ["x", "y"])
    assert torch.equal(model.task_embeddings["extra"], torch.zeros(model.config.hidden_size))
    model.remove_task("extra")
    assert "extra" not in model.task_embeddings


def test_save_and_load_through_remote_code(model, tmp_path):
    folder = save_model_folder(model, tiny_tokenizer(), tmp_path / "model")
    config = json.loads((folder / "config.json").read_text())
    assert config["task_embeddings"] is True and config["task_embedding_dropout"] == 0.1
    loaded = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
    with torch.no_grad():
        for task, logits in model(input_ids=IDS, attention_mask=MASK).logits.items():
            torch.testing.assert_close(loaded(input_ids=IDS, attention_mask=MASK).logits[task], logits)


def test_training_with_task_embeddings(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    args = training_args(tmp_path, max_steps=6, eval_strategy="no")
    model_args = ModelArguments(task_embeddings=True, task_embedding_dropout=0.2)
    results = run(model_args, DataArguments(tasks=tiny_task_specs(24)), args)["multitask"]
    assert set(results["tasks"]) == {"sentiment", "topic"}
    loaded = AutoModel.from_pretrained(Path(args.model_dir), trust_remote_code=True)
    assert loaded.config.task_embedding_dropout == 0.2
    assert loaded.task_embeddings["sentiment"].abs().sum() > 0  # trained away from zero
    with pytest.raises(ValueError, match="apply to a new model"):
        ModelArguments(task_embeddings=True, init_from=str(args.model_dir))


def test_an_electra_encoder_gets_vectors_as_wide_as_its_input_embeddings(tmp_path):
    # ELECTRA's input embeddings (embedding_size 16 in the tiny preset) are narrower than its hidden states (32):
    # the vectors are added to the input embeddings, so they take their width; training and the pipeline run.
    torch.manual_seed(0)
    model = MultitaskModel(tiny_multitask_config("electra", task_embeddings=True))
    assert (model.config.encoder.embedding_size, model.config.hidden_size) == (16, 32)
    assert {tuple(vector.shape) for vector in model.task_embeddings.values()} == {(16,)}
    model.train()
    labels = {"sentiment": torch.tensor([1, 0]), "topic": torch.tensor([3, 1])}
    model(input_ids=IDS, attention_mask=MASK, labels=labels).loss.backward()
    assert model.task_embeddings["topic"].grad.abs().sum() > 0
    model.add_task("extra", ["x", "y"])
    assert model.task_embeddings["extra"].shape == (16,)
    for vector in model.task_embeddings.values():  # trained-looking vectors
        torch.nn.init.normal_(vector, std=1.0)
    model.eval()
    texts = ["good movie", "bad phone today"]
    expected = MultitaskClassificationPipeline(model=model, tokenizer=tiny_tokenizer())(texts, top_k=None)
    with torch.no_grad():
        alone = model(**tiny_tokenizer()(texts, padding=True, return_tensors="pt"), task="topic").logits["topic"]
    found = torch.tensor([[a["score"] for a in row["topic"]] for row in expected])
    torch.testing.assert_close(found, alone.softmax(-1).sort(descending=True).values, rtol=0, atol=1e-6)
    folder = save_model_folder(model, tiny_tokenizer(), tmp_path / "model")
    classifier = pipeline("multitask-classification", model=str(folder), trust_remote_code=True)
    for row, reference in zip(classifier(texts, top_k=None), expected, strict=True):
        for task, answer in reference.items():
            assert [a["label"] for a in row[task]] == [a["label"] for a in answer]
            assert [a["score"] for a in row[task]] == pytest.approx([a["score"] for a in answer], abs=1e-6)
