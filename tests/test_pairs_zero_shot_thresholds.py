"""Sentence pairs end to end, zero-shot classification through an NLI task, and per-label tuned thresholds."""

import json
import random
import re

import datasets
import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoTokenizer, pipeline

from polyhead import MultitaskModel
from polyhead.data import load_task_data, tokenize_task_data
from polyhead.evaluation.scoring import score_task
from polyhead.evaluation.thresholds import tune_label_thresholds
from polyhead.publishing.model_card import tasks_table
from polyhead.remote_code import ZERO_SHOT_TASK, register_pipeline
from polyhead.tasks import TaskSpec, parse_task
from polyhead.testing_utils import TINY_NLI_TASKS, WORDS, tiny_multitask_config
from polyhead.training.arguments import DataArguments, ModelArguments, MultitaskTrainingArguments
from polyhead.training.trainer import run


PAIRS = [
    {"text": "i love this movie", "text_pair": "the film is good"},
    {"text": "the phone is bad", "text_pair": "i hate this tech and the price of the phone is very bad today"},
]


@pytest.fixture
def nli_model():
    torch.manual_seed(0)
    return MultitaskModel(tiny_multitask_config(tasks=TINY_NLI_TASKS)).eval()


def logits_of(model, encoded) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        return model(**encoded).logits


# ------------------------------------------------------------------------------------------------ pipeline pairs


def test_a_pair_is_tokenized_as_a_pair(nli_model, tokenizer):
    classifier = pipeline("multitask-classification", model=nli_model, tokenizer=tokenizer)
    result = classifier(PAIRS[0], top_k=None)
    expected = logits_of(nli_model, tokenizer(PAIRS[0]["text"], PAIRS[0]["text_pair"], return_tensors="pt"))
    scores = torch.softmax(expected["nli"][0], -1)
    assert {item["label"]: item["score"] for item in result["nli"]} == pytest.approx(
        dict(zip(TINY_NLI_TASKS["nli"]["labels"], scores.tolist())), abs=1e-6
    )
    assert classifier({"text": "i love this movie"}) == classifier("i love this movie")


@pytest.mark.parametrize("batch_size", [1, 2, 4])
def test_mixed_batches_of_texts_and_pairs_keep_order(model, tokenizer, batch_size, monkeypatch):
    # A model without pair tasks still runs pairs: a pair is just tokenizer input.
    classifier = pipeline("multitask-classification", model=model, tokenizer=tokenizer)
    inputs = ["i love this movie", PAIRS[1], "bad", PAIRS[0], "the team win the game today"]
    singles = [classifier(item, top_k=None, threshold=0.0) for item in inputs]
    tokenize, tokenized = type(tokenizer).__call__, []

    def recorded_tokenizer(self, text=None, text_pair=None, **kwargs):
        tokenized.append((len(text), text_pair is not None))
        return tokenize(self, text, text_pair, **kwargs)

    monkeypatch.setattr(type(tokenizer), "__call__", recorded_tokenizer)
    batched = classifier(inputs, batch_size=batch_size, top_k=None, threshold=0.0)
    monkeypatch.undo()
    assert tokenized == [(3, False), (2, True)]  # the texts in one call, the pairs in another
    for one, many in zip(singles, batched):
        for task in one:
            assert [i["label"] for i in many[task]] == [i["label"] for i in one[task]]
            assert [i["score"] for i in many[task]] == pytest.approx([i["score"] for i in one[task]], abs=1e-5)


def test_a_generator_of_pairs_streams(model, tokenizer):
    classifier = pipeline("multitask-classification", model=model, tokenizer=tokenizer)
    streamed = list(classifier(item for item in PAIRS))
    assert [r["topic"][0]["label"] for r in streamed] == [classifier(p)["topic"][0]["label"] for p in PAIRS]


# ------------------------------------------------------------------------------------------------ zero-shot


def zero_shot_reference(model, tokenizer, text, labels, template, multi_label):
    """transformers' zero-shot-classification arithmetic on this model's NLI logits."""
    encoded = tokenizer(
        [text] * len(labels), [template.format(label) for label in labels], padding=True, return_tensors="pt"
    )
    logits = logits_of(model, encoded)["nli"]
    entailment, contradiction = 0, 2
    if multi_label or len(labels) == 1:
        scores = torch.softmax(logits[:, [contradiction, entailment]], -1)[:, 1]
    else:
        scores = torch.softmax(logits[:, entailment], 0)
    return dict(zip(labels, scores.tolist()))


