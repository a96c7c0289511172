import pytest
import torch
from transformers import pipeline

from polyhead import MultitaskClassificationPipeline


TEXTS = [
    "i love this movie",
    "the phone is bad and not good",
    "great game today the team win",
    "angry people hate the market news and the price of the stock is very bad today",
]


@pytest.fixture
def classifier(model, tokenizer):
    return pipeline("multitask-classification", model=model, tokenizer=tokenizer)


def expected_scores(model, tokenizer, text):
    with torch.no_grad():
        logits = model(**tokenizer(text, return_tensors="pt")).logits
    return {
        "sentiment": torch.softmax(logits["sentiment"][0], -1),
        "topic": torch.softmax(logits["topic"][0], -1),
        "emotions": torch.sigmoid(logits["emotions"][0]),
    }


def test_one_call_answers_every_task(classifier, model, tokenizer):
    assert isinstance(classifier, MultitaskClassificationPipeline)
    result = classifier(TEXTS[0])
    assert list(result) == ["sentiment", "topic", "emotions"]
    scores = expected_scores(model, tokenizer, TEXTS[0])
    best = int(scores["topic"].argmax())
    assert result["topic"] == [
        {"label": ["movies", "tech", "sport", "money"][best], "score": pytest.approx(float(scores["topic"][best]))}
    ]
    assert len(result["sentiment"]) == 1
    chosen = {item["label"] for item in result["emotions"]}
    labels = ["anger", "fear", "joy", "sadness"]
    assert chosen == {label for label, s in zip(labels, scores["emotions"].tolist()) if s >= 0.4}


def test_top_k_and_all_labels_sorted(classifier):
    everything = classifier(TEXTS[1], top_k=None, threshold=0.0)
    assert [len(everything[t]) for t in everything] == [2, 4, 4]
    for items in everything.values():
        scores = [item["score"] for item in items]
        assert scores == sorted(scores, reverse=True)
    assert sum(item["score"] for item in everything["topic"]) == pytest.approx(1.0)
    two = classifier(TEXTS[1], top_k=2)
    assert two["topic"] == everything["topic"][:2]


def test_thresholds_from_config_and_per_call(classifier, model):
    all_labels = classifier(TEXTS[2], threshold=0.0)["emotions"]
    assert len(all_labels) == 4
    assert classifier(TEXTS[2], threshold={"emotions": 1.0})["emotions"] == []
    middle = sorted(item["score"] for item in all_labels)[1]
    assert len(classifier(TEXTS[2], threshold=middle)["emotions"]) == 3
    model.config.tasks["emotions"]["threshold"] = middle
    assert len(classifier(TEXTS[2])["emotions"]) == 3


def test_task_subset(classifier):
    result = classifier(TEXTS[0], tasks=["emotions", "sentiment"])
    assert list(result) == ["emotions", "sentiment"]
    assert list(classifier(TEXTS[0], tasks="topic")) == ["topic"]


@pytest.mark.parametrize("batch_size", [1, 2, 3])
def test_batched_equals_unbatched_and_keeps_order(classifier, batch_size):
    singles = [classifier(text, top_k=None, threshold=0.0) for text in TEXTS]
    for sort_by_length in (True, False):
        batched = classifier(TEXTS, batch_size=batch_size, top_k=None, threshold=0.0, sort_by_length=sort_by_length)
        assert len(batched) == len(TEXTS)
        for one, many in zip(singles, batched):
            assert [i["label"] for i in one["topic"]] == [i["label"] for i in many["topic"]]
            for task in one:
                assert [i["score"] for i in many[task]] == pytest.approx([i["score"] for i in one[task]], abs=1e-5)


def test_a_list_runs_one_padded_forward_per_batch_sorted_by_length(classifier, model):
    seen = []
    handle = model.encoder.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(kwargs["input_ids"].shape), with_kwargs=True
    )
    try:
        classifier(TEXTS + TEXTS[:1], batch_size=2)
    finally:
        handle.remove()
    assert [shape[0] for shape in seen] == [2, 2, 1]
    # Sorted by length: the two shortest texts share the first batch, the longest one comes last.
    assert seen[0][1] <= seen[1][1] and seen[-1][1] == max(shape[1] for shape in seen)


def test_the_model_runs_under_inference_mode(classifier, model):
    modes = []
    handle = model.encoder.register_forward_pre_hook(
        lambda module, args: modes.append(torch.is_inference_mode_enabled())
    )
    try:
        classifier(TEXTS[0])
        classifier(TEXTS, batch_size=2)
    finally:
        handle.remove()
    assert modes and all(modes)


def test_truncation_and_max_length(classifier, tokenizer):
    long_text = " ".join(["good movie"] * 200)  # 400 tokens: more than the encoder's 80 positions
    assert list(classifier(long_text)) == ["sentiment", "topic", "emotions"]
    short = classifier(long_text, max_length=6, top_k=None, threshold=0.0)
    same = classifier("good movie good movie", top_k=None, threshold=0.0)  # [CLS] + 4 tokens + [SEP]
    assert short["topic"][0]["score"] == pytest.approx(same["topic"][0]["score"], abs=1e-5)


