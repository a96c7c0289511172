import json
import os


# Tests never reach a Hub: everything is built locally (set before transformers is imported).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402
from helpers import (
    RESULTS,
    TRAINING_ARGS,
    Hub,
)
from hub_server import serving  # noqa: E402

from polyhead import MultitaskModel  # noqa: E402
from polyhead.saving import save_model_folder  # noqa: E402
from polyhead.testing_utils import TINY_TASKS, tiny_multitask_config, tiny_tokenizer  # noqa: E402


SHARED_DATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")


@pytest.fixture
def tokenizer():
    return tiny_tokenizer()


@pytest.fixture
def tasks():
    return {name: dict(spec) for name, spec in TINY_TASKS.items()}


@pytest.fixture
def model():
    torch.manual_seed(0)
    return MultitaskModel(tiny_multitask_config()).eval()


@pytest.fixture
def batch(tokenizer):
    return tokenizer(["i love this movie", "the phone is bad and not good"], padding=True, return_tensors="pt")


@pytest.fixture
def shared_data_dir():
    path = os.path.abspath(SHARED_DATA)
    if not os.path.isdir(path):
        pytest.skip(f"real data folder {path} is absent")
    return path


# The local Hub-compatible server and a saved model folder with run files, shared by the publishing tests.
@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    with serving(tmp_path_factory.mktemp("hub")) as server:
        yield Hub(server, server.url)


@pytest.fixture(scope="module")
def local_model():
    torch.manual_seed(0)
    return MultitaskModel(tiny_multitask_config()).eval(), tiny_tokenizer()


@pytest.fixture(scope="module")
def model_folder(local_model, tmp_path_factory):
    def extra(folder):
        (folder / "results.json").write_text(json.dumps(RESULTS), encoding="utf-8")
        (folder / "training_args.json").write_text(json.dumps(TRAINING_ARGS), encoding="utf-8")
        (folder / "confusion_matrix_topic.png").write_bytes(b"\x89PNG\r\n\x1a\n")
        (folder / "baselines").mkdir()
        (folder / "baselines" / "results.json").write_text(json.dumps(RESULTS), encoding="utf-8")
        (folder / "checkpoint-1").mkdir()  # training leftovers are not published
        (folder / "checkpoint-1" / "model.safetensors").write_bytes(b"not uploaded")

    return save_model_folder(*local_model, tmp_path_factory.mktemp("models") / "model", extra=extra)
