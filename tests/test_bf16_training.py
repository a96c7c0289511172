"""bfloat16 mixed-precision training on CPU (`--bf16`, transformers' TrainingArguments): the Trainer runs the forward
under `torch.autocast("cpu", bfloat16)` (matmuls in bfloat16), keeps float32 master weights and saves float32; the
measured speed and accuracy are in docs/cpu-acceleration.md."""

import torch
from helpers import tiny_task_specs, training_args

from polyhead.testing_utils import tiny_tokenizer
from polyhead.training.arguments import DataArguments, ModelArguments, parse_args
from polyhead.training.trainer import make_trainer, prepare_tasks


def _trainer(tmp_path, **kwargs):
    tokenizer = tiny_tokenizer()
    prepared = prepare_tasks(ModelArguments(), DataArguments(tasks=tiny_task_specs()), tokenizer)
    args = training_args(tmp_path, use_cpu=True, **{"num_train_epochs": 2, **kwargs})
    return make_trainer(prepared, tokenizer, ModelArguments(), DataArguments(), args)


def test_bf16_trains_under_autocast_with_float32_weights(tmp_path):
    trainer = _trainer(tmp_path, bf16=True)
    seen = []  # the dtype each encoder Linear computes in, during training steps
    linear = next(m for m in trainer.model.encoder.modules() if isinstance(m, torch.nn.Linear))
    handle = linear.register_forward_hook(lambda module, inputs, output: seen.append(output.dtype))
    start = {name: p.detach().clone() for name, p in trainer.model.named_parameters()}
    try:
        trainer.train()
    finally:
        handle.remove()
    assert seen and set(seen) == {torch.bfloat16}
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())  # master weights stay float32
    moved = [name for name, p in trainer.model.named_parameters() if not torch.equal(p, start[name])]
    assert len(moved) > len(start) // 2  # the steps updated the weights
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert losses and all(torch.isfinite(torch.tensor(losses)))


def test_without_bf16_training_runs_in_float32(tmp_path):
    trainer = _trainer(tmp_path, num_train_epochs=1)
    seen = []
    linear = next(m for m in trainer.model.encoder.modules() if isinstance(m, torch.nn.Linear))
    linear.register_forward_hook(lambda module, inputs, output: seen.append(output.dtype))
    trainer.train()
    assert set(seen) == {torch.float32}


def test_the_command_line_takes_bf16():
    _, _, args = parse_args(["--tasks", "a=x.csv", "--output_dir", "out", "--bf16", "--use_cpu"])
    assert args.bf16 and args.use_cpu


def test_bf16_on_a_cpu_where_it_is_slower_warns(tmp_path, monkeypatch, caplog):
    from polyhead.training import trainer

    args = training_args(tmp_path, bf16=True, use_cpu=True)
    for faster, warned in ((False, True), (True, False)):
        monkeypatch.setattr(trainer, "faster_bf16", lambda faster=faster: faster)
        caplog.clear()
        with caplog.at_level("WARNING", logger="polyhead.training.trainer"):
            trainer.warn_slow_bf16(args)
        assert ("--bf16 on this CPU" in caplog.text) is warned