@pytest.mark.parametrize(
    ("inputs", "kwargs", "error", "message"),
    [
        ("", {}, ValueError, "Text is empty"),
        (["fine", "   "], {}, ValueError, "Text at position 1 is empty"),
        (["fine", 3], {}, TypeError, "text at position 1 to be a string, got int"),
        (["fine", "caf\u00e9 \ud800"], {}, ValueError, "Text at position 1 is not valid Unicode .* at character 5"),
        ([{"text": "x", "text_pair": "\udfff"}], {}, ValueError, "'text_pair' at position 0 is not valid Unicode"),
        (None, {}, TypeError, "Expected a string, a list of strings, a generator or a torch Dataset .*got NoneType"),
        ({"txt": "x"}, {}, ValueError, "must have the key 'text' and optionally 'text_pair'"),
        ({"text": "x", "text_pair": "y", "label": 1}, {}, ValueError, r"got keys \['label', 'text', 'text_pair'\]"),
        (["fine", {"text": "x", "text_pair": ""}], {}, ValueError, "'text_pair' at position 1 is empty"),
        ([{"text": "x", "text_pair": 3}], {}, TypeError, "'text_pair' at position 0 to be a string, got int"),
        ("fine", {"tasks": ["topic", "nope"]}, ValueError, r"Unknown task\(s\) \['nope'\]"),
        ("fine", {"tasks": []}, ValueError, r"tasks is empty: name some of this model's tasks \['sentiment'"),
        ("fine", {"top_k": 0}, ValueError, "top_k must be a positive integer"),
        ("fine " * 100, {"max_length": 2}, ValueError, r"max_length=2 leaves no room for text .* >= 5"),
        ("fine", {"top_k": True}, ValueError, "top_k must be a positive integer or None .*got True"),
        ("fine", {"tasks": 3}, ValueError, "tasks must be a task name or a list of task names .*got 3"),
        ("fine", {"tasks": ["topic", 3]}, ValueError, r"tasks must be a task name .*got \['topic', 3\]"),
        (["fine", "good"], {"sort_by_length": "no"}, ValueError, "sort_by_length must be True or False .*got 'no'"),
        ("fine", {"truncation": "no"}, ValueError, "truncation must be True or False .*got 'no'"),
        (
            "fine",
            {"truncation": "only_third"},
            ValueError,
            r"truncation must be .* strategies \['longest_first', 'only_first', 'only_second', 'do_not_truncate'\], "
            "got 'only_third'",
        ),
        ("fine", {"truncation": 1}, ValueError, "truncation must be True or False .*got 1"),
        ("fine", {"threshold": {"topic": 0.5}}, ValueError, "not multi-label tasks"),
        ("fine", {"threshold": 2}, ValueError, r"must be a number in \[0, 1\]"),
        # a bool is an int in Python: True was taken as the threshold 1.0, False as 0.0
        ("fine", {"threshold": True}, ValueError, r"task 'emotions' must be a number in \[0, 1\], got True"),
        ("fine", {"threshold": {"emotions": False}}, ValueError, r"'emotions' must be a number in .*got False"),
        ("fine", {"colour": "red"}, TypeError, r"Unknown argument\(s\) \['colour'\]"),
    ],
)
def test_bad_input_gets_clear_errors(classifier, inputs, kwargs, error, message):
    with pytest.raises(error, match=message):
        classifier(inputs, **kwargs)


FIRST = "i love this movie the team win the game today"  # 10 tokens
SECOND = " ".join(["good movie bad phone"] * 10)  # 40 tokens


@pytest.mark.parametrize(
    ("strategy", "pair"),
    [("only_second", (FIRST, SECOND)), ("only_first", (SECOND, FIRST)), ("longest_first", (FIRST, SECOND))],
)
def test_a_truncation_strategy_cuts_as_the_tokenizer_does(classifier, model, tokenizer, strategy, pair):
    # The docs say a tokenizer strategy is passed on as in transformers; the pipeline refused every one.
    by_hand = tokenizer(*pair, truncation=strategy, max_length=16, return_tensors="pt")
    assert by_hand["input_ids"].shape[1] == 16
    if strategy != "longest_first":  # a strategy of its own: longest_first cuts the other text too
        assert by_hand["input_ids"].tolist() != tokenizer(*pair, truncation=True, max_length=16)["input_ids"]
    with torch.no_grad():
        expected = torch.softmax(model(**by_hand).logits["topic"][0], -1).tolist()
    item = {"text": pair[0], "text_pair": pair[1]}
    answers = [classifier(item, truncation=strategy, max_length=16, tasks="topic", top_k=None)]
    answers += classifier([item, "good movie", item], truncation=strategy, max_length=16, tasks="topic", top_k=None,
                          batch_size=3)[::2]  # fmt: skip
    labels = ["movies", "tech", "sport", "money"]
    for answer in answers:
        scores = {entry["label"]: entry["score"] for entry in answer["topic"]}
        assert [scores[label] for label in labels] == pytest.approx(expected, abs=1e-5)


