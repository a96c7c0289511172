"""handler.py, as Inference Endpoints runs it: model folder on sys.path, `import handler`, instantiate, call.

The handler runs in a fresh process that cannot import this project (only the folder's own files), with the ONNX graph
and with torch; publishing stages handler.py, requirements.txt and onnx/ (offline dry runs).
"""

import importlib.util
import json
import re
import shutil
import textwrap

import pytest
import torch
from helpers import BLOCKER, run_fresh

from polyhead import MultitaskModel
from polyhead.publishing.upload import publish_model
from polyhead.saving import save_model_folder
from polyhead.serving import SERVING_FILES
from polyhead.testing_utils import TINY_NLI_TASKS, tiny_multitask_config, tiny_tokenizer


HAS_ONNX = all(importlib.util.find_spec(name) for name in ("onnx", "onnxscript", "onnxruntime"))
# What handler.py may import in an Inference Endpoint: the standard library, torch, transformers, onnxruntime and
# the folder's own files (onnx_multitask.py).
ALLOWED_IMPORTS = {"importlib", "json", "logging", "os", "sys", "typing", "dataclasses", "pathlib", "numpy"}
ALLOWED_IMPORTS |= {"torch", "transformers", "onnxruntime"}
ALLOWED_IMPORTS |= {"onnx_multitask"}
TEXTS = ["i love this movie", "bad phone", "the team win the game today and people are happy"]
BAD_REQUESTS = [
    {},
    "just a string",
    {"inputs": 5},
    {"inputs": ["fine", ""]},
    {"inputs": ["fine", 3]},
    {"inputs": "fine", "parameters": {"tasks": ["nope"]}},
    {"inputs": "fine", "parameters": {"colour": "red"}},
    {"inputs": "fine", "parameters": "top_k=2"},
    {"inputs": "fine", "parameters": {"top_k": 0}},
    {"inputs": "fine", "parameters": ""},
]
TOOLKIT = BLOCKER + textwrap.dedent(
    """
    import json, os
    folder, texts, bad = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
    sys.path.insert(0, folder)  # what the Inference Endpoints toolkit does before importing handler.py
    import handler
    endpoint = handler.EndpointHandler(folder)

    def error(request):
        try:
            endpoint(request)
        except ValueError as raised:  # what the toolkit answers with 400 {"error": str(raised)}
            return {"error": str(raised)}
        return None

    print(json.dumps({
        "backend": endpoint.backend,
        "batch": endpoint({"inputs": texts, "parameters": {"top_k": None, "batch_size": 2}}),
        "one": endpoint({"inputs": texts[0], "parameters": {"tasks": ["topic"], "top_k": 2}}),
        "errors": [error(request) for request in bad],
    }))
    """
)


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    # EndpointHandler sets this process's torch threads (POLYHEAD_NUM_THREADS, default 1): give them back.
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("handler")
    torch.manual_seed(0)
    plain = save_model_folder(MultitaskModel(tiny_multitask_config()).eval(), tiny_tokenizer(), root / "plain")
    if not HAS_ONNX:
        return plain, None
    from polyhead.exporters.onnx import export_onnx

    with_onnx = shutil.copytree(plain, root / "with-onnx")
    export_onnx(with_onnx, int8=True)
    return plain, with_onnx


def _run_toolkit(folder, tmp_path):
    out = run_fresh(TOOLKIT, str(folder), json.dumps(TEXTS), json.dumps(BAD_REQUESTS), cwd=tmp_path)
    return json.loads(out.splitlines()[-1])


def _local_answers(folder):
    from transformers import pipeline

    classifier = pipeline(
        "multitask-classification", model=MultitaskModel.from_pretrained(folder).eval(), tokenizer=tiny_tokenizer()
    )
    return classifier(TEXTS, top_k=None, batch_size=2)


