"""Two CPU processes with `torchrun` on the tiny preset: one model folder, written once by rank 0, half the optimizer
steps of one process, and a resumed run that ends on the same weights as an uninterrupted one."""

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from polyhead.testing_utils import WORDS


ROOT = Path(__file__).resolve().parents[1]
TORCHRUN = Path(sys.executable).with_name("torchrun")
LIMIT_S = 600  # a bound on each run, far above its seconds on 2 cores; nothing below depends on speed


def _write_task(folder: Path, labels: list[str], n_train: int, seed: int) -> None:
    # The label word is in the text: learnable by the tiny random encoder.
    rng = random.Random(seed)
    folder.mkdir(parents=True)
    for split, n in (("train", n_train), ("validation", 16), ("test", 16)):
        rows = []
        for _ in range(n):
            label = rng.choice(labels)
            rows.append({"text": " ".join([label, *rng.sample(WORDS, 4)]), "label": label})
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


def _train(launcher: list[str], tmp_path: Path, name: str, *flags: str) -> tuple[Path, str]:
    # 64 + 32 train rows, batch 8: 12 single-task batches an epoch, 2 epochs.
    output = tmp_path / name
    command = [
        *launcher,
        str(ROOT / "scripts" / "train.py"),
        str(ROOT / "configs" / "tiny.yaml"),
        "--tasks",
        f"sentiment={tmp_path / 'data' / 'sentiment'}",
        f"topic={tmp_path / 'data' / 'topic'}",
        "--output_dir",
        str(output),
        "--per_device_train_batch_size",
        "8",
        "--save_total_limit",
        "2",
        "--disable_tqdm",
        "true",
        *flags,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=LIMIT_S)
    assert done.returncode == 0, done.stderr[-4000:]
    return output, done.stdout


def _final_step(model_dir: Path) -> int:
    return json.loads((model_dir / "training_args.json").read_text())["log_history"][-1]["step"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    if not TORCHRUN.is_file():
        pytest.skip(f"{TORCHRUN} is absent")
    tmp_path = tmp_path_factory.mktemp("ddp")
    _write_task(tmp_path / "data" / "sentiment", ["good", "bad"], 64, 0)
    _write_task(tmp_path / "data" / "topic", ["sport", "tech", "money"], 32, 1)
    # --standalone: a free rendezvous port, so parallel test runs on one machine do not collide.
    two = [str(TORCHRUN), "--standalone", "--nproc_per_node", "2"]
    one_dir, _ = _train([sys.executable], tmp_path, "one")
    two_dir, two_stdout = _train(two, tmp_path, "two")
    resumed_dir, _ = _train(two, tmp_path, "resumed", "--resume_from_checkpoint", str(two_dir / "checkpoint-6"))
    return {"one": one_dir, "two": two_dir, "two_stdout": two_stdout, "resumed": resumed_dir}


@pytest.mark.slow
def test_two_processes_write_one_loadable_model_folder(runs):
    from transformers import AutoModel

    two = runs["two"]
    assert sorted(p.name for p in two.iterdir()) == ["checkpoint-12", "checkpoint-6", "model"]  # no .tmp leftovers
    model = AutoModel.from_pretrained(two / "model", trust_remote_code=True)
    assert model.config.task_names == ["sentiment", "topic"]
    results = json.loads((two / "model" / "results.json").read_text())
    assert results["num_examples"] == {"sentiment": 16, "topic": 16}
    assert runs["two_stdout"].count('"average"') == 1  # only rank 0 scored the model and printed its results


@pytest.mark.slow
def test_two_processes_take_half_the_optimizer_steps(runs):
    assert _final_step(runs["one"] / "model") == 24  # 12 batches an epoch, 2 epochs
    assert _final_step(runs["two"] / "model") == 12  # each rank takes every other batch
    training = json.loads((runs["two"] / "model" / "training_args.json").read_text())["training"]
    assert training["ddp_backend"] == "gloo" and training["use_cpu"] is True


@pytest.mark.slow
def test_resumed_two_process_run_ends_on_the_same_weights(runs):
    assert _final_step(runs["resumed"] / "model") == 12
    expected = load_file(runs["two"] / "model" / "model.safetensors")
    resumed = load_file(runs["resumed"] / "model" / "model.safetensors")
    assert expected.keys() == resumed.keys()
    for key, value in expected.items():
        torch.testing.assert_close(resumed[key], value, rtol=1e-5, atol=1e-6)
