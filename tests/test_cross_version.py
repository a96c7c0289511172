"""The Hub files work on every transformers release a Hub user may have (4.51.3 to the newest 5.x).

Folders saved here (newest transformers) are loaded in virtual environments holding only torch and an older release
(`bash scripts/compat_envs.sh` builds them under `.venv-compat/`), as a Hub user would: config, model, tokenizer and
pipeline with `trust_remote_code=True`, then saved again and reloaded. Their answers must equal the newest release's,
and folders they re-save must load back here. Without the environments these tests skip, except under `.ci/run`
(`POLYHEAD_REQUIRE_COMPAT=1`), which builds them. Folders an older release re-saves load on the newest and the oldest.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from helpers import BLOCKER, RESULTS, publish

from polyhead import MultitaskModel
from polyhead.saving import save_model_folder
from polyhead.testing_utils import TINY_NLI_TASKS, tiny_multitask_config, tiny_tokenizer


ROOT = Path(__file__).resolve().parent.parent
CHECK = Path(__file__).resolve().parent / "compat_check.py"
TEXTS = ["i love this movie", "bad phone", "the team win the game today and people are happy"]
FAMILIES = ("bert", "distilbert", "roberta")
OLDEST = "4.51.3"


def compat_pythons() -> dict[str, Path]:
    found = {
        path.parent.parent.name.removeprefix("transformers-"): path
        for path in sorted((ROOT / ".venv-compat").glob("transformers-*/bin/python"))
    }
    if not found or OLDEST not in found:
        message = f"no transformers {OLDEST} environment in .venv-compat/: run bash scripts/compat_envs.sh"
        if os.environ.get("POLYHEAD_REQUIRE_COMPAT") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return found


def run_check(python, out: Path, sources, *extra, **env_overrides) -> dict:
    """Runs tests/compat_check.py in a new interpreter that can import nothing of this project."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(out.parent / f"modules-{out.stem}"))
    env.update(HF_HOME=str(out.parent / "hf_home"), **env_overrides)
    command = [str(python), str(CHECK), str(out), json.dumps(TEXTS), *map(str, sources), *extra]
    done = subprocess.run(
        command, cwd=out.parent, env=env, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL
    )
    assert done.returncode == 0, f"{python}: {done.stderr[-3000:]}"
    return json.loads(out.read_text())


def assert_same_answers(theirs: dict, reference: dict, where: str) -> None:
    assert theirs["tasks"] == reference["tasks"], where
    assert theirs["custom_pipelines"] == reference["custom_pipelines"], where
    assert theirs["encoder_type"] == reference["encoder_type"], where
    # The tokenizer's own class (BertTokenizer on 5.x, BertTokenizerFast on 4.x), never 5.0's generic backend.
    assert theirs["tokenizer_class"].removesuffix("Fast") == reference["tokenizer_class"].removesuffix("Fast"), where
    for task, logits in reference["logits"].items():
        torch.testing.assert_close(torch.tensor(theirs["logits"][task]), torch.tensor(logits), rtol=0, atol=1e-5)
    for key in ("pipeline", "resaved_pipeline", "object_pipeline"):  # the last built from the loaded model object
        for row, expected in zip(theirs[key], reference["pipeline"], strict=True):
            for task, answer in expected.items():
                assert [i["label"] for i in row[task]] == [i["label"] for i in answer], (where, key, task)
                scores = [i["score"] for i in row[task]]
                assert scores == pytest.approx([i["score"] for i in answer], abs=1e-5), (where, key, task)


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("saved")
    saved = []
    for family in FAMILIES:
        torch.manual_seed(0)
        model = MultitaskModel(tiny_multitask_config(family)).eval()
        saved.append(save_model_folder(model, tiny_tokenizer(), root / family))
    # pooling="native" (the family's own head transform, what exported tasks need) on every release too.
    torch.manual_seed(0)
    model = MultitaskModel(tiny_multitask_config("distilbert", pooling="native")).eval()
    saved.append(save_model_folder(model, tiny_tokenizer(), root / "distilbert-native"))
    return saved


@pytest.fixture(scope="module")
def reference(folders, tmp_path_factory) -> dict:
    """Answers of the newest transformers (this environment), loading through remote code like the others."""
    return run_check(sys.executable, tmp_path_factory.mktemp("reference") / "newest.json", folders)["results"]