@pytest.mark.parametrize("multi_label", [False, True])
def test_zero_shot_matches_the_transformers_conventions(nli_model, tokenizer, multi_label):
    classifier = pipeline("multitask-classification", model=nli_model, tokenizer=tokenizer)
    labels = ["sport", "money", "movies"]
    template = "this is about {}"
    result = classifier(
        "the team win the game", candidate_labels=labels, hypothesis_template=template, multi_label=multi_label
    )
    assert set(result) == {"sequence", "labels", "scores"} and result["sequence"] == "the team win the game"
    expected = zero_shot_reference(nli_model, tokenizer, "the team win the game", labels, template, multi_label)
    assert sorted(result["labels"]) == sorted(labels)
    assert result["scores"] == sorted(result["scores"], reverse=True)
    assert dict(zip(result["labels"], result["scores"])) == pytest.approx(expected, abs=1e-6)
    if not multi_label:
        assert sum(result["scores"]) == pytest.approx(1.0)


def test_zero_shot_runs_one_forward_per_text_and_accepts_lists(nli_model, tokenizer):
    classifier = pipeline("multitask-classification", model=nli_model, tokenizer=tokenizer)
    shapes = []
    handle = nli_model.encoder.register_forward_pre_hook(
        lambda module, args, kwargs: shapes.append(tuple(kwargs["input_ids"].shape)), with_kwargs=True
    )
    try:
        results = classifier(["good movie", "bad phone"], candidate_labels="tech, movies", nli_task="nli")
    finally:
        handle.remove()
    assert [shape[0] for shape in shapes] == [2, 2]
    assert [r["sequence"] for r in results] == ["good movie", "bad phone"]
    assert all(sorted(r["labels"]) == ["movies", "tech"] for r in results)


@pytest.mark.parametrize("multi_label", [False, True])
def test_zero_shot_batches_pairs_across_texts(nli_model, tokenizer, multi_label):
    # With batch_size, pairs of several texts share a forward (texts of similar length together); the answers are
    # each text's own, in input order.
    classifier = pipeline("multitask-classification", model=nli_model, tokenizer=tokenizer)
    texts = ["the team win the game today and the people are happy", "good movie", "bad phone", "i love it", "money"]
    labels, template = ["sport", "money", "movies"], "this is about {}"
    options = {"candidate_labels": labels, "hypothesis_template": template, "multi_label": multi_label}
    rows = []
    handle = nli_model.encoder.register_forward_pre_hook(
        lambda module, args, kwargs: rows.append(len(kwargs["input_ids"])), with_kwargs=True
    )
    try:
        batched = classifier(texts, batch_size=4, **options)
    finally:
        handle.remove()
    assert rows == [4, 4, 4, 3]
    assert [result["sequence"] for result in batched] == texts
    for text, result in zip(texts, batched):
        expected = zero_shot_reference(nli_model, tokenizer, text, labels, template, multi_label)
        assert dict(zip(result["labels"], result["scores"])) == pytest.approx(expected, abs=1e-5)
        assert result["scores"] == sorted(result["scores"], reverse=True)
    assert classifier([], **options) == []


def test_zero_shot_errors_are_clear(model, nli_model, tokenizer):
    plain = pipeline("multitask-classification", model=model, tokenizer=tokenizer)
    with pytest.raises(ValueError, match="needs an NLI task.*'entailment'"):
        plain("good movie", candidate_labels=["a", "b"])
    classifier = pipeline("multitask-classification", model=nli_model, tokenizer=tokenizer)
    with pytest.raises(ValueError, match="nli_task='topic' cannot classify zero-shot"):
        classifier("good movie", candidate_labels=["a", "b"], nli_task="topic")
    with pytest.raises(ValueError, match="has no '{}'"):
        classifier("good movie", candidate_labels=["a", "b"], hypothesis_template="no slot")
    with pytest.raises(ValueError, match="non-empty list of label strings"):
        classifier("good movie", candidate_labels=[])
    # a pair is not split into its two texts: zero-shot pairs each text with the hypotheses itself
    with pytest.raises(TypeError, match="takes a text or a list of texts.*got dict"):
        classifier({"text": "good movie", "text_pair": "a film"}, candidate_labels=["a", "b"])
    with pytest.raises(TypeError, match="position 1 to be a string, got dict"):
        classifier(["good", {"text": "good movie"}], candidate_labels=["a", "b"])


