r"""Balancing the tasks in one training run: adaptive loss weights and per-task head learning rates.

Both are Trainer-side: nothing here is part of the saved (Hub) model, whose forward and weights stay the same.

- `loss_balancing="uncertainty"` ([`UncertaintyWeighting`], Kendall, Gal & Cipolla 2018, "Multi-Task Learning Using
  Uncertainty to Weigh Losses"): a learnable log-variance `s_t` per task; a batch of task `t` with loss `L_t`
  (already times its fixed `loss_weight`) trains on `exp(-s_t) * L_t + s_t`. The gradient on `s_t` is
  `1 - exp(-s_t) L_t`, so `exp(-s_t)` settles near `1 / L_t`: a task whose loss stays high (noisy, hard) is weighed
  down, one whose loss is small is weighed up. Batches hold one task each, so over a step the objective is this
  weighted sum in expectation over the sampler. Trade-off: it equalises loss scales, not metrics; the `s_t` learn at
  `balancing_learning_rate` (no weight decay), are saved in each checkpoint (`loss_balancing.pt`) and logged as
  `loss_weight_<task>` (the current `exp(-s_t)`) in the log history.
- `head_learning_rate` / a task spec's `head_learning_rate` ([`split_head_learning_rates`]): the heads get their own
  learning rates (the encoder keeps `learning_rate`); the schedule scales every group alike. A small task's head can
  then converge within the few steps it gets without raising the encoder's rate for every task. Tasks that share a
  head (`--share_heads_by_labels`) must ask for the same rate ([`rates_by_head`]).

Example:

```python
>>> balancer = UncertaintyWeighting(["a", "b"])
>>> balancer("a", torch.tensor(2.0))  # s_a = 0: exp(0) * 2 + 0
tensor(2., grad_fn=<AddBackward0>)
```
"""

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch
from torch import nn


BALANCING_SCHEMES = ("none", "uncertainty")
BALANCING_FILE = "loss_balancing.pt"  # in each Trainer checkpoint, next to optimizer.pt
HEAD_PREFIX = "heads."  # the heads' parameter names: heads.<task>.weight / .bias (MultitaskModel.heads)


class UncertaintyWeighting(nn.Module):
    r"""
    Learnable per-task log-variances `s_t` (initialised at 0, i.e. weight 1): `forward(task, loss)` returns
    `exp(-s_t) * loss + s_t`.

    Args:
        tasks (`Iterable[str]`): the task names, in a fixed order (the order of the saved state).
    """

    def __init__(self, tasks: Iterable[str]):
        super().__init__()
        self.tasks = list(tasks)
        self.index = {task: i for i, task in enumerate(self.tasks)}
        self.log_variances = nn.Parameter(torch.zeros(len(self.tasks)))

    def forward(self, task: str, loss: torch.Tensor) -> torch.Tensor:
        s = self.log_variances[self.index[task]]
        return torch.exp(-s) * loss + s

    def weights(self) -> dict[str, float]:
        """`{task: exp(-s_t)}`, the current weight of each task's loss."""
        return {task: float(torch.exp(-s)) for task, s in zip(self.tasks, self.log_variances.detach())}

    def save(self, folder: str | os.PathLike) -> None:
        torch.save(
            {"tasks": self.tasks, "log_variances": self.log_variances.detach().cpu()}, Path(folder) / BALANCING_FILE
        )

    def load(self, folder: str | os.PathLike) -> bool:
        """Loads the log-variances saved in `folder` (a checkpoint); `False` when it holds none. Raises a `ValueError`
        when they were saved for other tasks."""
        path = Path(folder) / BALANCING_FILE
        if not path.is_file():
            return False
        state = torch.load(path, map_location="cpu", weights_only=True)
        if state["tasks"] != self.tasks:
            raise ValueError(f"{path} holds log-variances of tasks {state['tasks']}, this run trains {self.tasks}.")
        with torch.no_grad():
            self.log_variances.copy_(state["log_variances"].to(self.log_variances.device))
        return True


