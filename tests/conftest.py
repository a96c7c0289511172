import os


# Tests never reach a Hub: everything is built locally (set before transformers is imported).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402

from polyhead import MultitaskModel  # noqa: E402
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
