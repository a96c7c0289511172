"""The saved folder loads with trust_remote_code in a fresh process that cannot import this source tree."""

import json
import textwrap

import pytest
import torch
from helpers import BLOCKER, TEXTS, run_fresh
from transformers import pipeline

from polyhead.saving import REMOTE_CODE_FILES, atomic_folder, save_model_folder


LOAD_AND_RUN = BLOCKER + textwrap.dedent(
    """
    import json, torch
    from transformers import AutoConfig, AutoModel, AutoTokenizer, pipeline
    folder, texts = sys.argv[1], json.loads(sys.argv[2])
    config = AutoConfig.from_pretrained(folder, trust_remote_code=True)
    model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
    with torch.no_grad():
        logits = model(**tokenizer(texts, padding=True, return_tensors="pt")).logits
    classifier = pipeline("multitask-classification", model=folder, trust_remote_code=True)
    print(json.dumps({
        "config_class": type(config).__module__ + "." + type(config).__name__,
        "model_class": type(model).__module__ + "." + type(model).__name__,
        "tasks": config.task_names,
        "logits": {task: value.tolist() for task, value in logits.items()},
        "pipeline": classifier(texts, top_k=None, threshold=0.0, batch_size=2),
    }))
    """
)

REFUSE = BLOCKER + textwrap.dedent(
    """
    from transformers import AutoModel
    try:
        AutoModel.from_pretrained(sys.argv[1])
    except ValueError as error:
        print("REFUSED:", error)
    """
)


@pytest.fixture
def saved(model, tokenizer, tmp_path):
    return save_model_folder(model, tokenizer, tmp_path / "model")


def test_folder_holds_code_config_and_safetensors(saved):
    names = {p.name for p in saved.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", *REMOTE_CODE_FILES} <= names
    assert not [n for n in names if n.endswith((".bin", ".pt", ".pkl"))]
    config = json.loads((saved / "config.json").read_text())
    assert config["auto_map"] == {
        "AutoConfig": "configuration_multitask.MultitaskConfig",
        "AutoModel": "modeling_multitask.MultitaskModel",
    }
    assert config["custom_pipelines"]["multitask-classification"] == {
        "impl": "multitask_classification.MultitaskClassificationPipeline",
        "pt": ["AutoModel"],
        "type": "text",
    }
    for name in REMOTE_CODE_FILES:  # Hub remote code: flat siblings, single-dot relative imports only
        assert "from .." not in (saved / name).read_text()


def test_saved_tokenizer_names_its_inputs(saved, tokenizer):
    # transformers 5.0 loads a tokenizer saved by later releases as a generic backend that, without these names,
    # returns no token_type_ids: a sentence pair's second text would be read as the first segment.
    config = json.loads((saved / "tokenizer_config.json").read_text())
    assert config["model_input_names"] == list(tokenizer.model_input_names)
    assert "token_type_ids" in config["model_input_names"]  # the tiny BERT tokenizer's pairs need them


@pytest.mark.slow
def test_fresh_process_loads_with_trust_remote_code_and_matches(saved, model, tokenizer, tmp_path):
    out = json.loads(run_fresh(LOAD_AND_RUN, str(saved), json.dumps(TEXTS), cwd=tmp_path).splitlines()[-1])
    assert out["config_class"].startswith("transformers_modules.") and out["config_class"].endswith("MultitaskConfig")
    assert out["model_class"].startswith("transformers_modules.") and out["model_class"].endswith("MultitaskModel")
    assert out["tasks"] == ["sentiment", "topic", "emotions"]
    with torch.no_grad():
        logits = model(**tokenizer(TEXTS, padding=True, return_tensors="pt")).logits
    for task, value in logits.items():
        torch.testing.assert_close(torch.tensor(out["logits"][task]), value, rtol=0, atol=1e-6)
    local = pipeline("multitask-classification", model=model, tokenizer=tokenizer)
    expected = local(TEXTS, top_k=None, threshold=0.0)
    for theirs, ours in zip(out["pipeline"], expected):
        for task in ours:
            assert [i["label"] for i in theirs[task]] == [i["label"] for i in ours[task]]
            assert [i["score"] for i in theirs[task]] == pytest.approx([i["score"] for i in ours[task]], abs=1e-6)


@pytest.mark.slow
def test_without_trust_remote_code_the_load_refuses(saved, tmp_path):
    out = run_fresh(REFUSE, str(saved), cwd=tmp_path)
    assert "REFUSED:" in out and "trust_remote_code=True" in out


def test_atomic_folder_leaves_nothing_on_failure(tmp_path, model, tokenizer):
    target = tmp_path / "model"
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_folder(target) as tmp:
            model.save_pretrained(tmp)
            raise RuntimeError("disk full")
    assert not target.exists() and list(tmp_path.iterdir()) == []
    save_model_folder(model, tokenizer, target)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        save_model_folder(model, tokenizer, target)
    before = (target / "model.safetensors").read_bytes()

    def fail(folder):
        raise OSError("upload of results failed")

    with pytest.raises(OSError, match="results failed"):
        save_model_folder(model, tokenizer, target, overwrite=True, extra=fail)
    assert (target / "model.safetensors").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


@pytest.mark.slow
def test_resized_token_embeddings_load_with_remote_code(model, tokenizer, tmp_path):
    tokenizer.add_tokens(["polyheadword"])
    model.resize_token_embeddings(len(tokenizer))
    folder = save_model_folder(model, tokenizer, tmp_path / "resized")
    texts = ["i love polyheadword", "polyheadword is bad"]
    out = json.loads(run_fresh(LOAD_AND_RUN, str(folder), json.dumps(texts), cwd=tmp_path).splitlines()[-1])
    with torch.no_grad():
        logits = model(**tokenizer(texts, padding=True, return_tensors="pt")).logits
    for task, value in logits.items():
        torch.testing.assert_close(torch.tensor(out["logits"][task]), value, rtol=0, atol=1e-6)
