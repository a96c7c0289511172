"""One max_length and one position-limit rule: the length a model was trained at is saved with it (the tokenizer's
`model_max_length`) and is the default wherever the model is run or scored; the Hub pipeline's copy of the
position-limit rule agrees with the library's on every family."""

import json

import pandas as pd
import pytest
import torch
from transformers import AutoConfig, AutoTokenizer

from polyhead import MultitaskModel, encoders
from polyhead.evaluation.scoring import evaluate_saved_model
from polyhead.presets import ENCODER_FAMILIES
from polyhead.saving import save_model_folder
from polyhead.serving.handler import EndpointHandler
from polyhead.serving.inference import load_pipeline
from polyhead.serving.predict import predict_file
from polyhead.testing_utils import WORDS, tiny_multitask_config, tiny_tokenizer
from polyhead_remote.pipelines import multitask_inputs


TRAINED = 9  # tokens the model "was trained at"; the tiny tokenizer says 64, the tiny encoder allows 80
LONG = " ".join(WORDS[:40])  # 42 tokens with [CLS] and [SEP]
FAMILIES = sorted({*encoders._PADDING_OFFSET_FAMILIES, *ENCODER_FAMILIES, "bert", "camembert", "deberta", "mpnet"})


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("pad_token_id", [0, 1])
def test_pipeline_position_limit_is_the_librarys(family, pad_token_id):
    config = AutoConfig.for_model(family, max_position_embeddings=80, pad_token_id=pad_token_id)
    assert multitask_inputs.position_limit(config) == encoders.position_limit(config)


def test_pipeline_knows_every_padding_offset_family():
    assert set(multitask_inputs._PADDING_OFFSET_FAMILIES) == set(encoders._PADDING_OFFSET_FAMILIES)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    torch.manual_seed(0)
    model = MultitaskModel(tiny_multitask_config()).eval()
    folder = save_model_folder(
        model, tiny_tokenizer(), tmp_path_factory.mktemp("trained") / "model", max_length=TRAINED
    )
    inputs = tiny_tokenizer()(LONG, truncation=True, max_length=TRAINED, return_tensors="pt")
    with torch.no_grad():
        logits = model(**inputs).logits
    probabilities = torch.softmax(logits["topic"][0], -1)
    return folder, model, (model.config.tasks["topic"]["labels"][int(probabilities.argmax())], probabilities.max())


def test_the_trained_length_is_saved_with_the_tokenizer(trained):
    folder, _, _ = trained
    assert json.loads((folder / "tokenizer_config.json").read_text())["model_max_length"] == TRAINED
    assert AutoTokenizer.from_pretrained(folder).model_max_length == TRAINED
    assert encoders.default_max_length(AutoTokenizer.from_pretrained(folder), tiny_multitask_config().encoder) == 9


def test_pipeline_and_handler_answer_at_the_trained_length(trained, monkeypatch):
    folder, _, (label, score) = trained
    local = load_pipeline(folder)(LONG, tasks=["topic"])["topic"][0]
    remote = load_pipeline(folder, trust_remote_code=True)([LONG, "bad"], tasks=["topic"])[0]["topic"][0]
    monkeypatch.setenv("POLYHEAD_BACKEND", "torch")
    served = EndpointHandler(str(folder))({"inputs": LONG, "parameters": {"tasks": ["topic"]}})["topic"][0]
    for answer in (local, remote, served):
        assert answer["label"] == label and answer["score"] == pytest.approx(float(score), abs=1e-6)
    # A caller can still ask for another length.
    longer = load_pipeline(folder)(LONG, tasks=["topic"], max_length=64)["topic"][0]
    assert longer["score"] != pytest.approx(float(score), abs=1e-6)


def test_bulk_prediction_answers_at_the_trained_length(trained, tmp_path):
    folder, _, (label, score) = trained
    pd.DataFrame({"text": [LONG, "bad"]}).to_csv(tmp_path / "in.csv", index=False)
    predict_file(folder, tmp_path / "in.csv", tmp_path / "out.jsonl", progress=False)
    row = json.loads((tmp_path / "out.jsonl").read_text().splitlines()[0])
    assert row["topic"] == label and row["topic_score"] == pytest.approx(float(score), abs=1e-6)


def test_evaluation_scores_at_the_trained_length(trained, tmp_path):
    folder, _, (label, _) = trained
    data = tmp_path / "data"
    data.mkdir()
    rows = [{"text": LONG, "label": label}] * 2
    for split in ("test", "train"):
        (data / f"{split}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    results = evaluate_saved_model(folder, [f"topic={data}"], output_dir=tmp_path / "eval")
    assert results["max_length"] == TRAINED
    assert results["tasks"]["topic"]["accuracy"] == 1.0
