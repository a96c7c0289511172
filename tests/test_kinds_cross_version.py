"""Mixed models (single-label, multi-label, pairs, multiple choice, shared heads, task embeddings) on every
transformers release of `.venv-compat` (4.51.3 to the newest), through remote code and the endpoint handler."""

import json
import sys

import pytest
import torch
from helpers import BLOCKER
from test_cross_version import TEXTS, assert_same_answers, compat_pythons, run_check, run_endpoint

from polyhead import MultitaskModel
from polyhead.remote_code import MULTIPLE_CHOICE
from polyhead.saving import save_model_folder
from polyhead.testing_utils import tiny_multitask_config, tiny_tokenizer


MIXED = {
    "sentiment": {"labels": ["negative", "positive"]},
    "review": {"labels": ["Negative", "positive"]},
    "emotions": {"labels": ["anger", "joy", "fear"], "problem_type": "multi_label_classification"},
    "nli": {"labels": ["entailment", "neutral", "contradiction"], "text_pair": True},
    "copa": {"problem_type": MULTIPLE_CHOICE},
}
VARIANTS = {
    "mixed": {"shared_heads": {"sentiment": ["sentiment", "review"]}},
    "mixed-embeddings": {"shared_heads": {"sentiment": ["sentiment", "review"]}, "task_embeddings": True},
}


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("kinds")
    saved = []
    for name, options in VARIANTS.items():
        torch.manual_seed(0)
        model = MultitaskModel(tiny_multitask_config("bert", tasks=MIXED, **options)).eval()
        if model.task_embeddings is not None:  # non-zero vectors, so that they change the answers
            torch.nn.init.normal_(model.task_embeddings["nli"], std=1.0)
        saved.append(save_model_folder(model, tiny_tokenizer(), root / name))
    return saved


def assert_same_choices(theirs, reference, where):
    for got, expected in zip(theirs["choices"], reference["choices"], strict=True):
        for row, answer in zip(got, expected, strict=True):
            assert [a["label"] for a in row["copa"]] == [a["label"] for a in answer["copa"]], where
            assert [a["score"] for a in row["copa"]] == pytest.approx([a["score"] for a in answer["copa"]], abs=1e-5)


@pytest.mark.slow
def test_mixed_models_load_and_answer_alike_on_every_release(folders, tmp_path):
    reference = run_check(sys.executable, tmp_path / "newest.json", folders)["results"]
    for folder in folders:
        ours = reference[str(folder)]
        assert set(ours["logits"]) == {"sentiment", "review", "emotions", "nli"}  # copa needs choices
        assert ours["choices"][0][0]["copa"][0]["label"] in TEXTS
    for version, python in compat_pythons().items():
        out = run_check(python, tmp_path / f"transformers-{version}.json", folders)
        for folder in folders:
            where = f"transformers {version}, {folder.name}"
            assert_same_answers(out["results"][str(folder)], reference[str(folder)], where)
            assert_same_choices(out["results"][str(folder)], reference[str(folder)], where)


ENDPOINT = BLOCKER + (
    "import json\n"
    "folder, texts = sys.argv[1], json.loads(sys.argv[2])\n"
    "sys.path.insert(0, folder)\n"
    "import handler\n"
    "endpoint = handler.EndpointHandler(folder)\n"
    "request = [texts[0], {'text': texts[0], 'question': 'why', 'choices': texts}]\n"
    "print(json.dumps(endpoint({'inputs': request, 'parameters': {'top_k': None}})))\n"
)


@pytest.mark.slow
def test_the_handler_answers_choices_on_the_oldest_release(folders, tmp_path):
    python = compat_pythons()["4.51.3"]
    for folder in folders:
        answers = run_endpoint(python, ENDPOINT, folder, tmp_path / f"modules-{folder.name}")
        assert set(answers[0]) == {"sentiment", "review", "emotions", "nli"}
        assert sorted(a["label"] for a in answers[1]["copa"]) == sorted(TEXTS)
        assert json.dumps(answers)  # plain JSON
