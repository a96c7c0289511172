"""The shared encoder exported alone as a standard transformers folder: same weights, same outputs, no remote code."""

import json
from pathlib import Path

import pytest
import torch
from helpers import RESULTS, TRAINING_ARGS, script_main, truncate_file
from huggingface_hub import ModelCard
from safetensors.torch import load_file
from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

from polyhead import MultitaskModel
from polyhead.exporters.encoder import export_encoder
from polyhead.saving import save_model_folder
from polyhead.testing_utils import tiny_multitask_config, tiny_tokenizer


TEXTS = ["i love this movie", "bad phone", "the team win the game today and people are happy"]


def _folder(tmp_path, pooling="mean", family="bert"):
    torch.manual_seed(0)
    model = MultitaskModel(tiny_multitask_config(family, pooling=pooling)).eval()

    def extra(folder):
        (folder / "results.json").write_text(json.dumps(RESULTS), encoding="utf-8")
        (folder / "training_args.json").write_text(json.dumps(TRAINING_ARGS), encoding="utf-8")

    return model, save_model_folder(model, tiny_tokenizer(), tmp_path / "model", extra=extra, max_length=48)


@pytest.mark.parametrize("family", ["bert", "roberta", "deberta-v2"])
def test_exported_weights_and_outputs_equal_the_multitask_encoder(family, tmp_path):
    model, folder = _folder(tmp_path, family=family)
    result = export_encoder(folder, tmp_path / "encoder", texts=TEXTS)
    assert result.tasks == ["sentiment", "topic", "emotions"] and result.max_abs_diff <= 1e-5
    saved = load_file(tmp_path / "encoder" / "model.safetensors")
    expected = model.encoder.state_dict()
    assert saved.keys() == expected.keys()
    assert all(torch.equal(saved[name], expected[name]) for name in expected)
    config = json.loads((tmp_path / "encoder" / "config.json").read_text())
    assert "auto_map" not in config and config["model_type"] == family
    encoder = AutoModel.from_pretrained(tmp_path / "encoder").eval()
    assert type(encoder).__module__.startswith("transformers.models.")
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "encoder")
    assert tokenizer.model_max_length == 48  # the trained length travels with the tokenizer
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        assert torch.equal(encoder(**batch).last_hidden_state, model.encoder(**batch).last_hidden_state)
    assert not list(tmp_path.glob(".encoder.*"))  # no temporary folder left behind


def test_exported_encoder_fine_tunes_as_sequence_classification(tmp_path):
    model, folder = _folder(tmp_path)
    export_encoder(folder, tmp_path / "encoder")
    classifier = AutoModelForSequenceClassification.from_pretrained(tmp_path / "encoder", num_labels=5)
    assert classifier.config.num_labels == 5
    assert torch.equal(
        classifier.bert.embeddings.word_embeddings.weight, model.encoder.embeddings.word_embeddings.weight
    )
    batch = tiny_tokenizer()(TEXTS, padding=True, return_tensors="pt")
    loss = classifier(**batch, labels=torch.tensor([0, 4, 2])).loss
    loss.backward()  # trainable from here
    assert classifier.bert.encoder.layer[0].attention.self.query.weight.grad is not None


def test_native_pooling_exports_the_trained_pooler(tmp_path):
    model, folder = _folder(tmp_path, pooling="native")
    export_encoder(folder, tmp_path / "encoder")
    saved = load_file(tmp_path / "encoder" / "model.safetensors")
    assert torch.equal(saved["pooler.dense.weight"], model.native_pooler.dense.weight)
    mean_model, mean_folder = _folder(tmp_path / "mean")
    export_encoder(mean_folder, tmp_path / "mean_encoder")
    assert not any(name.startswith("pooler.") for name in load_file(tmp_path / "mean_encoder" / "model.safetensors"))


