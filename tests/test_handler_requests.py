"""handler.py's request checks, limits and thread settings, in process (tests/test_toolkit_server.py sends the same
requests through the real Inference Toolkit server).

A bad request raises `ValueError` with a message naming the problem (the toolkit answers it as 400); every parameter
is checked by JSON type and range before the model runs.
"""

import pytest
import torch
from test_handler import _handler_module, folders, nli_folders  # noqa: F401  (module fixtures)

from polyhead.serving import handler as serving_handler
from polyhead.serving.handler import DEFAULT_BATCH_SIZE


# (parameters, a fragment of the message): each must be refused before the model runs.
BAD_PARAMETERS = [
    ({"threshold": 5}, "'threshold' must be a number in [0, 1]"),
    ({"threshold": -3}, "'threshold' must be a number in [0, 1]"),
    ({"threshold": True}, "'threshold' must be"),
    ({"threshold": "0.5"}, "'threshold' must be"),
    ({"threshold": {"emotions": 1.5}}, "{task: number in [0, 1]}"),
    ({"threshold": {"sentiment": 0.5}}, "not multi-label tasks"),
    ({"top_k": True}, "'top_k' must be an integer >= 1, or null"),
    ({"top_k": 0}, "'top_k' must be an integer >= 1"),
    ({"top_k": 1.5}, "'top_k' must be"),
    ({"top_k": "2"}, "'top_k' must be"),
    ({"tasks": 5}, "'tasks' must be a task name or a list of task names, got 5"),
    ({"tasks": ["topic", 3]}, "'tasks' must be"),
    ({"tasks": ["nli"]}, "Unknown task(s) ['nli']"),
    ({"tasks": []}, "tasks is empty"),
    ({"truncation": "no"}, "'truncation' must be true, false or one of the tokenizer's strategies"),
    ({"truncation": 1}, "'truncation' must be true, false"),
    ({"batch_size": 0}, "'batch_size' must be an integer >= 1"),
    ({"batch_size": True}, "'batch_size' must be"),
    ({"max_length": "8"}, "'max_length' must be an integer >= 1"),
    ({"max_length": 100000}, "more than this model's encoder accepts"),
    ({"colour": "red"}, "Unknown parameter(s) ['colour']"),
    ({"candidate_labels": "a", "multi_label": "yes"}, "'multi_label' must be true or false"),
    ({"candidate_labels": [1, 2]}, "'candidate_labels' must be a list of label strings"),
]
GOOD_PARAMETERS = [
    {"threshold": 0},
    {"threshold": 1},
    {"threshold": {"emotions": 0.25}},
    {"top_k": None},
    {"tasks": "topic", "top_k": 2},
    {"tasks": None, "threshold": None, "max_length": None, "batch_size": None, "truncation": None},
    {"truncation": False, "max_length": 8},
    {"truncation": "only_second", "max_length": 8},
    {"truncation": "longest_first"},
]
LONG_TEXT = " ".join(["the team win the game"] * 30)  # 152 tokens, past the tiny encoder's 80 positions


@pytest.fixture
def restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def endpoint(folders, restore_threads):  # noqa: F811 (the fixture's value)
    return _handler_module(folders[0], "polyhead_test_handler_requests").EndpointHandler(str(folders[0]))


@pytest.mark.parametrize(("parameters", "message"), BAD_PARAMETERS, ids=[str(p) for p, _ in BAD_PARAMETERS])
def test_a_bad_parameter_raises_value_error_naming_it(endpoint, parameters, message):
    with pytest.raises(ValueError) as raised:
        endpoint({"inputs": ["i love this movie", "bad phone"], "parameters": parameters})
    assert message in str(raised.value)


def test_the_truncation_strategies_are_the_pipelines():
    """handler.py cannot import the remote code's checks before loading it: its copy is pinned to the pipeline's."""
    from polyhead_remote.pipelines.multitask_inputs import TRUNCATION_STRATEGIES

    assert serving_handler.TRUNCATION_STRATEGIES == TRUNCATION_STRATEGIES


def test_a_pair_cut_only_second_answers_as_the_pipeline(endpoint):
    pair = {"text": "i love this movie", "text_pair": LONG_TEXT}
    parameters = {"truncation": "only_second"}
    assert endpoint({"inputs": pair, "parameters": parameters}) == endpoint.pipeline(pair, **parameters)