def test_saved_folder_holds_the_serving_files(folders):
    plain, _ = folders
    assert all((plain / name).is_file() for name in SERVING_FILES)
    assert "onnxruntime" in (plain / "requirements.txt").read_text()
    source = (plain / "handler.py").read_text() + (plain / "onnx_multitask.py").read_text()
    imports = [line.split()[1] for line in source.splitlines() if line.startswith(("import ", "from "))]
    assert not [name for name in imports if name.split(".")[0] not in ALLOWED_IMPORTS], imports


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_endpoint_handler_answers_like_the_pipeline_and_reports_bad_requests(folders, backend, tmp_path):
    plain, with_onnx = folders
    if backend == "onnx" and with_onnx is None:
        pytest.skip("needs the onnx extra: pip install 'polyhead[onnx]'")
    out = _run_toolkit(plain if backend == "torch" else with_onnx, tmp_path)
    assert out["backend"] == backend
    expected = _local_answers(plain)
    assert _labels(out["batch"]) == _labels(expected)
    for ours, theirs in zip(out["batch"], expected):
        for task in theirs:
            assert [i["score"] for i in ours[task]] == pytest.approx([i["score"] for i in theirs[task]], abs=1e-4)
    assert list(out["one"]) == ["topic"] and len(out["one"]["topic"]) == 2
    assert len(out["errors"]) == len(BAD_REQUESTS)
    for error in out["errors"]:
        assert (
            error is not None
            and set(error) == {"error"}
            and "Traceback" not in error["error"]
            and len(error["error"]) > 10
        )
    messages = [error["error"] for error in out["errors"]]
    assert "no 'inputs'" in messages[0] and "JSON object" in messages[1] and "a sentence pair" in messages[2]
    assert "empty" in messages[3] and "position 1" in messages[4] and "Unknown task" in messages[5]
    assert "colour" in messages[6] and "'parameters' must be an object" in messages[7] and "top_k" in messages[8]
    assert "'parameters' must be an object, got str" in messages[9]


def _handler_module(folder, name):
    """The folder's handler.py imported under `name` (each test its own module, so monkeypatching stays local)."""
    spec = importlib.util.spec_from_file_location(name, folder / "handler.py")
    handler = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(handler)
    return handler


def test_without_onnxruntime_the_handler_falls_back_to_torch(folders, monkeypatch):
    plain, with_onnx = folders
    if with_onnx is None:
        pytest.skip("needs the onnx extra to export a graph")
    handler = _handler_module(with_onnx, "polyhead_test_handler")
    monkeypatch.setattr(handler, "_onnxruntime_installed", lambda: False)
    endpoint = handler.EndpointHandler(str(with_onnx))
    assert endpoint.backend == "torch"
    answer = endpoint({"inputs": TEXTS[0], "parameters": {"top_k": None}})
    assert _labels([answer]) == _labels(_local_answers(plain)[:1])


def test_bfloat16_on_request_for_the_torch_model(folders, monkeypatch, caplog):
    plain, with_onnx = folders
    handler = _handler_module(plain, "polyhead_test_handler_dtype")
    monkeypatch.setenv("POLYHEAD_DTYPE", "bfloat16")
    endpoint = handler.EndpointHandler(str(plain))
    assert endpoint.backend == "torch" and endpoint.pipeline.model.dtype == torch.bfloat16
    answer = endpoint({"inputs": TEXTS[0], "parameters": {"top_k": None}})
    expected = _local_answers(plain)[0]
    for task in ("sentiment", "topic"):  # bfloat16 keeps ~3 significant digits
        ours = {item["label"]: item["score"] for item in answer[task]}
        assert ours == pytest.approx({item["label"]: item["score"] for item in expected[task]}, abs=0.02)
    monkeypatch.setenv("POLYHEAD_DTYPE", "float16")
    with pytest.raises(ValueError, match=r"POLYHEAD_DTYPE must be one of \['float32', 'bfloat16'\], got 'float16'"):
        handler.EndpointHandler(str(plain))
    if with_onnx is not None:  # not for ONNX: a warning, and the graph as exported (never an error at a request)
        monkeypatch.setenv("POLYHEAD_DTYPE", "bfloat16")
        with caplog.at_level("WARNING"):
            endpoint = handler.EndpointHandler(str(with_onnx))
        assert endpoint.backend == "onnx" and "POLYHEAD_DTYPE=bfloat16 is for the torch model" in caplog.text
        assert "Set POLYHEAD_BACKEND=torch" in caplog.text
        assert _labels([endpoint({"inputs": TEXTS[0], "parameters": {"top_k": None}})]) == _labels(
            _local_answers(with_onnx)[:1]
        )