FIX = r"write one '{}' where the candidate label goes"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"hypothesis_template": "{} {}"},
            f"hypothesis_template '{{}} {{}}' must have exactly one placeholder.*{FIX}",
        ),
        (
            {"hypothesis_template": "is {x}"},
            f"hypothesis_template 'is {{x}}' must have exactly one placeholder.*{FIX}",
        ),
        ({"hypothesis_template": "is {0}"}, r"'is \{0\}' must have exactly one placeholder, an empty '\{\}'"),
        ({"hypothesis_template": "is { {}"}, f"'is {{ {{}}' is not a valid template \\(unexpected .*{FIX}"),
        ({"hypothesis_template": "is }"}, r"'is }' is not a valid template \(Single '}'.*as '{{' or '}}'"),
        ({"hypothesis_template": 5}, f"hypothesis_template must be a string, got int 5: {FIX}"),
        ({"hypothesis_template": "{{}} only"}, "'{{}} only' has no '{}' where the candidate label should go"),
        ({"candidate_labels": 5}, "candidate_labels must be a non-empty list of label strings .*got 5"),
        ({"candidate_labels": {"a": 1}}, r"candidate_labels must be a non-empty list .*got \{'a': 1\}"),
        ({"candidate_labels": ["a", 3]}, r"candidate_labels must be .*got \['a', 3\]"),
        ({"candidate_labels": ["a", " "]}, r"candidate_labels must be .*got \['a', ' '\]"),
        ({"candidate_labels": ", ,"}, r"candidate_labels must be .*separated by commas\), got \[\]"),
        ({"candidate_labels": ["a", "b", "a"]}, r"candidate_labels has duplicates \['a'\]: give each label once"),
        ({"candidate_labels": "b, a, b"}, r"candidate_labels has duplicates \['b'\]"),
        ({"multi_label": "yes"}, r"multi_label must be True or False \(or None for the default, False\), got 'yes'"),
        ({"multi_label": 1}, "multi_label must be True or False .*got 1"),
        ({"truncation": "no"}, "truncation must be True or False .*got 'no'"),
        ({"nli_task": 3}, r"nli_task must be a task name \(this model's NLI tasks: \['nli'\]\), got 3"),
        ({"max_length": 0}, "max_length must be a positive integer, got 0"),  # was accepted
        ({"max_length": "10"}, "max_length must be a positive integer, got '10'"),  # a TypeError in the tokenizer
        ({"max_length": 100000}, r"max_length=100000 is more than this model's encoder accepts \(80 tokens\)"),
        ({"max_length": 3}, r"max_length=3 leaves no room for text .*: use max_length >= 5"),
    ],
)
def test_zero_shot_parameters_are_checked(nli_model, tokenizer, kwargs, message):
    # each a ValueError (the Inference Endpoints handler answers it as a bad request) naming the parameter and the fix
    classifier = pipeline("multitask-classification", model=nli_model, tokenizer=tokenizer)
    with pytest.raises(ValueError, match=message):
        classifier("good movie", **{"candidate_labels": ["a", "b"], **kwargs})


def test_zero_shot_accepts_escaped_braces_tuples_and_none_switches(nli_model, tokenizer):
    classifier = pipeline("multitask-classification", model=nli_model, tokenizer=tokenizer)
    result = classifier("good movie", candidate_labels=("sport", "movies"), hypothesis_template="{{about}} {}")
    expected = zero_shot_reference(nli_model, tokenizer, "good movie", ["sport", "movies"], "{{about}} {}", False)
    assert dict(zip(result["labels"], result["scores"])) == pytest.approx(expected, abs=1e-6)
    # None (a JSON null through the handler) is the default: multi_label False, truncation on
    long_text = " ".join(["the team win the game"] * 30)  # past the tiny encoder's 80 positions
    defaults = classifier(long_text, candidate_labels=["sport", "movies"])
    assert classifier(long_text, candidate_labels=["sport", "movies"], multi_label=None, truncation=None) == defaults