def test_good_parameters_answer_like_the_pipeline(endpoint):
    for parameters in GOOD_PARAMETERS:
        answer = endpoint({"inputs": "i love this movie", "parameters": parameters})
        assert answer == endpoint.pipeline("i love this movie", **parameters), parameters
    assert endpoint({"inputs": "i love this movie", "parameters": {"threshold": 0}})["emotions"].__len__() == 4
    assert endpoint({"inputs": "i love this movie", "parameters": {"threshold": 1}})["emotions"] == []


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_an_untruncated_text_longer_than_the_encoder_accepts_names_the_limit(folders, backend, restore_threads):  # noqa: F811 (the fixture's value)
    folder = folders[0] if backend == "torch" else folders[1]
    if folder is None:
        pytest.skip("needs the onnx extra: pip install 'polyhead[onnx]'")
    endpoint = _handler_module(folder, f"polyhead_test_handler_long_{backend}").EndpointHandler(str(folder))
    assert endpoint.backend == backend
    for inputs in (LONG_TEXT, ["short one", LONG_TEXT], {"text": LONG_TEXT, "text_pair": "fine"}):
        with pytest.raises(ValueError, match=r"tokens with truncation=False, more than .* accepts \(80 tokens\)"):
            endpoint({"inputs": inputs, "parameters": {"truncation": False}})
    assert set(endpoint({"inputs": LONG_TEXT})) == {"sentiment", "topic", "emotions"}  # truncated by default
    assert len(endpoint({"inputs": ["short one", "bad phone"], "parameters": {"truncation": False}})) == 2


def test_untruncated_zero_shot_pairs_are_checked_too(nli_folders, restore_threads):  # noqa: F811 (the fixture's value)
    folder = nli_folders[0]
    endpoint = _handler_module(folder, "polyhead_test_handler_long_nli").EndpointHandler(str(folder))
    with pytest.raises(ValueError, match=r"\(80 tokens\)"):
        endpoint({"inputs": [LONG_TEXT], "parameters": {"candidate_labels": ["sport"], "truncation": False}})


def test_a_request_over_the_input_limit_names_the_limit(folders, nli_folders, monkeypatch, restore_threads):  # noqa: F811 (the fixture's value)
    monkeypatch.setenv("POLYHEAD_MAX_INPUTS", "3")
    endpoint = _handler_module(folders[0], "polyhead_test_handler_limit").EndpointHandler(str(folders[0]))
    assert len(endpoint({"inputs": ["a", "b", "c"]})) == 3
    with pytest.raises(ValueError, match=r"4 inputs, more than this endpoint's limit of 3 \(POLYHEAD_MAX_INPUTS\)"):
        endpoint({"inputs": ["a", "b", "c", "d"]})
    nli = _handler_module(nli_folders[0], "polyhead_test_handler_limit_nli").EndpointHandler(str(nli_folders[0]))
    assert len(nli({"inputs": "a b", "parameters": {"candidate_labels": "sport, money, tech"}})["labels"]) == 3
    with pytest.raises(ValueError, match=r"4 texts x candidate labels, more than this endpoint's limit of 3"):
        nli({"inputs": ["a", "b"], "parameters": {"candidate_labels": ["sport", "money"]}})
    monkeypatch.setenv("POLYHEAD_MAX_INPUTS", "0")
    with pytest.raises(ValueError, match=r"POLYHEAD_MAX_INPUTS must be an integer >= 1, got '0'"):
        endpoint.__class__(str(folders[0]))


def test_a_list_without_batch_size_runs_in_the_default_batches(folders, endpoint, monkeypatch):  # noqa: F811 (the fixture's value)
    calls = []
    endpoint.pipeline = lambda inputs, **parameters: calls.append(parameters)
    endpoint({"inputs": ["a", "b"]})
    endpoint({"inputs": ["a", "b"], "parameters": {"batch_size": 4}})
    endpoint({"inputs": "a"})
    assert calls == [{"batch_size": DEFAULT_BATCH_SIZE}, {"batch_size": 4}, {}]
    monkeypatch.setenv("POLYHEAD_BATCH_SIZE", "8")
    assert endpoint.__class__(str(folders[0])).batch_size == 8


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_one_setting_sets_torch_and_onnxruntime_threads(folders, backend, monkeypatch, restore_threads):  # noqa: F811 (the fixture's value)
    folder = folders[0] if backend == "torch" else folders[1]
    if folder is None:
        pytest.skip("needs the onnx extra: pip install 'polyhead[onnx]'")
    handler = _handler_module(folder, f"polyhead_test_handler_threads_{backend}")
    for setting, expected in (("", 1), ("2", 2)):  # unset: one thread, the measured default
        monkeypatch.setenv("POLYHEAD_NUM_THREADS", setting)
        torch.set_num_threads(3)
        endpoint = handler.EndpointHandler(str(folder))
        assert torch.get_num_threads() == expected
        if backend == "onnx":
            assert endpoint.pipeline.model.session.get_session_options().intra_op_num_threads == expected
    monkeypatch.setenv("POLYHEAD_NUM_THREADS", "0")  # the libraries' own choice: left as they are
    torch.set_num_threads(3)
    handler.EndpointHandler(str(folder))
    assert torch.get_num_threads() == 3
    monkeypatch.setenv("POLYHEAD_NUM_THREADS", "two")
    with pytest.raises(ValueError, match="POLYHEAD_NUM_THREADS must be an integer >= 0, got 'two'"):
        handler.EndpointHandler(str(folder))


def test_every_accepted_parameter_has_a_rule():
    assert set(serving_handler.PARAMETER_RULES) == {*serving_handler.PARAMETERS, *serving_handler.ZERO_SHOT_PARAMETERS}