def test_compile_on_request_or_from_serving_json(folders, monkeypatch, caplog):
    from polyhead.serving import compiled

    plain, with_onnx = folders
    handler = _handler_module(plain, "polyhead_test_handler_compile")
    calls = []
    monkeypatch.setattr(compiled, "compile_model", lambda model, dtype: calls.append(dtype) or model)
    monkeypatch.setenv("POLYHEAD_COMPILE", "1")
    endpoint = handler.EndpointHandler(str(plain))
    assert endpoint.backend == "torch" and calls == ["auto"]  # no POLYHEAD_DTYPE: bfloat16 where the CPU has it
    assert _labels([endpoint({"inputs": TEXTS[0], "parameters": {"top_k": None}})]) == _labels(
        _local_answers(plain)[:1]
    )
    monkeypatch.setenv("POLYHEAD_DTYPE", "float32")
    handler.EndpointHandler(str(plain))
    assert calls == ["auto", "float32"]
    monkeypatch.setenv("POLYHEAD_COMPILE", "maybe")
    with pytest.raises(ValueError, match=r"POLYHEAD_COMPILE must be 1 or 0 \(true/false\), got 'maybe'"):
        handler.EndpointHandler(str(plain))
    for name in ("POLYHEAD_COMPILE", "POLYHEAD_DTYPE"):
        monkeypatch.delenv(name)
    (plain / "serving.json").write_text(json.dumps({"backend": "torch", "dtype": "bfloat16", "compile": True}))
    try:
        handler.EndpointHandler(str(plain))
    finally:
        (plain / "serving.json").unlink()
    assert calls == ["auto", "float32", "bfloat16"]
    if with_onnx is not None:
        monkeypatch.setenv("POLYHEAD_COMPILE", "true")
        with caplog.at_level("WARNING"):
            assert handler.EndpointHandler(str(with_onnx)).backend == "onnx"
        assert "POLYHEAD_COMPILE is for the torch model" in caplog.text and calls == ["auto", "float32", "bfloat16"]


