"""`dtype=torch.bfloat16` / `torch.float16` through the standard transformers paths (`AutoModel.from_pretrained`,
`pipeline(...)`) with remote code: every weight in that dtype, every pooling, every pipeline path, scores as float32
Python floats.

The folders are built as users build theirs, from a saved encoder (`from_encoder_pretrained`): its config then
records the dtype it was saved in (float32), which `AutoModel.from_config` used to prefer over the requested one,
leaving a float32 encoder in front of half-precision heads. float16 runs on CPU with torch >= 2.x kernels.
"""

import math

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoTokenizer, pipeline

from polyhead import MultitaskModel
from polyhead.benchmark.inputs import save_tiny_encoder
from polyhead.saving import save_model_folder
from polyhead.testing_utils import TINY_NLI_TASKS, TINY_TASKS


# An NLI task (pairs, zero-shot), a single-label and a multi-label task: three heads, so the fused path runs.
TASKS = {**TINY_NLI_TASKS, "emotions": TINY_TASKS["emotions"]}
POOLINGS = ("mean", "cls", "native")
HALF = (torch.bfloat16, torch.float16)
# Different lengths, so batches of two are padded.
TEXTS = ["good", "the team win the game today and people are happy", "bad phone", "i love this movie so much"]
PAIRS = [{"text": TEXTS[1], "text_pair": TEXTS[2]}, TEXTS[3], {"text": TEXTS[0], "text_pair": TEXTS[1]}]
ALL = {"top_k": None, "threshold": 0.0}  # every label and its score
TOLERANCE = 0.02  # half precision keeps ~3 significant digits


@pytest.fixture(scope="module")
def encoder(tmp_path_factory) -> str:
    return save_tiny_encoder(tmp_path_factory.mktemp("encoder") / "tiny")


