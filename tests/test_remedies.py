"""The remedies for a task that loses in multitask training, each against a hand computation on tiny tensors, and
wired into MultitaskTrainer: uncertainty loss weighting, per-task head learning rates, PCGrad."""

import dataclasses
import math

import pytest
import torch
from helpers import tiny_task_specs, training_args
from torch import nn

from polyhead.tasks import TaskSpec
from polyhead.testing_utils import tiny_tokenizer
from polyhead.training import pcgrad as pcgrad_module
from polyhead.training.arguments import DataArguments, ModelArguments, MultitaskTrainingArguments
from polyhead.training.balancing import (
    BALANCING_FILE,
    UncertaintyWeighting,
    head_learning_rates,
    split_head_learning_rates,
)
from polyhead.training.pcgrad import PCGradAccumulator, count_conflicts, project_conflicting
from polyhead.training.trainer import make_trainer, prepare_tasks


# --- uncertainty weighting -------------------------------------------------------------------------------------


def test_uncertainty_weighting_loss_and_gradients_by_hand():
    balancer = UncertaintyWeighting(["a", "b"])
    with torch.no_grad():
        balancer.log_variances.copy_(torch.tensor([0.5, -1.0]))
    loss_a = torch.tensor(2.0, requires_grad=True)
    total = balancer("a", loss_a)
    assert float(total.detach()) == pytest.approx(math.exp(-0.5) * 2.0 + 0.5)
    total.backward()
    # d/ds (e^-s L + s) = 1 - e^-s L; d/dL = e^-s; task b untouched
    assert balancer.log_variances.grad.tolist() == pytest.approx([1 - math.exp(-0.5) * 2.0, 0.0])
    assert float(loss_a.grad) == pytest.approx(math.exp(-0.5))
    assert balancer.weights() == pytest.approx({"a": math.exp(-0.5), "b": math.exp(1.0)})


def test_uncertainty_weighting_saves_and_loads(tmp_path):
    balancer = UncertaintyWeighting(["a", "b"])
    with torch.no_grad():
        balancer.log_variances.copy_(torch.tensor([0.25, 0.75]))
    balancer.save(tmp_path)
    fresh = UncertaintyWeighting(["a", "b"])
    assert fresh.load(tmp_path) and fresh.log_variances.tolist() == [0.25, 0.75]
    assert not UncertaintyWeighting(["a", "b"]).load(tmp_path / "nothing")
    with pytest.raises(ValueError, match="tasks"):
        UncertaintyWeighting(["a", "c"]).load(tmp_path)


def _trainer(tmp_path, specs=None, data_args=None, **kwargs):
    tokenizer = tiny_tokenizer()
    prepared = prepare_tasks(ModelArguments(), DataArguments(tasks=specs or tiny_task_specs(24)), tokenizer)
    return make_trainer(
        prepared, tokenizer, ModelArguments(), data_args or DataArguments(), training_args(tmp_path, **kwargs)
    )


def test_uncertainty_weighting_in_the_trainer_learns_logs_and_resumes(tmp_path):
    trainer = _trainer(
        tmp_path, loss_balancing="uncertainty", balancing_learning_rate=0.1, save_strategy="steps", save_steps=3
    )
    trainer.train()
    weights = trainer.balancer.weights()
    assert set(weights) == {"sentiment", "topic", "emotions"} and all(w != 1.0 for w in weights.values())
    logged = [entry for entry in trainer.state.log_history if "loss_weight_topic" in entry]
    assert logged and "loss_weight_sentiment" in logged[-1]
    # the balancer's parameters are in the optimizer, at their own rate and without weight decay
    group = next(
        g for g in trainer.optimizer.param_groups if any(p is trainer.balancer.log_variances for p in g["params"])
    )
    assert group["weight_decay"] == 0.0
    # every checkpoint holds the log-variances; resuming restores them before training on
    checkpoint = tmp_path / "run" / "checkpoint-3"
    assert (checkpoint / BALANCING_FILE).is_file()
    saved = torch.load(checkpoint / BALANCING_FILE, weights_only=True)["log_variances"]
    resumed = _trainer(tmp_path, loss_balancing="uncertainty", balancing_learning_rate=0.1)
    resumed.create_optimizer_and_scheduler(num_training_steps=10)
    resumed._load_optimizer_and_scheduler(str(checkpoint))
    torch.testing.assert_close(resumed.balancer.log_variances.detach(), saved)
    # the saved model has no trace of it
    assert not any("log_variances" in key for key in trainer.model.state_dict())