@pytest.mark.slow
def test_every_release_loads_resaves_and_answers_alike(folders, reference, tmp_path):
    pythons = compat_pythons()
    assert len(pythons) >= 3, f"expected the oldest release and two more, found {sorted(pythons)}"
    for version, python in pythons.items():
        out = run_check(python, tmp_path / f"transformers-{version}.json", folders)
        assert out["transformers"] == version
        for folder in folders:
            theirs = out["results"][str(folder)]
            assert theirs["config_class"].startswith("transformers_modules.")
            assert_same_answers(theirs, reference[str(folder)], f"transformers {version}, {folder.name}")
        # What the old release saved loads here and on the oldest release (a user re-saving on 5.0 and serving on
        # the Inference Endpoints' 4.51.3), with the same answers (config, tasks, pipeline code kept).
        resaved = [out["results"][str(folder)]["resaved_dir"] for folder in folders]
        loaders = {"newest": sys.executable, **({OLDEST: pythons[OLDEST]} if version != OLDEST else {})}
        for loader, loader_python in loaders.items():
            back = run_check(loader_python, tmp_path / f"{loader}-from-{version}.json", resaved)
            for folder, again in zip(folders, resaved):
                config = json.loads((Path(again) / "config.json").read_text())
                assert config["transformers_version"] == version
                where = f"saved by {version}, loaded on {loader}"
                assert_same_answers(back["results"][again], reference[str(folder)], where)


@pytest.mark.slow
def test_oldest_release_loads_from_a_hub_server(hub, folders, reference, tmp_path):
    python = compat_pythons()[OLDEST]
    folder = folders[0]  # bert, as saved here; publishing needs its results (the card is built from them)
    (folder / "results.json").write_text(json.dumps(RESULTS), encoding="utf-8")
    publish(hub, folder, "org/compat", branch="v1")
    out = run_check(
        python,
        tmp_path / "from-hub.json",
        ["org/compat"],
        "--revision",
        "v1",
        HF_ENDPOINT=hub.url,
        HF_HUB_DISABLE_XET="1",
        HF_HUB_OFFLINE="0",
        HF_TOKEN="test-token",
    )
    assert_same_answers(out["results"]["org/compat"], reference[str(folder)], f"transformers {OLDEST} from the Hub")


ENDPOINT = BLOCKER + textwrap.dedent(
    """
    import json, os, transformers
    folder, texts = sys.argv[1], json.loads(sys.argv[2])
    sys.path.insert(0, folder)  # what the Inference Endpoints toolkit does before importing handler.py
    import handler
    out = {"transformers": transformers.__version__}

    def error(request):
        try:
            endpoint(request)
        except ValueError as raised:  # the toolkit answers it with 400 {"error": str(raised)}
            return str(raised)

    for dtype in ("float32", "bfloat16"):
        os.environ["POLYHEAD_DTYPE"] = dtype
        endpoint = handler.EndpointHandler(folder)
        out[dtype] = {
            "backend": endpoint.backend,
            "dtype": str(endpoint.pipeline.model.dtype),
            "answers": endpoint({"inputs": texts, "parameters": {"top_k": None, "threshold": 0.0, "batch_size": 2}}),
            "error": error({"inputs": texts[0], "parameters": {"tasks": ["nope"]}}),
        }
    print(json.dumps(out))
    """
)