def test_zero_shot_truncates_the_text_and_keeps_every_hypothesis_whole(nli_model, tokenizer):
    # transformers' zero-shot pipeline cuts only the text ("only_first"): a long hypothesis keeps its label
    classifier = pipeline("multitask-classification", model=nli_model, tokenizer=tokenizer)
    long_text, labels = " ".join(["the team win the game"] * 30), ["sport", "money"]
    template = "it is the news of today and the world and the people of {}"
    hypothesis_length = len(tokenizer(template.format("sport"), add_special_tokens=False)["input_ids"])
    result = classifier(long_text, candidate_labels=labels, hypothesis_template=template, max_length=32)
    encoded = tokenizer(
        [long_text] * 2, [template.format(label) for label in labels], truncation="only_first", max_length=32,
        padding=True, return_tensors="pt",
    )  # fmt: skip
    assert all(label in tokenizer.decode(ids) for label, ids in zip(labels, encoded["input_ids"]))
    scores = torch.softmax(logits_of(nli_model, encoded)["nli"][:, 0], 0)
    assert dict(zip(result["labels"], result["scores"])) == pytest.approx(dict(zip(labels, scores.tolist())), abs=1e-6)
    with pytest.raises(ValueError, match=rf"hypothesis 'it is .* people of sport' takes {hypothesis_length} tokens"):
        classifier(long_text, candidate_labels=labels, hypothesis_template=template, max_length=hypothesis_length)
    # without truncation nothing is cut, and a text past the positions is refused as before
    short = classifier("good", candidate_labels=labels, hypothesis_template=template, max_length=8, truncation=False)
    assert sorted(short["labels"]) == sorted(labels)


def test_the_zero_shot_pipeline_built_by_its_own_name_answers_alike(nli_model, tokenizer):
    register_pipeline()
    zero_shot = pipeline(ZERO_SHOT_TASK, model=nli_model, tokenizer=tokenizer)
    multitask = pipeline("multitask-classification", model=nli_model, tokenizer=tokenizer)
    texts, labels = ["good movie", "the team win"], ["sport", "tech", "movies"]
    assert zero_shot(texts, candidate_labels=labels) == multitask(texts, candidate_labels=labels)
    # its parameters go with each call: one given when it is built would otherwise be silently ignored
    with pytest.raises(TypeError, match=r"Unknown argument\(s\) \['truncation'\].*per call"):
        pipeline(ZERO_SHOT_TASK, model=nli_model, tokenizer=tokenizer, truncation=False)


def test_not_entailment_tasks_and_case_are_recognised(tokenizer):
    torch.manual_seed(0)
    tasks = {"rte": {"labels": ["Not_Entailment", "Entailment"]}}
    model = MultitaskModel(tiny_multitask_config(tasks=tasks)).eval()
    classifier = pipeline("multitask-classification", model=model, tokenizer=tokenizer)
    result = classifier("good movie", candidate_labels=["a"])  # one candidate: entailment vs not_entailment
    encoded = tokenizer("good movie", "This example is a.", return_tensors="pt")
    expected = torch.softmax(logits_of(model, encoded)["rte"][0], -1)[1]
    assert result["scores"] == pytest.approx([float(expected)], abs=1e-6)


# ------------------------------------------------------------------------------------------------ training on pairs


def nli_split(n: int, seed: int) -> datasets.Dataset:
    # Learnable: the hypothesis repeats the premise's first word (entailment), says "not" (contradiction), or not.
    rng = random.Random(seed)
    rows = {"premise": [], "hypothesis": [], "label": []}
    for _ in range(n):
        words = rng.sample(WORDS, 5)
        label = rng.choice(["entailment", "neutral", "contradiction"])
        hypothesis = {"entailment": [words[0]], "contradiction": ["not", words[0]], "neutral": rng.sample(WORDS, 2)}
        rows["premise"].append(" ".join(words))
        rows["hypothesis"].append(" ".join(hypothesis[label]))
        rows["label"].append(label)
    return datasets.Dataset.from_dict(rows)