def _clipped_step_gradient(tmp_path, loss_weight=1.0, log_variance=None, max_grad_norm=1e-3):
    """The gradient that reaches the optimizer (after clipping) at the first step on the topic task alone."""
    (topic,) = [
        dataclasses.replace(spec, loss_weight=loss_weight) for spec in tiny_task_specs(24) if spec.name == "topic"
    ]
    options = {"max_steps": 1, "optim": "sgd", "learning_rate": 1.0, "lr_scheduler_type": "constant"}
    if log_variance is not None:
        options["loss_balancing"] = "uncertainty"
    trainer = _trainer(tmp_path, specs=[topic], max_grad_norm=max_grad_norm, **options)
    if log_variance is not None:
        trainer.balancer.log_variances.data.fill_(log_variance)
    captured = []
    trainer.create_optimizer()
    step = trainer.optimizer.step

    def capture(*args, **kwargs):
        captured.append(torch.cat([p.grad.reshape(-1) for p in trainer.model.parameters() if p.grad is not None]))
        return step(*args, **kwargs)

    trainer.optimizer.step = capture
    trainer.train()
    assert trainer.state.log_history[0]["grad_norm"] > 10 * max_grad_norm * max(loss_weight, 1.0)  # it was clipped
    return captured[0]


def test_a_loss_weight_survives_gradient_clipping(tmp_path):
    # A step holds one task; clipping sets the gradient's norm whatever the loss was multiplied by. The clipping
    # threshold scales with the step's loss weight: weight 2 gives exactly twice weight 1's clipped gradient (it gave
    # the same one before), and so does the uncertainty balancer's weight exp(-s) = 2.
    plain = _clipped_step_gradient(tmp_path / "w1")
    weighted = _clipped_step_gradient(tmp_path / "w2", loss_weight=2.0)
    torch.testing.assert_close(plain.norm(), torch.tensor(1e-3), rtol=1e-4, atol=0)  # max_grad_norm
    torch.testing.assert_close(weighted, 2 * plain, rtol=1e-4, atol=1e-10)
    balanced = _clipped_step_gradient(tmp_path / "s", log_variance=-math.log(2.0))
    torch.testing.assert_close(balanced, weighted, rtol=1e-4, atol=1e-10)


def test_clip_scale_is_the_mean_weight_of_the_steps_batches(tmp_path):
    trainer = _trainer(tmp_path, max_steps=1)
    assert trainer._step_clip_scale() == 1.0  # no weights: Trainer's clipping unchanged
    trainer.loss_weights = {"topic": 3.0}
    trainer._step_tasks = ["sentiment", "topic", "topic", "sentiment"]  # 4 accumulated batches, two of them topic's
    assert trainer._step_clip_scale() == 2.0 and trainer._step_tasks == []  # reset for the next step
    trainer._step_tasks = [None, "topic"]  # a distillation joint batch counts as weight 1
    assert trainer._step_clip_scale() == 2.0


def test_loss_balancing_is_checked():
    with pytest.raises(ValueError, match="loss_balancing"):
        MultitaskTrainingArguments(output_dir="x", loss_balancing="gradnorm")
    with pytest.raises(ValueError, match="head_learning_rate"):
        MultitaskTrainingArguments(output_dir="x", head_learning_rate=0.0)


# --- per-task head learning rates ------------------------------------------------------------------------------


def test_head_learning_rates_by_task():
    assert head_learning_rates(["a", "b"], None, {}) == {}
    assert head_learning_rates(["a", "b"], 1e-3, {"b": 5e-2}) == {"a": 1e-3, "b": 5e-2}
    assert head_learning_rates(["a", "b"], None, {"b": 5e-2, "a": None}) == {"b": 5e-2}