def test_card_names_the_tasks_and_their_data(tmp_path):
    _, folder = _folder(tmp_path)
    export_encoder(folder, tmp_path / "encoder")
    card = ModelCard.load(tmp_path / "encoder" / "README.md")
    assert card.data.base_model == "google-bert/bert-base-uncased" and card.data.library_name == "transformers"
    for text in ("`sentiment`", "`topic`", "`emotions`", "`org/tweet-sentiment` (english)", "`topic/train.csv`"):
        assert text in card.text
    assert "| 1200 |" in card.text  # train examples of sentiment, from training_args.json


def test_refuses_a_non_polyhead_folder_and_a_non_empty_target(tmp_path):
    torch.manual_seed(0)
    AutoModel.from_config(tiny_multitask_config().encoder).save_pretrained(tmp_path / "plain")
    with pytest.raises(ValueError, match="not a polyhead multitask model folder"):
        export_encoder(tmp_path / "plain", tmp_path / "out")
    with pytest.raises(ValueError, match="missing: no such folder"):
        export_encoder(tmp_path / "missing", tmp_path / "out")
    _, folder = _folder(tmp_path)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not an empty folder"):
        export_encoder(folder, tmp_path / "busy")
    assert (tmp_path / "busy" / "notes.txt").read_text() == "keep me"
    assert not (tmp_path / "out").exists()
    before = sorted(path.name for path in Path(folder).iterdir())
    with pytest.raises(ValueError, match="is inside the model folder .* it is exported from: give a folder outside"):
        export_encoder(folder, Path(folder) / "encoder")
    assert sorted(path.name for path in Path(folder).iterdir()) == before


def test_a_failed_export_leaves_no_folder(tmp_path, monkeypatch):
    _, folder = _folder(tmp_path)
    monkeypatch.setattr("polyhead.exporters.encoder.max_hidden_difference", lambda *args: 1.0)
    with pytest.raises(ValueError, match="differs"):
        export_encoder(folder, tmp_path / "encoder")
    assert not (tmp_path / "encoder").exists() and not list(tmp_path.glob(".encoder.*"))


def test_script_exports_and_exits_with_a_one_line_error(tmp_path, capsys):
    _, folder = _folder(tmp_path)
    main = script_main("export_encoder")
    summary = main([str(folder), str(tmp_path / "encoder")])
    assert summary["architecture"] == "BertModel" and summary["tasks"] == ["sentiment", "topic", "emotions"]
    assert json.loads(capsys.readouterr().out)["folder"] == str(tmp_path / "encoder")
    with pytest.raises(SystemExit, match="error: .*not an empty folder"):
        main([str(folder), str(tmp_path / "encoder")])


def test_script_names_missing_or_truncated_weights_in_one_line(tmp_path):
    main = script_main("export_encoder")
    _, folder = _folder(tmp_path)
    weights = Path(folder) / "model.safetensors"
    truncate_file(weights)
    with pytest.raises(SystemExit, match=r"^error: .*model\.safetensors is truncated"):
        main([str(folder), str(tmp_path / "encoder")])
    weights.unlink()
    with pytest.raises(SystemExit, match=r"^error: .*no file named model\.safetensors"):
        main([str(folder), str(tmp_path / "encoder")])
    assert not (tmp_path / "encoder").exists()


def test_a_distilbert_export_gives_only_the_inputs_its_encoder_takes(tmp_path):
    # The tiny preset pairs a BERT tokenizer (with token types) with every family; DistilBERT takes none, and
    # transformers 4.x's DistilBertModel refuses them: AutoModel(**tokenizer(text)) must run.
    _, folder = _folder(tmp_path, family="distilbert")
    export_encoder(folder, tmp_path / "encoder")
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "encoder")
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
    assert list(batch) == ["input_ids", "attention_mask"] and tokenizer.model_max_length == 48
    AutoModel.from_pretrained(tmp_path / "encoder")(**batch)
    assert AutoTokenizer.from_pretrained(folder).model_input_names[1] == "token_type_ids"  # the model's, left alone