def test_true_false_and_their_strategy_names_agree(classifier):
    items = [TEXTS[3], {"text": FIRST, "text_pair": SECOND}]
    for name, switch in (("longest_first", True), ("do_not_truncate", False)):
        assert classifier(items, truncation=name, max_length=12) == classifier(items, truncation=switch, max_length=12)
    assert classifier(items, truncation=True, max_length=12) != classifier(items, truncation=False, max_length=12)


@pytest.mark.parametrize(
    ("strategy", "item", "message"),
    [
        ("only_second", SECOND, r"cuts only the second text of a sentence pair, and the input 'good movie .*\.\.\.' "
         "is one text of 42 tokens"),
        ("only_first", {"text": FIRST, "text_pair": SECOND}, r"cuts only the first text, and the second text of the "
         r"pair \{'text': 'i love .*', 'text_pair': 'good movie.*'\} takes 43 tokens"),
    ],
)  # fmt: skip
def test_a_strategy_that_cannot_cut_an_input_says_so(classifier, strategy, item, message):
    # The tokenizers library raised "Truncation error: Second sequence not provided" naming no input and no fix.
    for inputs in (item, [TEXTS[0], item]):
        with pytest.raises(ValueError, match=f"truncation={strategy!r} {message} .*max_length=16 .*truncation=True"):
            classifier(inputs, truncation=strategy, max_length=16)


def test_none_switches_mean_their_defaults(classifier):
    # None (a JSON null through the handler) is each switch's default; a truthy non-bool is refused (above)
    assert classifier(TEXTS, batch_size=2, sort_by_length=None, truncation=None) == classifier(TEXTS, batch_size=2)


def test_empty_list_returns_empty_list(classifier):
    assert classifier([]) == []


def test_generator_streams_results(classifier):
    streamed = list(classifier(text for text in TEXTS[:2]))
    assert streamed == [classifier(TEXTS[0]), classifier(TEXTS[1])]
    with pytest.raises(ValueError, match="Text is empty"):
        list(classifier(text for text in ["fine", ""]))


def test_datasets_inputs_are_answered_as_transformers_pipelines_answer_them(classifier):
    """`KeyDataset(dataset, "text")` (a torch Dataset) streams results, as in transformers; a datasets `Column`
    (`dataset["text"]`) is a list of texts. Both were refused as neither string nor list."""
    import datasets
    from transformers.pipelines.pt_utils import KeyDataset

    dataset = datasets.Dataset.from_dict({"text": TEXTS[:3]})
    expected = classifier(TEXTS[:3], batch_size=2)
    streamed = classifier(KeyDataset(dataset, "text"), batch_size=2)
    assert not isinstance(streamed, list) and list(streamed) == expected
    assert classifier(dataset["text"], batch_size=2) == expected
    with pytest.raises(ValueError, match="Text is empty"):
        list(classifier(KeyDataset(datasets.Dataset.from_dict({"text": ["fine", " "]}), "text")))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_size": -1}, "batch_size must be a positive integer, got -1"),
        ({"batch_size": 0}, "batch_size must be a positive integer, got 0"),
        ({"batch_size": "2"}, "batch_size must be a positive integer, got '2'"),
        ({"max_length": 0}, "max_length must be a positive integer, got 0"),
        ({"max_length": 100000}, r"max_length=100000 is more than this model's encoder accepts \(80 tokens\)"),
    ],
)
def test_batch_size_and_max_length_are_checked_where_they_enter(classifier, kwargs, message):
    for inputs in (["fine", "good movie"], "fine"):
        with pytest.raises(ValueError, match=message):
            classifier(inputs, **kwargs)


def test_max_length_up_to_the_encoder_positions_is_accepted(classifier):
    long_text = " ".join(["good movie"] * 200)
    assert list(classifier(long_text, max_length=80)) == ["sentiment", "topic", "emotions"]
    assert classifier(long_text, max_length=64) == classifier(long_text)  # the tokenizer's 64 is the default


def test_per_call_max_length_is_never_shared_between_threads(classifier):
    # The fast tokenizer keeps truncation settings in shared state: 4 threads, each with its own max_length, must
    # each get exactly the answers a lone call with that max_length gives.
    from concurrent.futures import ThreadPoolExecutor

    texts = [" ".join(["good movie bad phone"] * (n % 7 + 3)) for n in range(24)]
    lengths = [5, 9, 17, 40]
    alone = {n: classifier(texts, max_length=n, top_k=None, batch_size=4) for n in lengths}

    def run(n):
        return n, [classifier(texts, max_length=n, top_k=None, batch_size=4) for _ in range(5)]

    with ThreadPoolExecutor(max_workers=4) as pool:
        for n, runs in pool.map(run, lengths * 2):
            for answers in runs:
                for got, expected in zip(answers, alone[n]):
                    assert got["topic"][0]["label"] == expected["topic"][0]["label"]
                    assert got["topic"][0]["score"] == pytest.approx(expected["topic"][0]["score"], abs=1e-6)