def test_split_head_learning_rates_on_a_tiny_model():
    model = nn.Module()
    model.encoder = nn.Linear(2, 2)
    model.heads = nn.ModuleDict({"a": nn.Linear(2, 1), "b": nn.Linear(2, 1)})
    optimizer = torch.optim.AdamW(
        [{"params": [model.encoder.weight, model.heads["a"].weight, model.heads["b"].weight], "weight_decay": 0.1},
         {"params": [model.encoder.bias, model.heads["a"].bias, model.heads["b"].bias], "weight_decay": 0.0}],
        lr=1e-4,
    )  # fmt: skip
    split_head_learning_rates(optimizer, model, {"a": 1e-2})

    def group_of(param):
        return next(g for g in optimizer.param_groups if any(p is param for p in g["params"]))

    assert group_of(model.heads["a"].weight)["lr"] == 1e-2 and group_of(model.heads["a"].weight)["weight_decay"] == 0.1
    assert group_of(model.heads["a"].bias)["lr"] == 1e-2 and group_of(model.heads["a"].bias)["weight_decay"] == 0.0
    assert group_of(model.heads["b"].weight)["lr"] == 1e-4 and group_of(model.encoder.weight)["lr"] == 1e-4
    assert sum(len(g["params"]) for g in optimizer.param_groups) == 6
    # one SGD-like check of the arithmetic: a plain SGD step moves a head by its own rate times its gradient
    sgd = torch.optim.SGD([{"params": list(model.parameters())}], lr=0.1)
    split_head_learning_rates(sgd, model, {"b": 0.5})
    before = model.heads["b"].bias.detach().clone()
    model.heads["b"].bias.grad = torch.tensor([2.0])
    model.encoder.bias.grad = torch.zeros(2)
    sgd.step()
    torch.testing.assert_close(model.heads["b"].bias.detach(), before - 0.5 * 2.0)


def test_head_learning_rates_in_the_trainer_with_a_task_override(tmp_path):
    specs = tiny_task_specs(24)
    specs[1] = TaskSpec("topic", dataset=specs[1].dataset, head_learning_rate=5e-2)
    trainer = _trainer(
        tmp_path, specs=specs, head_learning_rate=1e-2, learning_rate=1e-3, lr_scheduler_type="constant"
    )
    trainer.train()
    rates = {}
    for name, param in trainer.model.named_parameters():
        group = next(g for g in trainer.optimizer.param_groups if any(p is param for p in g["params"]))
        rates[name] = group["lr"]
    assert rates["heads.topic.weight"] == 5e-2 and rates["heads.sentiment.weight"] == 1e-2
    assert rates["heads.emotions.bias"] == 1e-2
    assert {rate for name, rate in rates.items() if not name.startswith("heads.")} == {1e-3}


def test_task_spec_head_learning_rate_short_form(tmp_path):
    from polyhead.tasks import parse_task

    (tmp_path / "train.jsonl").write_text('{"text": "a", "label": "x"}\n')
    spec = parse_task(f"t={tmp_path}:head_learning_rate=0.01")
    assert spec.head_learning_rate == 0.01
    with pytest.raises(ValueError, match="head_learning_rate"):
        TaskSpec("t", data_files="x.csv", head_learning_rate=-1)


# --- PCGrad ----------------------------------------------------------------------------------------------------


def test_pcgrad_projection_by_hand():
    # g1 . g2 = -1 < 0: g1' = g1 - (-1 / 2) g2 = (0.5, 0.5); g2' = g2 - (-1 / 1) g1 = (0, 1); sum (0.5, 1.5)
    torch.testing.assert_close(project_conflicting(torch.tensor([[1.0, 0.0], [-1.0, 1.0]])), torch.tensor([0.5, 1.5]))
    # no conflict: the plain sum
    torch.testing.assert_close(project_conflicting(torch.tensor([[1.0, 0.0], [1.0, 1.0]])), torch.tensor([2.0, 1.0]))
    # a task without a batch in the step (zeros) changes nothing
    grads = torch.tensor([[1.0, 0.0], [-1.0, 1.0], [0.0, 0.0]])
    torch.testing.assert_close(project_conflicting(grads), torch.tensor([0.5, 1.5]))
    # three tasks, one conflicting pair (g1, g3): g1' = g1 - (-2 / 4) g3 = (1, 2, 0) + 0.5 (0, -2, 0)... by hand:
    g = torch.tensor([[1.0, 2.0, 0.0], [0.0, 0.0, 3.0], [0.0, -2.0, 0.0]])
    # g1.g2 = 0, g1.g3 = -4 -> g1' = g1 - (-4/4) g3 = (1, 0, 0); g2 untouched; g3.g1 = -4 -> g3' = g3 + (4/5) g1
    expected = torch.tensor([1.0, 0.0, 0.0]) + g[1] + (g[2] + 0.8 * g[0])
    torch.testing.assert_close(project_conflicting(g), expected)
    assert count_conflicts(g) == 1


class _TinyMultitask(nn.Module):
    def __init__(self):
        super().__init__()
        self.shared = nn.Linear(2, 2, bias=False)
        self.heads = nn.ModuleDict({"a": nn.Linear(2, 1, bias=False), "b": nn.Linear(2, 1, bias=False)})