@pytest.fixture(scope="module")
def folders(encoder, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("dtype")
    tokenizer = AutoTokenizer.from_pretrained(encoder)
    saved = {}
    for pooling in POOLINGS:
        torch.manual_seed(0)
        model = MultitaskModel.from_encoder_pretrained(encoder, tasks=TASKS, pooling=pooling).eval()
        saved[pooling] = save_model_folder(model, tokenizer, root / pooling)
    return saved


@pytest.fixture(scope="module")
def reference(folders) -> dict:
    return {
        pooling: pipeline("multitask-classification", model=str(folder), trust_remote_code=True)
        for pooling, folder in folders.items()
    }


def scores_by_label(answer: dict) -> dict:
    return {task: {item["label"]: item["score"] for item in items} for task, items in answer.items()}


def assert_float32_python_floats(scores) -> None:
    for score in scores:
        assert type(score) is float and float(np.float32(score)) == score and math.isfinite(score)


def assert_close_answers(ours, theirs) -> None:
    ours, theirs = ([ours], [theirs]) if isinstance(ours, dict) else (ours, theirs)
    assert len(ours) == len(theirs)
    for mine, expected in zip(ours, theirs):
        assert list(mine) == list(expected)
        for task, answer in scores_by_label(mine).items():
            assert_float32_python_floats(answer.values())
            assert answer == pytest.approx(scores_by_label(expected)[task], abs=TOLERANCE), task


@pytest.mark.parametrize("dtype", HALF, ids=str)
@pytest.mark.parametrize("pooling", POOLINGS)
def test_from_pretrained_puts_every_weight_in_the_dtype(folders, pooling, dtype):
    folder = folders[pooling]
    model = AutoModel.from_pretrained(folder, trust_remote_code=True, dtype=dtype).eval()
    assert {p.dtype for p in model.parameters()} == {dtype}
    full = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
    inputs = AutoTokenizer.from_pretrained(folder)(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        half, expected = model(**inputs).logits, full(**inputs).logits
        one = model(**inputs, task="topic").logits["topic"]  # a single head: no fused weights
    for task, logits in expected.items():
        assert half[task].dtype == dtype
        torch.testing.assert_close(half[task].float(), logits, rtol=0, atol=0.05)
    # one head vs the fused matmul over every head: other shapes may sum in another order (other CPUs, other kernels)
    torch.testing.assert_close(one, half["topic"], rtol=1e-2, atol=1e-3)


@pytest.mark.parametrize("dtype", HALF, ids=str)
@pytest.mark.parametrize("pooling", POOLINGS)
def test_pipeline_in_half_precision_answers_every_path(folders, reference, pooling, dtype):
    classifier = pipeline("multitask-classification", model=str(folders[pooling]), trust_remote_code=True, dtype=dtype)
    assert classifier.model.dtype == dtype
    expected = reference[pooling]
    assert_close_answers(classifier(TEXTS, batch_size=2, **ALL), expected(TEXTS, batch_size=2, **ALL))
    assert_close_answers(classifier(TEXTS, **ALL), expected(TEXTS, **ALL))  # batch size 1
    assert_close_answers(classifier(TEXTS[1], **ALL), expected(TEXTS[1], **ALL))  # one text
    assert_close_answers(classifier(PAIRS, batch_size=2, **ALL), expected(PAIRS, batch_size=2, **ALL))
    assert_close_answers(classifier(PAIRS[0], **ALL), expected(PAIRS[0], **ALL))
    some = {"tasks": ["emotions", "nli"], "batch_size": 2, **ALL}  # two of three heads, in another order
    assert_close_answers(classifier(TEXTS, **some), expected(TEXTS, **some))
    streamed = [list(run((text for text in TEXTS), tasks="topic")) for run in (classifier, expected)]
    assert_close_answers(*streamed)


@pytest.mark.parametrize("dtype", HALF, ids=str)
def test_zero_shot_in_half_precision(folders, reference, dtype):
    classifier = pipeline("multitask-classification", model=str(folders["mean"]), trust_remote_code=True, dtype=dtype)
    zero_shot = {"candidate_labels": ["sport", "money", "movies"], "hypothesis_template": "this is about {}"}
    for options in ({"batch_size": 2}, {"multi_label": True}):
        ours = classifier(TEXTS, **zero_shot, **options)
        theirs = reference["mean"](TEXTS, **zero_shot, **options)
        for mine, expected in zip(ours, theirs, strict=True):
            assert_float32_python_floats(mine["scores"])
            found = dict(zip(mine["labels"], mine["scores"]))
            assert found == pytest.approx(dict(zip(expected["labels"], expected["scores"])), abs=TOLERANCE)


def test_from_encoder_pretrained_puts_the_heads_in_the_encoders_dtype(encoder):
    model = MultitaskModel.from_encoder_pretrained(encoder, tasks=TASKS, pooling="native", dtype=torch.bfloat16)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    inputs = AutoTokenizer.from_pretrained(encoder)(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        assert {logits.dtype for logits in model.eval()(**inputs).logits.values()} == {torch.bfloat16}


def test_a_model_built_in_float32_stays_float32(encoder, folders):
    # The encoder follows the default dtype, not its config's: a float32 default gives a float32 model whatever
    # dtype the nested encoder config recorded.
    model = MultitaskModel.from_pretrained(folders["cls"])
    model.config.encoder.dtype = "bfloat16"
    assert {p.dtype for p in MultitaskModel(model.config).parameters()} == {torch.float32}


def test_a_dtype_the_model_object_does_not_run_in_is_refused(folders):
    # transformers applies dtype= to a model it loads by name, and silently not to a model object: it answered in
    # float32 while the caller asked for bfloat16.
    model = MultitaskModel.from_pretrained(folders["mean"]).eval()
    tokenizer = AutoTokenizer.from_pretrained(folders["mean"])
    for dtype in (torch.bfloat16, "bfloat16"):
        with pytest.raises(
            ValueError,
            match=r"dtype=torch.bfloat16 is not the model's: it runs in torch.float32; .*model.to\(torch.bfloat16\)",
        ):
            pipeline("multitask-classification", model=model, tokenizer=tokenizer, dtype=dtype)
    converted = pipeline(
        "multitask-classification", model=model.to(torch.bfloat16), tokenizer=tokenizer, dtype="bfloat16"
    )
    assert converted.model.dtype == torch.bfloat16 and converted(TEXTS[0])
    assert pipeline("multitask-classification", model=model, tokenizer=tokenizer, dtype="auto")(TEXTS[0])