def emotion_split(n: int, seed: int) -> datasets.Dataset:
    rng = random.Random(seed)
    texts, labels = [], []
    for _ in range(n):
        chosen = rng.sample(["joy", "fear", "anger"], rng.randint(1, 2))
        texts.append(" ".join([*chosen, *rng.sample(WORDS, 3)]))
        labels.append(chosen)
    return datasets.Dataset.from_dict({"text": texts, "labels": labels})


def test_pair_columns_are_tokenized_together_and_truncation_keeps_both(tokenizer):
    nli = datasets.DatasetDict(train=nli_split(8, 0))
    spec = TaskSpec("nli", dataset=nli, text_column="premise", text_pair_column="hypothesis")
    data = load_task_data([spec], roles=["train"])
    assert data["nli"].head["text_pair"] is True
    encoded = tokenize_task_data(data["nli"], tokenizer, max_length=6)["train"]
    for row in encoded:
        assert len(row["input_ids"]) <= 6
        assert 1 in row["token_type_ids"] and 0 in row["token_type_ids"]  # both texts survive truncation
    assert parse_task("nli=some/file.jsonl:text=premise,text_pair=hypothesis").text_pair_column == "hypothesis"
    missing = TaskSpec("nli", dataset=nli, text_column="premise", text_pair_column="nope")
    with pytest.raises(ValueError, match=r"column\(s\) \['nope'\] not found"):
        load_task_data([missing], roles=["train"])


def test_pairs_and_single_texts_train_together_and_thresholds_are_tuned(tmp_path):
    nli = datasets.DatasetDict(train=nli_split(48, 0), validation=nli_split(12, 1), test=nli_split(12, 2))
    emotions = datasets.DatasetDict(
        train=emotion_split(48, 3), validation=emotion_split(24, 4), test=emotion_split(24, 5)
    )
    specs = [
        TaskSpec("nli", dataset=nli, text_column="premise", text_pair_column="hypothesis"),
        TaskSpec("emotions", dataset=emotions, label_column="labels"),
    ]
    args = MultitaskTrainingArguments(
        output_dir=str(tmp_path / "run"),
        num_train_epochs=2,
        per_device_train_batch_size=8,
        learning_rate=2e-3,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        seed=0,
    )
    run(ModelArguments(), DataArguments(tasks=specs, tune_thresholds=True), args)
    folder = tmp_path / "run" / "model"
    config = json.loads((folder / "config.json").read_text())
    tasks = {task["name"]: task for task in config["tasks"]}
    assert tasks["nli"]["text_pair"] is True and "text_pair" not in tasks["emotions"]
    thresholds = tasks["emotions"]["thresholds"]
    assert len(thresholds) == 3 and all(0 < t < 1 for t in thresholds) and tasks["emotions"]["threshold"] == 0.5
    results = json.loads((folder / "results.json").read_text())
    assert set(results["tasks"]) == {"nli", "emotions"}
    assert set(results["untuned_thresholds"]) == {"emotions"}
    card = (folder / "README.md").read_text() if (folder / "README.md").exists() else tasks_table(tasks)
    assert "trained on sentence pairs" in tasks_table(tasks) and "per-label thresholds" in tasks_table(tasks)
    assert card
    model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
    classifier = pipeline("multitask-classification", model=model, tokenizer=AutoTokenizer.from_pretrained(folder))
    result = classifier("joy fear the day", threshold=None, tasks="emotions", top_k=None)
    everything = classifier("joy fear the day", threshold=0.0, tasks="emotions")["emotions"]
    limits = dict(zip(["anger", "fear", "joy"], thresholds))
    assert [i["label"] for i in result["emotions"]] == [
        i["label"] for i in everything if i["score"] >= limits[i["label"]]
    ]
    zero_shot = classifier({"text": "a", "text_pair": "b"})  # pairs run on the trained model
    assert set(zero_shot) == {"nli", "emotions"}