def make_balancer(scheme: str, tasks: Iterable[str]) -> UncertaintyWeighting | None:
    """The loss balancer of `scheme` (one of [`BALANCING_SCHEMES`]), or `None` for `"none"`."""
    if scheme == "none":
        return None
    if scheme == "uncertainty":
        return UncertaintyWeighting(tasks)
    raise ValueError(f"Unknown loss_balancing {scheme!r}: choose one of {', '.join(BALANCING_SCHEMES)}.")


def head_learning_rates(
    tasks: Iterable[str], default: float | None, overrides: Mapping[str, float | None] | None = None
) -> dict[str, float]:
    """`{task: head learning rate}` for the tasks whose head has its own rate (a task's override wins over
    `default`); empty when every head follows the run's `learning_rate`."""
    overrides = overrides or {}
    rates = {task: overrides.get(task) if overrides.get(task) is not None else default for task in tasks}
    return {task: float(rate) for task, rate in rates.items() if rate is not None}


def rates_by_head(rates: Mapping[str, float], tasks: Iterable[str], head_of) -> dict[str, float]:
    """`{head: rate}` from `head_learning_rates`' `{task: rate}`: a head that several of `tasks` share
    (`config.shared_heads`, `head_of` = `config.head_of`) takes their common rate; tasks sharing a head with
    different rates (a task without one follows `learning_rate`) are refused."""
    by_head: dict[str, dict[str, float | None]] = {}
    for task in tasks:
        by_head.setdefault(head_of(task), {})[task] = rates.get(task)
    heads = {}
    for head, members in by_head.items():
        if len(set(members.values())) > 1:
            asked = ", ".join(
                f"{task}: {rate if rate is not None else 'learning_rate'}" for task, rate in members.items()
            )
            raise ValueError(
                f"Tasks {list(members)} share one head ({head!r}, --share_heads_by_labels) but ask for different head "
                f"learning rates ({asked}): one head trains at one rate, so give them the same head_learning_rate."
            )
        rate = next(iter(members.values()))
        if rate is not None:
            heads[head] = rate
    return heads


def split_head_learning_rates(
    optimizer: torch.optim.Optimizer, model: nn.Module, rates: Mapping[str, float]
) -> torch.optim.Optimizer:
    r"""
    Splits the param groups of a freshly built `optimizer` (no state yet) so that the parameters of head
    `heads.<name>.` get `rates[name]` as their learning rate (head names: `rates_by_head`); every other setting of
    their group (weight decay...) is kept, and parameters of other heads and of the encoder keep their group's rate.
    Returns `optimizer`.
    """
    if not rates:
        return optimizer
    task_of = {}
    for name, param in model.named_parameters():
        if name.startswith(HEAD_PREFIX):
            task = name[len(HEAD_PREFIX) :].rsplit(".", 1)[0]
            if task in rates:
                task_of[id(param)] = task
    groups = list(optimizer.param_groups)
    optimizer.param_groups.clear()
    for group in groups:
        settings = {key: value for key, value in group.items() if key != "params"}
        by_rate: dict[float | None, list] = {}
        for param in group["params"]:
            task = task_of.get(id(param))
            by_rate.setdefault(rates[task] if task is not None else None, []).append(param)
        for rate, params in by_rate.items():
            new_settings = dict(settings) if rate is None else {**settings, "lr": rate}
            if rate is not None and "initial_lr" in new_settings:
                new_settings["initial_lr"] = rate
            optimizer.add_param_group({**new_settings, "params": params})
    return optimizer


__all__ = [
    "BALANCING_FILE",
    "BALANCING_SCHEMES",
    "UncertaintyWeighting",
    "head_learning_rates",
    "make_balancer",
    "rates_by_head",
    "split_head_learning_rates",
]