def test_compile_without_polyhead_serves_the_eager_model(folders, monkeypatch, caplog):
    import builtins

    plain, _ = folders
    handler = _handler_module(plain, "polyhead_test_handler_no_polyhead")
    real_import = builtins.__import__

    def without_polyhead(name, *args, **kwargs):
        if name.startswith("polyhead"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setenv("POLYHEAD_COMPILE", "1")
    monkeypatch.setattr(builtins, "__import__", without_polyhead)
    with caplog.at_level("WARNING"):
        endpoint = handler.EndpointHandler(str(plain))
    monkeypatch.setattr(builtins, "__import__", real_import)
    assert "POLYHEAD_COMPILE needs the polyhead package" in caplog.text
    assert endpoint.pipeline.model.dtype == torch.float32 and "encode" not in endpoint.pipeline.model.__dict__
    assert _labels([endpoint({"inputs": TEXTS[0], "parameters": {"top_k": None}})]) == _labels(
        _local_answers(plain)[:1]
    )


CHOICE_VARIABLES = ("POLYHEAD_BACKEND", "POLYHEAD_ONNX_FILE", "POLYHEAD_DTYPE", "POLYHEAD_COMPILE")
QUANTIZED = {"backend": "onnx", "onnx_file": "onnx/model_quantized.onnx"}
COMPILED_BF16 = {"backend": "torch", "dtype": "bfloat16", "compile": True}
# (serving.json, environment, what is served, a fragment of a warning): each variable set overrides that one setting of
# the file and the rest of the file still applies (not the settings of another backend than POLYHEAD_BACKEND's).
OVERRIDES = [
    (QUANTIZED, {}, ("onnx", "onnx/model_quantized.onnx"), None),
    (QUANTIZED, {"POLYHEAD_COMPILE": "0"}, ("onnx", "onnx/model_quantized.onnx"), None),  # its default
    (QUANTIZED, {"POLYHEAD_BACKEND": "onnx"}, ("onnx", "onnx/model_quantized.onnx"), None),
    (QUANTIZED, {"POLYHEAD_ONNX_FILE": "onnx/model.onnx"}, ("onnx", "onnx/model.onnx"), None),
    (QUANTIZED, {"POLYHEAD_BACKEND": "torch"}, ("torch", "float32"), None),
    (QUANTIZED, {"POLYHEAD_DTYPE": "bfloat16"}, ("onnx", "onnx/model_quantized.onnx"), "is for the torch model"),
    (COMPILED_BF16, {"POLYHEAD_COMPILE": "0"}, ("torch", "bfloat16"), None),
    (COMPILED_BF16, {"POLYHEAD_COMPILE": ""}, ("torch", "compiled", "bfloat16"), None),  # empty: unset
    (COMPILED_BF16, {"POLYHEAD_DTYPE": "float32"}, ("torch", "compiled", "float32"), None),
    (COMPILED_BF16, {"POLYHEAD_BACKEND": "torch"}, ("torch", "compiled", "bfloat16"), None),
    (COMPILED_BF16, {"POLYHEAD_BACKEND": "onnx"}, ("onnx", "onnx/model.onnx"), None),  # bfloat16 was for torch
    ({"backend": "torch", "dtype": "bfloat16"}, {"POLYHEAD_COMPILE": "1"}, ("torch", "compiled", "bfloat16"), None),
    (
        {"backend": "torch", "dtype": "bfloat16"},
        {"POLYHEAD_ONNX_FILE": "onnx/model_quantized.onnx"},
        ("torch", "bfloat16"),
        "is for the ONNX backend, but the torch model is served (serving.json chooses torch): ignored",
    ),
]


@pytest.fixture
def no_choice_in_the_environment(monkeypatch):
    for name in CHOICE_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("value", ["pytorch", "Torch", "onnxruntime"])
def test_an_unknown_backend_is_refused_naming_the_backends(folders, monkeypatch, no_choice_in_the_environment, value):
    # Before, anything but "torch" served ONNX where the folder had a graph, and torch where it had none.
    monkeypatch.setenv("POLYHEAD_BACKEND", value)
    for folder in [folder for folder in folders if folder is not None]:
        handler = _handler_module(folder, "polyhead_test_handler_bad_backend")
        with pytest.raises(ValueError) as error:
            handler.EndpointHandler(str(folder))
        assert str(error.value).startswith(f"POLYHEAD_BACKEND must be one of ['torch', 'onnx'], got {value!r}: ")
        assert "unset it for serving.json's pick" in str(error.value)


def test_an_onnx_graph_asked_for_that_the_folder_lacks_is_refused_as_in_serving_json(
    folders, monkeypatch, no_choice_in_the_environment
):
    # Before, POLYHEAD_BACKEND=onnx on a folder without a graph, or a POLYHEAD_ONNX_FILE that does not exist, served
    # torch without a word, while the same mistake in serving.json was refused.
    plain, with_onnx = folders
    handler = _handler_module(plain, "polyhead_test_handler_missing_graph")
    monkeypatch.setenv("POLYHEAD_BACKEND", "onnx")
    with pytest.raises(ValueError) as error:
        handler.EndpointHandler(str(plain))
    assert str(error.value) == (
        f"POLYHEAD_BACKEND=onnx chooses onnx/model.onnx, which {plain} lacks: export it with polyhead's `python "
        f"scripts/export_onnx.py {plain}` (--int8 for onnx/model_quantized.onnx), or set POLYHEAD_BACKEND=torch."
    )
    monkeypatch.delenv("POLYHEAD_BACKEND")
    for folder, undo in (
        (plain, "unset it"),
        (with_onnx, "name one it has (onnx/model.onnx, onnx/model_quantized.onnx)"),
    ):
        if folder is None:
            continue
        monkeypatch.setenv("POLYHEAD_ONNX_FILE", "onnx/nope.onnx")
        with pytest.raises(ValueError) as error:
            handler.EndpointHandler(str(folder))
        message = str(error.value)
        assert message.startswith(f"POLYHEAD_ONNX_FILE chooses onnx/nope.onnx, which {folder} lacks")
        assert f"`python scripts/export_onnx.py {folder}`" in message and message.endswith(f", or {undo}.")
        monkeypatch.delenv("POLYHEAD_ONNX_FILE")  # the same mistake in serving.json: the same refusal
        (folder / "serving.json").write_text(json.dumps({"backend": "onnx", "onnx_file": "onnx/nope.onnx"}))
        try:
            with pytest.raises(ValueError, match=re.escape(f"chooses onnx/nope.onnx, which {folder} lacks: ")):
                handler.EndpointHandler(str(folder))
        finally:
            (folder / "serving.json").unlink()


def test_each_variable_overrides_only_its_setting_of_serving_json(folders, monkeypatch, caplog):
    # Before, any of the variables set, even POLYHEAD_COMPILE=0 (its default), threw the whole file away.
    from polyhead.serving import compiled

    _, with_onnx = folders
    if with_onnx is None:
        pytest.skip("needs the onnx extra to export a graph")
    handler = _handler_module(with_onnx, "polyhead_test_handler_overrides")
    calls = []
    monkeypatch.setattr(compiled, "compile_model", lambda model, dtype: calls.append(dtype) or model)
    for settings, environment, expected, warning in OVERRIDES:
        for name in CHOICE_VARIABLES:
            monkeypatch.delenv(name, raising=False)
        for name, value in environment.items():
            monkeypatch.setenv(name, value)
        (with_onnx / "serving.json").write_text(json.dumps(settings))
        caplog.clear()
        try:
            with caplog.at_level("INFO"):
                endpoint = handler.EndpointHandler(str(with_onnx))
        finally:
            (with_onnx / "serving.json").unlink()
        model = endpoint.pipeline.model
        if endpoint.backend == "onnx":
            served = ("onnx", model.file_name)
        elif calls:  # compiled (the recording compile_model leaves the weights in float32)
            served = ("torch", "compiled", calls.pop())
        else:
            served = ("torch", str(model.dtype).removeprefix("torch."))
        assert served == expected, (settings, environment)
        warnings = [r.getMessage() for r in caplog.records if r.name == handler.__name__ and r.levelname == "WARNING"]
        assert [warning in text for text in warnings] == ([] if warning is None else [True]), warnings
        overrides = ", ".join(f"{name}={value}" for name, value in environment.items() if value)
        assert not overrides or f"the environment overrides it with {overrides}" in caplog.text, caplog.text


CHOOSER = BLOCKER + textwrap.dedent(
    """
    import json, os
    folder, cases = sys.argv[1], json.loads(sys.argv[2])
    sys.path.insert(0, folder)  # what the Inference Endpoints toolkit does before importing handler.py
    import handler

    def served(environment):
        for name in ("POLYHEAD_BACKEND", "POLYHEAD_ONNX_FILE", "POLYHEAD_DTYPE", "POLYHEAD_COMPILE"):
            os.environ.pop(name, None)
        os.environ.update(environment)
        try:
            endpoint = handler.EndpointHandler(folder)
        except ValueError as error:
            return {"error": str(error)}
        model = endpoint.pipeline.model
        return {"backend": endpoint.backend, "graph": getattr(model, "file_name", None), "dtype": str(model.dtype)}

    print(json.dumps([served(environment) for environment in cases]))
    """
)


@pytest.mark.slow
def test_the_endpoint_serves_serving_json_with_the_environment_s_overrides(folders, tmp_path):
    # As the toolkit loads it: a fresh process without polyhead, the folder's serving.json and the environment.
    _, with_onnx = folders
    if with_onnx is None:
        pytest.skip("needs the onnx extra to export a graph")
    folder = shutil.copytree(with_onnx, tmp_path / "model")
    (folder / "serving.json").write_text(json.dumps(QUANTIZED))
    cases = [
        {"POLYHEAD_COMPILE": "0"},
        {"POLYHEAD_BACKEND": "Torch"},
        {"POLYHEAD_BACKEND": "torch", "POLYHEAD_DTYPE": "bfloat16"},
        {"POLYHEAD_ONNX_FILE": "onnx/nope.onnx"},
    ]
    out = json.loads(run_fresh(CHOOSER, str(folder), json.dumps(cases), cwd=tmp_path).splitlines()[-1])
    assert out[0] == {"backend": "onnx", "graph": "onnx/model_quantized.onnx", "dtype": "torch.float32"}
    assert out[1]["error"].startswith("POLYHEAD_BACKEND must be one of ['torch', 'onnx'], got 'Torch'")
    assert out[2] == {"backend": "torch", "graph": None, "dtype": "torch.bfloat16"}
    assert out[3]["error"].startswith(f"POLYHEAD_ONNX_FILE chooses onnx/nope.onnx, which {folder} lacks")


PAIR = {"text": "the team win the game", "text_pair": "people are happy"}
ZERO_SHOT = {"candidate_labels": ["sport", "money"], "hypothesis_template": "this is about {}", "multi_label": True}


@pytest.fixture(scope="module")
def nli_folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("handler-nli")
    torch.manual_seed(0)
    plain = save_model_folder(
        MultitaskModel(tiny_multitask_config(tasks=TINY_NLI_TASKS)).eval(), tiny_tokenizer(), root / "t"
    )
    if not HAS_ONNX:
        return plain, None
    from polyhead.exporters.onnx import export_onnx

    with_onnx = shutil.copytree(plain, root / "with-onnx")
    export_onnx(with_onnx)
    return plain, with_onnx


def _assert_close(ours, theirs, tolerance):
    assert json.loads(json.dumps(ours)).keys() == theirs.keys()
    for key, value in theirs.items():
        if key == "scores":
            assert ours[key] == pytest.approx(value, abs=tolerance)
        elif isinstance(value, list) and value and isinstance(value[0], dict):  # [{"label", "score"}, ...]
            assert [i["label"] for i in ours[key]] == [i["label"] for i in value], key
            assert [i["score"] for i in ours[key]] == pytest.approx([i["score"] for i in value], abs=tolerance)
        else:
            assert ours[key] == value, key


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_the_handler_serves_sentence_pairs_and_zero_shot(nli_folders, folders, backend):
    # As text-classification and zero-shot-classification endpoints take them: a pair as `inputs`, alone or in a
    # list, and `candidate_labels` (with `hypothesis_template`, `multi_label`, `nli_task`) in `parameters`.
    plain, with_onnx = nli_folders
    if backend == "onnx" and with_onnx is None:
        pytest.skip("needs the onnx extra: pip install 'polyhead[onnx]'")
    folder = plain if backend == "torch" else with_onnx
    endpoint = _handler_module(folder, f"polyhead_test_handler_nli_{backend}").EndpointHandler(str(folder))
    assert endpoint.backend == backend
    from transformers import pipeline

    model = MultitaskModel.from_pretrained(plain).eval()
    classifier = pipeline("multitask-classification", model=model, tokenizer=tiny_tokenizer())
    tolerance = 1e-5 if backend == "torch" else 1e-4
    _assert_close(endpoint({"inputs": PAIR, "parameters": {"top_k": None}}), classifier(PAIR, top_k=None), tolerance)
    mixed = [PAIR, TEXTS[0], {"text": TEXTS[1], "text_pair": TEXTS[2]}]
    for ours, theirs in zip(
        endpoint({"inputs": mixed, "parameters": {"batch_size": 2}}), classifier(mixed), strict=True
    ):
        _assert_close(ours, theirs, tolerance)
    request = {"inputs": TEXTS, "parameters": {**ZERO_SHOT, "batch_size": 4}}
    for ours, theirs in zip(endpoint(request), classifier(TEXTS, **ZERO_SHOT), strict=True):
        _assert_close(ours, theirs, tolerance)
    one = endpoint({"inputs": TEXTS[0], "parameters": {"candidate_labels": ["sport", "money", "movies"]}})
    assert one["sequence"] == TEXTS[0] and sum(one["scores"]) == pytest.approx(1.0)
    bad = [
        ({"inputs": "x y", "parameters": {"candidate_labels": ["a"], "top_k": 2}}, "['top_k'] do not apply"),
        ({"inputs": "x y", "parameters": {"hypothesis_template": "It is {}."}}, "give candidate_labels too"),
        ({"inputs": {"text": "x y", "label": "a"}}, "must have the key 'text'"),
        ({"inputs": PAIR, "parameters": {"candidate_labels": ["a"]}}, "a text or a list of texts"),
        ({"inputs": [PAIR], "parameters": {"candidate_labels": ["a"]}}, "position 0 to be a string, got dict"),
        ({"inputs": "x y", "parameters": {"candidate_labels": ["a"], "nli_task": "topic"}}, "cannot classify"),
    ]
    for request, message in bad:
        with pytest.raises(ValueError, match=re.escape(message)):
            endpoint(request)
    no_nli = _handler_module(folders[0], f"polyhead_test_handler_no_nli_{backend}").EndpointHandler(str(folders[0]))
    with pytest.raises(ValueError, match="needs an NLI task"):
        no_nli({"inputs": "x y", "parameters": {"candidate_labels": ["a", "b"]}})


def _labels(rows):
    return [{task: [item["label"] for item in items] for task, items in row.items()} for row in rows]


def test_publishing_stages_handler_requirements_and_onnx(folders, tmp_path):
    plain, with_onnx = folders
    source = _hand_carded_copy(with_onnx or plain, tmp_path / "model")
    preview = publish_model(source, "org/tiny", dry_run_dir=tmp_path / "preview")
    assert set(SERVING_FILES) <= set(preview.files)
    if with_onnx is not None:
        assert {"onnx/model.onnx", "onnx/model_quantized.onnx"} <= set(preview.files)
    assert not [name for name in preview.files if "/." in name or name.startswith(".")]


def test_publishing_an_older_folder_adds_the_handler(folders, tmp_path):
    plain, _ = folders
    old = _hand_carded_copy(plain, tmp_path / "old")
    for name in SERVING_FILES:
        (old / name).unlink()
    preview = publish_model(old, "org/tiny", dry_run_dir=tmp_path / "preview")
    assert set(SERVING_FILES) <= set(preview.files) and not (old / "handler.py").exists()


def test_publishing_an_older_folder_names_its_tokenizer_inputs(folders, tmp_path):
    # Folders saved before the tokenizer named its inputs get the names in the upload (the folder stays as it is).
    plain, _ = folders
    old = _hand_carded_copy(plain, tmp_path / "old")
    config = json.loads((old / "tokenizer_config.json").read_text())
    del config["model_input_names"]
    (old / "tokenizer_config.json").write_text(json.dumps(config))
    publish_model(old, "org/tiny", dry_run_dir=tmp_path / "preview")
    staged = json.loads((tmp_path / "preview" / "tokenizer_config.json").read_text())
    assert staged["model_input_names"] == ["input_ids", "token_type_ids", "attention_mask"]
    assert "model_input_names" not in json.loads((old / "tokenizer_config.json").read_text())


def _hand_carded_copy(folder, target):
    # A hand-written README is published as is: no results.json needed to render a card.
    copy = shutil.copytree(folder, target)
    (copy / "README.md").write_text("# A tiny model\n", encoding="utf-8")
    return copy


def test_handler_keeps_the_library_s_precisions():
    # handler.py runs without polyhead, so it keeps its own copy of the served dtypes: pinned to the library's.
    from polyhead.serving import handler, settings

    assert handler.DTYPES == settings.TORCH_DTYPES