def test_run_refuses_tune_thresholds_without_a_multi_label_validation_split(tmp_path):
    nli = datasets.DatasetDict(train=nli_split(16, 0), validation=nli_split(8, 1))
    specs = [TaskSpec("nli", dataset=nli, text_column="premise", text_pair_column="hypothesis")]
    args = MultitaskTrainingArguments(output_dir=str(tmp_path / "run"), report_to="none", save_strategy="no")
    with pytest.raises(ValueError, match="--tune_thresholds needs a multi-label task .*: no task is multi-label"):
        run(ModelArguments(), DataArguments(tasks=specs, tune_thresholds=True), args)
    # a multi-label task without validation rows is named as such
    rows = datasets.Dataset.from_dict({"text": ["good day", "bad day"] * 8, "label": [["a"], ["b"]] * 8})
    tags = TaskSpec("tags", dataset=datasets.DatasetDict(train=rows), validation_size=0, test_size=0)
    with pytest.raises(ValueError, match=r"the multi-label tasks \['tags'\] have no validation rows"):
        run(ModelArguments(), DataArguments(tasks=[*specs, tags], tune_thresholds=True), args)


# ------------------------------------------------------------------------------------------------ threshold search


def test_tuned_threshold_maximises_f1_and_ties_go_to_half():
    scores = np.array([0.9, 0.8, 0.35, 0.3, 0.1])
    logits = np.log(scores / (1 - scores))[:, None]
    # Positives at 0.9, 0.8, 0.35: any threshold in (0.30, 0.35] catches all three and no negative (F1 = 1).
    assert tune_label_thresholds(logits, np.array([[1], [1], [1], [0], [0]])) == [0.35]
    # Every threshold in (0.35, 0.8] gives F1 = 1: the tie goes to 0.5.
    assert tune_label_thresholds(logits, np.array([[1], [1], [0], [0], [0]])) == [0.5]
    # No positives: F1 is 0 everywhere, the label keeps 0.5.
    assert tune_label_thresholds(logits, np.zeros((5, 1))) == [0.5]
    # Ties go to the task's threshold when given.
    assert tune_label_thresholds(logits, np.array([[1], [1], [0], [0], [0]]), fallback=0.7) == [0.7]


def test_a_label_the_model_cannot_rank_keeps_the_task_threshold():
    # One positive among 20, scored lowest of all: the F1-best threshold (0.01, marking every text: F1 2/21) only
    # ties the constant classifier, so the label keeps the fallback instead of firing on every text.
    scores = np.linspace(0.2, 0.02, 20)
    logits = np.log(scores / (1 - scores))[:, None]
    unranked = np.zeros((20, 1))
    unranked[-1] = 1
    assert tune_label_thresholds(logits, unranked) == [0.5]
    assert tune_label_thresholds(logits, unranked, fallback=0.3) == [0.3]
    # The same label ranked first: a real threshold (0.2 catches it alone, F1 = 1).
    ranked = np.zeros((20, 1))
    ranked[0] = 1
    assert tune_label_thresholds(logits, ranked) == [0.2]


def test_evaluation_uses_per_label_thresholds_and_config_validates_them():
    spec = {
        "labels": ["a", "b"],
        "problem_type": "multi_label_classification",
        "threshold": 0.5,
        "thresholds": [0.2, 0.9],
    }
    logits = np.log(np.array([[0.3, 0.8]]) / (1 - np.array([[0.3, 0.8]])))
    _, predictions = score_task(spec, logits, np.array([[1, 0]]))
    assert predictions.tolist() == [[1, 0]]
    with pytest.raises(ValueError, match="a list of 2 numbers"):
        tiny_multitask_config(tasks={"t": {**spec, "thresholds": [0.5]}})
    with pytest.raises(ValueError, match=r"must be a number in \(0, 1\)"):
        tiny_multitask_config(tasks={"t": {**spec, "thresholds": [0.5, 1.5]}})
    # a hand-edited config.json: each value named with the task (float() named neither, or raised a TypeError)
    for bad in ("abc", "0.3", [0.3], True, 1.0):
        message = rf"Task 't': threshold must be a number in \(0, 1\), got {re.escape(repr(bad))}"
        with pytest.raises(ValueError, match=message):
            tiny_multitask_config(tasks={"t": {**spec, "threshold": bad}})
    assert tiny_multitask_config(tasks={"t": {**spec, "threshold": None}}).tasks["t"]["threshold"] == 0.5
    with pytest.raises(ValueError, match="'thresholds' only applies"):
        tiny_multitask_config(tasks={"t": {"labels": ["a", "b"], "thresholds": [0.5, 0.5]}})