def test_pcgrad_accumulator_collects_per_task_and_writes_the_projected_sum():
    model = _TinyMultitask()
    with torch.no_grad():  # shared gradients h x^T: task a (1, 2, 0, 0), task b (-1, 0, 0.5, 0), conflicting
        model.shared.weight.copy_(torch.eye(2))
        model.heads["a"].weight.copy_(torch.tensor([[1.0, 0.0]]))
        model.heads["b"].weight.copy_(torch.tensor([[-1.0, 0.5]]))
    x = {"a": torch.tensor([[1.0, 2.0]]), "b": torch.tensor([[1.0, 0.0]])}

    def loss(task):
        return model.heads[task](model.shared(x[task])).sum()

    # per-task gradients of the shared weight, by separate backward passes
    expected_rows = []
    for task in ("a", "b"):
        model.zero_grad()
        loss(task).backward()
        expected_rows.append(model.shared.weight.grad.reshape(-1).clone())
    expected = project_conflicting(torch.stack(expected_rows))
    model.zero_grad()
    accumulator = PCGradAccumulator(model, ["a", "b"])
    for task in ("a", "b"):  # two micro-batches of one step
        loss(task).backward()
        accumulator.collect(task)
        assert model.shared.weight.grad is None  # moved to the task's row
    head_a = model.heads["a"].weight.grad.clone()
    accumulator.apply()
    torch.testing.assert_close(model.shared.weight.grad.reshape(-1), expected)
    torch.testing.assert_close(model.heads["a"].weight.grad, head_a)  # heads keep their own gradient
    torch.testing.assert_close(torch.stack(expected_rows), torch.tensor([[1.0, 2.0, 0.0, 0.0], [-1.0, 0.0, 0.5, 0.0]]))
    # by hand: a' = a - (-1 / 1.25) b = (0.2, 2, 0.4, 0); b' = b - (-1 / 5) a = (-0.8, 0.4, 0.5, 0)
    torch.testing.assert_close(model.shared.weight.grad.reshape(-1), torch.tensor([-0.6, 2.4, 0.9, 0.0]))
    assert accumulator.buffer.abs().sum() == 0  # cleared for the next step


def test_pcgrad_in_the_trainer_collects_each_task_and_equals_plain_training_when_summed(tmp_path, monkeypatch):
    # round robin over 3 tasks with 3 accumulated batches: every step sees every task once. The buffer rows summed are
    # the plain accumulated gradient (same seed, same batches), and what reaches the optimizer is their projection.
    seen = []
    real = pcgrad_module.project_conflicting

    def recording(grads, generator=None):
        combined = real(grads, generator)
        seen.append((grads.clone(), combined.clone()))
        return combined

    monkeypatch.setattr(pcgrad_module, "project_conflicting", recording)
    options = {"gradient_accumulation_steps": 3, "max_steps": 1, "learning_rate": 1e-3, "max_grad_norm": 0.0}
    sampling = DataArguments(sampling="round_robin")

    def first_step_grads(trainer):
        # the gradients that reach the optimizer at the first step (after PCGrad; no clipping)
        captured = {}
        trainer.create_optimizer()
        original = trainer.optimizer.step

        def capture(*args, **kwargs):
            captured.update({n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None})
            return original(*args, **kwargs)

        trainer.optimizer.step = capture
        trainer.train()
        return captured

    # each trainer built (seeded) right before it trains, so both draw the same dropout masks
    with_pcgrad = _trainer(tmp_path / "p", data_args=sampling, pcgrad=True, **options)
    grads_pcgrad = first_step_grads(with_pcgrad)
    grads_plain = first_step_grads(_trainer(tmp_path / "q", data_args=sampling, **options))
    ((rows, combined),) = seen
    assert rows.shape[0] == 3 and bool((rows.abs().sum(dim=1) > 0).all())  # one row per task, all filled
    shared = [(n, p) for n, p in with_pcgrad.model.named_parameters() if not n.startswith("heads.")]
    flat_plain = torch.cat([grads_plain.get(n, torch.zeros_like(p)).reshape(-1) for n, p in shared])
    torch.testing.assert_close(rows.sum(dim=0), flat_plain, rtol=1e-4, atol=1e-6)
    flat_pcgrad = torch.cat([grads_pcgrad[n].reshape(-1) for n, _ in shared])
    torch.testing.assert_close(flat_pcgrad, combined)
    for head in ("heads.topic.weight", "heads.sentiment.bias"):
        torch.testing.assert_close(grads_pcgrad[head], grads_plain[head], rtol=1e-4, atol=1e-6)
