"""PCGrad and uncertainty weighting in two CPU processes (`torchrun`, gloo): the per-task buffers and the loss
balancer's gradients are reduced across processes by hand (the backward passes run under `no_sync`)."""

import json
import sys

import pytest
from test_distributed import TORCHRUN, _train, _write_task


@pytest.mark.slow
def test_two_processes_train_with_pcgrad_and_uncertainty_weighting(tmp_path):
    if not TORCHRUN.is_file():
        pytest.skip(f"{TORCHRUN} is absent")
    _write_task(tmp_path / "data" / "sentiment", ["good", "bad"], 64, 0)
    _write_task(tmp_path / "data" / "topic", ["sport", "tech", "money"], 32, 1)
    flags = ("--pcgrad", "true", "--loss_balancing", "uncertainty", "--sampling", "round_robin")
    flags += (
        "--gradient_accumulation_steps",
        "2",
        "--save_strategy",
        "no",
        "--eval_strategy",
        "no",
        "--logging_steps",
        "1",
    )
    two = [str(TORCHRUN), "--standalone", "--nproc_per_node", "2"]
    output, _ = _train(two, tmp_path, "two", *flags)
    one, _ = _train([sys.executable], tmp_path, "one", *flags)
    history = json.loads((output / "model" / "training_args.json").read_text())["log_history"]
    logged = [entry for entry in history if "pcgrad_conflicts" in entry]
    assert logged and all("loss_weight_topic" in entry for entry in logged)
    # 12 single-task batches an epoch over 2 epochs, 2 per step: 12 steps in one process, 6 in two
    steps = [
        json.loads((d / "model" / "training_args.json").read_text())["log_history"][-1]["step"] for d in (one, output)
    ]
    assert steps == [12, 6]