def run_endpoint(python, script: str, folder: Path, modules: Path) -> dict:
    """Runs `script` (handler.py as the toolkit loads it) on `folder` in a new interpreter without this project."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "POLYHEAD_DTYPE")}
    env.update(HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(modules))
    done = subprocess.run(
        [str(python), "-c", script, str(folder), json.dumps(TEXTS)],
        cwd=modules.parent, env=env, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 0, f"{python}: {done.stderr[-3000:]}"
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.slow
def test_the_endpoint_handler_runs_on_every_release(folders, reference, tmp_path):
    # The Inference Endpoints toolkit pins transformers 4.51.3: handler.py, as the toolkit loads it (folder on
    # sys.path, `import handler`), answers as the newest release's pipeline does, in float32 and in bfloat16.
    folder = folders[0]
    for version, python in compat_pythons().items():
        out = run_endpoint(python, ENDPOINT, folder, tmp_path / f"modules-{version}")
        assert out["transformers"] == version
        for dtype, tolerance in (("float32", 1e-5), ("bfloat16", 0.02)):
            served = out[dtype]
            assert served["backend"] == "torch" and served["dtype"] == f"torch.{dtype}", (version, dtype)
            assert "Unknown task" in served["error"], (version, dtype)
            for row, expected in zip(served["answers"], reference[str(folder)]["pipeline"], strict=True):
                for task, answer in expected.items():
                    ours = {i["label"]: i["score"] for i in row[task]}
                    theirs = {i["label"]: i["score"] for i in answer}
                    assert ours == pytest.approx(theirs, abs=tolerance), (version, dtype, task)


PAIRS_AND_ZERO_SHOT = BLOCKER + textwrap.dedent(
    """
    import json, transformers
    folder, texts = sys.argv[1], json.loads(sys.argv[2])
    sys.path.insert(0, folder)
    import handler
    endpoint = handler.EndpointHandler(folder)
    pairs = [{"text": texts[0], "text_pair": texts[1]}, texts[2], {"text": texts[2], "text_pair": texts[0]}]
    zero_shot = {"candidate_labels": ["sport", "money", "movies"], "hypothesis_template": "this is about {}"}
    print(json.dumps({
        "transformers": transformers.__version__,
        "pairs": endpoint({"inputs": pairs, "parameters": {"top_k": None, "batch_size": 2}}),
        "zero_shot": endpoint({"inputs": texts, "parameters": {**zero_shot, "batch_size": 4}}),
        "multi_label": endpoint({"inputs": texts[2], "parameters": {**zero_shot, "multi_label": True}}),
    }))
    """
)


@pytest.mark.slow
def test_pairs_and_zero_shot_through_the_handler_on_every_release(tmp_path):
    # Sentence pairs (mixed with texts, padded together) and zero-shot through an NLI task, as an endpoint on
    # transformers 4.51.3 serves them: the same answers as on the newest release.
    torch.manual_seed(0)
    folder = save_model_folder(
        MultitaskModel(tiny_multitask_config(tasks=TINY_NLI_TASKS)).eval(), tiny_tokenizer(), tmp_path / "nli"
    )
    newest = run_endpoint(sys.executable, PAIRS_AND_ZERO_SHOT, folder, tmp_path / "modules-newest")
    assert len(newest["pairs"]) == 3 and len(newest["zero_shot"]) == 3
    assert newest["multi_label"]["sequence"] == TEXTS[2] and len(newest["multi_label"]["labels"]) == 3
    for version, python in compat_pythons().items():
        out = run_endpoint(python, PAIRS_AND_ZERO_SHOT, folder, tmp_path / f"modules-{version}")
        assert out["transformers"] == version
        for row, expected in zip(out["pairs"], newest["pairs"], strict=True):
            for task, answer in expected.items():
                ours = {i["label"]: i["score"] for i in row[task]}
                assert ours == pytest.approx({i["label"]: i["score"] for i in answer}, abs=1e-5), (version, task)
        for ours, theirs in zip(
            [*out["zero_shot"], out["multi_label"]], [*newest["zero_shot"], newest["multi_label"]]
        ):
            assert ours["sequence"] == theirs["sequence"] and ours["labels"] == theirs["labels"], version
            assert ours["scores"] == pytest.approx(theirs["scores"], abs=1e-5), version


HALF_PRECISION = BLOCKER + textwrap.dedent(
    """
    import json, torch, transformers
    from packaging.version import Version
    from transformers import AutoModel, pipeline
    folders, texts, dtypes = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3].split(",")
    # The argument is `dtype` from transformers 4.56 on, `torch_dtype` before.
    key = "dtype" if Version(transformers.__version__) >= Version("4.56") else "torch_dtype"
    pairs = [{"text": texts[0], "text_pair": texts[1]}, texts[2], {"text": texts[2], "text_pair": texts[0]}]
    zero_shot = {"candidate_labels": ["sport", "money", "movies"], "hypothesis_template": "this is about {}"}
    every = {"top_k": None, "threshold": 0.0, "batch_size": 2}
    out = {"transformers": transformers.__version__}
    for folder in folders:
        for name in dtypes:
            dtype = getattr(torch, name)
            model = AutoModel.from_pretrained(folder, trust_remote_code=True, **{key: dtype})
            classifier = pipeline("multitask-classification", model=folder, trust_remote_code=True, **{key: dtype})
            out[f"{folder}:{name}"] = {
                "weights": sorted({str(p.dtype) for p in model.parameters()}),
                "lists": classifier(texts, **every),
                "text": classifier(texts[2], top_k=None, threshold=0.0),
                "pairs": classifier(pairs, **every),
                "zero_shot": classifier(texts, **zero_shot, batch_size=2),
            }
    print(json.dumps(out))  # json refuses anything but Python floats for the scores
    """
)


@pytest.fixture(scope="module")
def pretrained_folders(tmp_path_factory) -> list[Path]:
    # As users build theirs, from a saved encoder: its config records float32, which `dtype=` must override.
    from test_dtype import POOLINGS, TASKS
    from transformers import AutoTokenizer

    from polyhead.benchmark.inputs import save_tiny_encoder

    root = tmp_path_factory.mktemp("pretrained")
    encoder = save_tiny_encoder(root / "encoder")
    saved = []
    for pooling in POOLINGS:
        torch.manual_seed(0)
        model = MultitaskModel.from_encoder_pretrained(encoder, tasks=TASKS, pooling=pooling).eval()
        saved.append(save_model_folder(model, AutoTokenizer.from_pretrained(encoder), root / pooling))
    return saved


def run_half_precision(python, folders: list[Path], dtypes: str, modules: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(modules))
    command = [str(python), "-c", HALF_PRECISION, json.dumps(list(map(str, folders))), json.dumps(TEXTS), dtypes]
    done = subprocess.run(
        command, cwd=modules.parent, env=env, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL
    )
    assert done.returncode == 0, f"{python}: {done.stderr[-3000:]}"
    return json.loads(done.stdout.splitlines()[-1])


def assert_close_scores(ours: list[dict], theirs: list[dict], where) -> None:
    for row, expected in zip(ours, theirs, strict=True):
        if "sequence" in expected:  # zero-shot
            found = dict(zip(row["labels"], row["scores"]))
            assert found == pytest.approx(dict(zip(expected["labels"], expected["scores"])), abs=0.02), where
            continue
        for task, answer in expected.items():
            found = {item["label"]: item["score"] for item in row[task]}
            assert found == pytest.approx({item["label"]: item["score"] for item in answer}, abs=0.02), where


@pytest.mark.slow
def test_half_precision_dtype_argument_on_every_release(pretrained_folders, tmp_path):
    # `dtype=` (`torch_dtype=` before 4.56) through AutoModel and pipeline, for every pooling: every weight in that
    # dtype and the answers of the float32 model on the newest release (lists padded in batches of two, a text,
    # pairs, zero-shot) within half precision's ~3 digits.
    newest = run_half_precision(sys.executable, pretrained_folders, "float32", tmp_path / "modules-newest")
    for version, python in compat_pythons().items():
        out = run_half_precision(python, pretrained_folders, "bfloat16,float16", tmp_path / f"modules-{version}")
        assert out["transformers"] == version
        for folder in map(str, pretrained_folders):
            reference = newest[f"{folder}:float32"]
            for dtype in ("bfloat16", "float16"):
                served, where = out[f"{folder}:{dtype}"], (version, folder, dtype)
                assert served["weights"] == [f"torch.{dtype}"], where
                for key in ("lists", "pairs", "zero_shot"):
                    assert_close_scores(served[key], reference[key], (*where, key))
                assert_close_scores([served["text"]], [reference["text"]], (*where, "text"))


DISAGREEING = BLOCKER + textwrap.dedent(
    """
    import json, transformers
    from transformers import AutoModel
    out = {"transformers": transformers.__version__}
    for folder in sys.argv[1:]:
        try:
            AutoModel.from_pretrained(folder, trust_remote_code=True)
            out[folder] = None
        except ValueError as error:
            out[folder] = str(error)
    print(json.dumps(out))
    """
)


@pytest.mark.slow
def test_weights_that_disagree_with_the_config_are_refused_on_every_release(folders, tmp_path):
    # The Hub file's check (the one polyhead.saving also runs before publishing) reads every release's loading
    # info: a task without weights, and a head of another size (transformers 4.x reports only its keys), without
    # the caller passing ignore_mismatched_sizes (the Hub file does, so that the check sees the mismatch).
    edits = {
        "new-task": lambda tasks: tasks.append({"name": "new", "labels": ["a", "b"]}),
        "resized": lambda tasks: tasks[1].update(labels=["a", "b"]),
    }
    edited = []
    for name, edit in edits.items():
        folder = tmp_path / name
        folder.mkdir()
        for path in folders[0].iterdir():
            if path.is_file():
                (folder / path.name).write_bytes(path.read_bytes())
        config = json.loads((folder / "config.json").read_text())
        edit(config["tasks"])
        (folder / "config.json").write_text(json.dumps(config))
        edited.append(str(folder))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    for version, python in {"newest": Path(sys.executable), **compat_pythons()}.items():
        env.update(HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(tmp_path / f"modules-{version}"))
        done = subprocess.run(
            [str(python), "-c", DISAGREEING, *edited],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        assert done.returncode == 0, f"{python}: {done.stderr[-3000:]}"
        out = json.loads(done.stdout.splitlines()[-1])
        new_task, resized = out[edited[0]], out[edited[1]]
        assert new_task.startswith("config.json and the weights disagree: no weights for ['heads.new.bias'"), version
        assert "weights of the wrong shape for ['heads.topic.bias" in resized, (version, resized)


MODEL_CALLS = BLOCKER + textwrap.dedent(
    """
    import json, torch, transformers
    from safetensors.torch import load_file
    from transformers import AutoModel, AutoTokenizer, pipeline
    folder, electra, texts = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    out = {"transformers": transformers.__version__}
    tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
    batch = tokenizer(texts, padding=True, return_tensors="pt")

    # Hidden states and attention weights when asked (eager attention for the weights), tuples when asked.
    model = AutoModel.from_pretrained(folder, trust_remote_code=True, attn_implementation="eager").eval()
    with torch.no_grad():
        full = model(**batch, output_hidden_states=True, output_attentions=True)
        plain = model(**batch, return_dict=False)
    out["keys"] = list(full.keys())
    out["hidden_states"] = [value.tolist() for value in full.hidden_states]
    out["attentions"] = [value.tolist() for value in full.attentions]
    out["tuple"] = [type(value).__name__ for value in plain]
    options = {"return_dict": False, "output_hidden_states": True}  # in the config
    configured = AutoModel.from_pretrained(folder, trust_remote_code=True, **options).eval()
    with torch.no_grad():
        out["config_tuple"] = [type(value).__name__ for value in configured(**batch)]
    sdpa = AutoModel.from_pretrained(folder, trust_remote_code=True)
    try:
        sdpa(**batch, output_attentions=True)
    except ValueError as error:
        out["sdpa_attentions"] = str(error)

    # Loading keeps every saved weight (the model's weight-init hook leaves them and the encoder alone) ...
    saved = load_file(f"{folder}/model.safetensors")
    out["loaded_as_saved"] = all(torch.equal(sdpa.state_dict()[key], value) for key, value in saved.items())
    # ... and a new head starts the same way on every release.
    torch.manual_seed(0)
    sdpa.add_task("extra", [f"label{i}" for i in range(40)])
    out["new_head"] = [sdpa.heads["extra"].weight.tolist(), sdpa.heads["extra"].bias.tolist()]

    # Task embeddings on an encoder whose input embeddings are narrower than its hidden states (ELECTRA).
    classifier = pipeline("multitask-classification", model=electra, trust_remote_code=True)
    out["electra"] = classifier(texts, top_k=None, threshold=0.0)
    trained = AutoModel.from_pretrained(electra, trust_remote_code=True).train()
    single = [task for task, spec in trained.config.tasks.items() if spec["problem_type"].startswith("single")]
    labels = {task: torch.zeros(len(texts), dtype=torch.long) for task in single}
    torch.manual_seed(0)
    loss = trained(**tokenizer(texts, padding=True, return_tensors="pt"), labels=labels).loss
    loss.backward()
    gradients = [trained.task_embeddings[task].grad.abs().sum().item() for task in single]
    out["electra_loss"] = [loss.item(), min(gradients)]
    print(json.dumps(out))
    """
)


@pytest.fixture(scope="module")
def electra_folder(tmp_path_factory) -> Path:
    # Task embeddings over the tiny ELECTRA preset (input embeddings 16 wide, hidden states 32), trained-looking.
    torch.manual_seed(0)
    model = MultitaskModel(tiny_multitask_config("electra", task_embeddings=True)).eval()
    for vector in model.task_embeddings.values():
        torch.nn.init.normal_(vector, std=1.0)
    return save_model_folder(model, tiny_tokenizer(), tmp_path_factory.mktemp("electra") / "model")


@pytest.fixture(scope="module")
def model_calls(folders, electra_folder, tmp_path_factory) -> dict:
    """MODEL_CALLS' results on every release, the newest's under "newest"."""
    root = tmp_path_factory.mktemp("calls")
    found = {}
    for version, python in {"newest": Path(sys.executable), **compat_pythons()}.items():
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        env.update(HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(root / f"modules-{version}"))
        done = subprocess.run(
            [str(python), "-c", MODEL_CALLS, str(folders[0]), str(electra_folder), json.dumps(TEXTS)],
            cwd=root, env=env, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        assert done.returncode == 0, f"{python}: {done.stderr[-3000:]}"
        found[version] = json.loads(done.stdout.splitlines()[-1])
    return found


def _close(ours, theirs, where) -> None:
    torch.testing.assert_close(
        torch.tensor(ours), torch.tensor(theirs), rtol=0, atol=1e-5, msg=lambda m: f"{where}: {m}"
    )


@pytest.mark.slow
def test_hidden_states_attentions_and_tuples_on_every_release(model_calls):
    # As transformers' models: the encoder's hidden states and attention weights when asked, a tuple when
    # return_dict is False (per call or in the config), the same on every release; attention weights need eager
    # attention, and asking an sdpa encoder for them is refused alike everywhere (transformers 5 returns none).
    newest = model_calls["newest"]
    assert newest["keys"] == ["logits", "pooled_output", "hidden_states", "attentions"]
    assert len(newest["hidden_states"]) == 3 and len(newest["attentions"]) == 2  # embeddings + 2 layers
    assert newest["tuple"] == ["dict", "Tensor"] and newest["config_tuple"] == ["dict", "Tensor", "tuple"]
    assert 'load the model with attn_implementation="eager"' in newest["sdpa_attentions"]
    for version, out in model_calls.items():
        for key in ("keys", "tuple", "config_tuple", "sdpa_attentions"):
            assert out[key] == newest[key], (version, key)
        for key in ("hidden_states", "attentions"):
            for ours, theirs in zip(out[key], newest[key], strict=True):
                _close(ours, theirs, (version, key))


@pytest.mark.slow
def test_a_new_head_starts_alike_on_every_release_and_loading_keeps_the_weights(model_calls):
    # normal(0, the encoder's initializer_range 0.02) weights and zero bias: transformers 4.51's default weight-init
    # hook did nothing (PyTorch's uniform init, std ~0.1, random bias), 5.x's drew normal(0, 0.02).
    weight, bias = map(torch.tensor, model_calls["newest"]["new_head"])
    assert weight.shape == (40, 32) and 0.018 < weight.std().item() < 0.022 and not bias.any()
    for version, out in model_calls.items():
        assert out["loaded_as_saved"], version
        assert torch.equal(torch.tensor(out["new_head"][0]), weight) and not torch.tensor(out["new_head"][1]).any()


@pytest.mark.slow
def test_task_embeddings_on_an_electra_encoder_on_every_release(model_calls):
    # ELECTRA adds the task vectors to 16-wide input embeddings (hidden states are 32 wide): every release trains
    # (gradients reach the vectors) and answers through the pipeline as the newest does.
    newest = model_calls["newest"]
    for version, out in model_calls.items():
        loss, gradient = out["electra_loss"]
        assert loss > 0 and gradient > 0, version
        for row, expected in zip(out["electra"], newest["electra"], strict=True):
            for task, answer in expected.items():
                assert [i["label"] for i in row[task]] == [i["label"] for i in answer], (version, task)
                _close([i["score"] for i in row[task]], [i["score"] for i in answer], (version, task))
