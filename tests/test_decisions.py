"""One decision rule (polyhead.decisions): the Hub pipeline's vectorised copy answers exactly as the library's rule on
random logits, for every task kind; evaluation, threshold tuning and bulk prediction call the library's rule."""

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import pipeline

from polyhead import MultitaskModel, decisions
from polyhead.evaluation import scoring as evaluation
from polyhead.evaluation import thresholds
from polyhead.remote_code import MULTI_LABEL, normalize_tasks
from polyhead.serving import predict
from polyhead.testing_utils import tiny_multitask_config, tiny_tokenizer
from polyhead_remote.pipelines.multitask_base import OUTPUT_KEY
from polyhead_remote.pipelines.multitask_ranking import as_dicts


TASKS = {
    "binary": {"labels": ["no", "yes"]},
    "five": {"labels": ["a", "b", "c", "d", "e"]},
    "tuned": {"labels": ["w", "x", "y", "z"], "problem_type": MULTI_LABEL, "thresholds": [0.2, 0.5, 0.37, 0.8]},
    "plain": {"labels": ["p", "q", "r"], "problem_type": MULTI_LABEL, "threshold": 0.4},
    "three": {"labels": ["s", "t", "u"]},
}
SPECS = normalize_tasks(TASKS)


@pytest.fixture(scope="module")
def classifier():
    model = MultitaskModel(tiny_multitask_config(tasks=TASKS)).eval()
    return pipeline("multitask-classification", model=model, tokenizer=tiny_tokenizer())


def random_logits(rows: int, seed: int) -> dict[str, np.ndarray]:
    generator = np.random.default_rng(seed)
    logits = {}
    for task, spec in TASKS.items():
        values = generator.normal(0, 2, (rows, len(spec["labels"]))).astype(np.float32)
        values[::3] = np.round(values[::3])  # ties, and scores right at a threshold (logit(0.5) = 0)
        logits[task] = values
    return logits


def pipeline_answers(classifier, logits: dict, tasks: list[str], **options) -> list[dict]:
    """The pipeline's own ranking (`_rank`, as `postprocess` and the list fast path run it) on given logits."""
    fused = torch.from_numpy(np.concatenate([logits[task] for task in tasks], axis=1))
    layout, groups = classifier._rank({OUTPUT_KEY: fused}, tasks, **options)
    return as_dicts(layout, groups, len(fused))


def assert_same(ours: list[dict], reference: list[dict]) -> None:
    assert len(ours) == len(reference)
    for row, expected in zip(ours, reference):
        assert list(row) == list(expected)
        for task, answer in expected.items():
            assert [item["label"] for item in row[task]] == [item["label"] for item in answer], task
            assert [item["score"] for item in row[task]] == pytest.approx([item["score"] for item in answer], abs=1e-7)


@pytest.mark.parametrize("top_k", [1, 2, 4, None])
@pytest.mark.parametrize("tasks", [list(TASKS), ["tuned", "binary"], ["five"], ["plain"], ["three", "tuned", "five"]])
def test_pipeline_ranking_is_the_library_rule(classifier, top_k, tasks):
    logits = random_logits(200, seed=len(tasks) + (top_k or 0))
    ours = pipeline_answers(classifier, logits, tasks, top_k=top_k)
    assert_same(ours, decisions.pipeline_answers(SPECS, {task: logits[task] for task in tasks}, top_k=top_k))


@pytest.mark.parametrize("threshold", [0.0, 0.37, 0.5, 1.0])
def test_per_call_thresholds_are_the_library_rule(classifier, threshold):
    logits = random_logits(200, seed=7)
    per_call = {"tuned": threshold, "plain": 0.5}
    ours = pipeline_answers(classifier, logits, list(TASKS), thresholds=per_call)
    assert_same(ours, decisions.pipeline_answers(SPECS, logits, thresholds=per_call))


def test_postprocess_of_one_row_is_the_library_rule(classifier):
    logits = random_logits(5, seed=3)
    for row in range(5):
        fused = torch.from_numpy(np.concatenate([logits[task][row : row + 1] for task in TASKS], axis=1))
        answer = classifier.postprocess({OUTPUT_KEY: fused}, top_k=2)
        single = {task: values[row : row + 1] for task, values in logits.items()}
        assert_same([answer], decisions.pipeline_answers(SPECS, single, top_k=2))


def test_evaluation_and_bulk_prediction_decide_with_the_library_rule():
    logits = random_logits(100, seed=11)
    for task, spec in SPECS.items():
        multi = spec["problem_type"] == MULTI_LABEL
        references = np.zeros_like(logits[task], dtype=int) if multi else np.zeros(100, dtype=int)
        predicted = evaluation.score_task(spec, logits[task], references)[1]
        probabilities = decisions.scores(spec["problem_type"], logits[task])
        frame = predict._with_predictions(pd.DataFrame({"text": ["x"] * 100}), {task: probabilities}, {task: spec})
        for row, answer in enumerate(decisions.pipeline_answers({task: spec}, {task: logits[task]})):
            labels = [item["label"] for item in answer[task]]
            if multi:
                assert {spec["labels"][i] for i in np.flatnonzero(predicted[row])} == set(labels)
                assert frame[task][row] == labels
            else:
                assert spec["labels"][predicted[row]] == labels[0] == frame[task][row]


def test_threshold_tuning_decides_with_the_library_rule():
    assert thresholds.above_thresholds is decisions.above_thresholds