def test_evaluation_and_tuning_decide_near_a_threshold_as_the_pipeline_does(tokenizer):
    # Logits within 1e-6 of each label's threshold: the pipeline decides with a float32 sigmoid; evaluation used a
    # float64 one, which put some of these rows on the other side of the threshold.
    thresholds = [0.37, 0.5, 0.63]
    spec = {"labels": ["a", "b", "c"], "problem_type": "multi_label_classification", "thresholds": thresholds}
    model = MultitaskModel(tiny_multitask_config(tasks={"tags": spec})).eval()
    classifier = pipeline("multitask-classification", model=model, tokenizer=tokenizer)
    boundary = np.log(np.array(thresholds) / (1 - np.array(thresholds)))
    logits = (boundary + np.random.default_rng(0).uniform(-1e-6, 1e-6, (400, 3))).astype(np.float32)
    answers = [classifier.postprocess({"logits": torch.from_numpy(row[None])})["tags"] for row in logits]
    served = np.array([[int(label in {entry["label"] for entry in answer}) for label in "abc"] for answer in answers])
    _, predictions = score_task(classifier.model.config.task("tags"), logits, served)
    assert predictions.tolist() == served.tolist()
    float64_rule = 1 / (1 + np.exp(-logits.astype(np.float64))) >= np.array(thresholds)
    assert (float64_rule != served).any()  # the case this guards: without it the test could not fail
    # Tuning decides as the pipeline too. Positives at a logit the pipeline puts at or above 0.37 (and a float64
    # sigmoid below it), negatives at 0.3: every threshold in (0.30, 0.37] separates them; the tie goes to the one
    # closest to 0.5.
    at_threshold = logits[(served[:, 0] == 1) & ~float64_rule[:, 0], 0][0]
    column = np.array([at_threshold] * 3 + [np.log(0.3 / 0.7)] * 3, dtype=np.float32)[:, None]
    assert tune_label_thresholds(column, np.array([[1], [1], [1], [0], [0], [0]])) == [0.37]


def test_zero_shot_accuracy_counts_against_the_majority_baseline(nli_model, tokenizer):
    from polyhead.benchmark.zero_shot import zero_shot_accuracy

    classifier = pipeline("multitask-classification", model=nli_model, tokenizer=tokenizer)
    rows = [
        {"text": "good movie", "label": "pos"},
        {"text": "bad phone", "label": "neg"},
        {"text": "i", "label": "neg"},
    ]
    report = zero_shot_accuracy(classifier, rows, {"neg": "bad", "pos": "good"}, ["neg", "neg", "pos"])
    answers = classifier([r["text"] for r in rows], candidate_labels=["bad", "good"])
    predicted = [{"bad": "neg", "good": "pos"}[a["labels"][0]] for a in answers]
    assert report["accuracy"] == pytest.approx(sum(p == r["label"] for p, r in zip(predicted, rows)) / 3)
    assert report["majority_label"] == "neg" and report["majority_accuracy"] == pytest.approx(2 / 3)


@pytest.mark.slow
def test_real_sick_pairs_load_and_tokenize_as_pairs(shared_data_dir, tokenizer):
    folder = f"{shared_data_dir}/sick_nli"
    spec = parse_task(f"nli={folder}:text_pair=text_pair,max_train_samples=64,max_eval_samples=32")
    data = load_task_data([spec])
    assert data["nli"].labels == ["contradiction", "entailment", "neutral"] and data["nli"].head["text_pair"]
    encoded = tokenize_task_data(data["nli"], tokenizer, max_length=16)
    assert {len(encoded["train"]), len(encoded["test"])} == {64, 32}
    assert all(1 in row["token_type_ids"] and len(row["input_ids"]) <= 16 for row in encoded["test"])


def test_zero_shot_refuses_the_classification_parameters(nli_model, tokenizer):
    classifier = pipeline("multitask-classification", model=nli_model, tokenizer=tokenizer)
    with pytest.raises(TypeError, match=r"Unknown argument\(s\) \['tasks', 'top_k'\] for zero-shot .* ranks every"):
        classifier("good movie", candidate_labels=["a", "b"], top_k=1, tasks=["nli"])
