r"""PCGrad (Yu et al. 2020, "Gradient Surgery for Multi-Task Learning") on the shared encoder, inside the Trainer.

Our batches hold one task each, so the tasks of one optimizer step are the tasks of its accumulated batches
(`gradient_accumulation_steps`, over every process). [`PCGradAccumulator`] keeps, per task, the sum of its batches'
gradients on the shared (non-head) parameters instead of letting them add up in `.grad`:

1. after each micro-batch's backward pass (`collect(task)`), the shared parameters' gradients move into that task's
   row of a `(tasks, shared parameters)` buffer; the heads' gradients stay in `.grad` (a head only ever gets its own
   task's gradient, so it has nothing to conflict with);
2. at the last micro-batch of the step (`apply()`, before Trainer clips and steps), with several processes the
   buffer and the heads' gradients are summed over processes (one `all_reduce` each, divided by the number of
   processes, as DDP averages) -- the backward passes ran under `no_sync`, so DDP reduced nothing itself;
3. [`project_conflicting`]: each task's gradient `g_i`, for every other task `j` in a random order (seeded), loses
   its component along `g_j` when `g_i . g_j < 0`: `g_i <- g_i - (g_i . g_j / |g_j|^2) g_j`; the projected
   gradients are summed into the shared parameters' `.grad`.

Without conflicts this is exactly the plain summed gradient. A step that saw one task changes nothing, so PCGrad
needs `gradient_accumulation_steps` >= the number of tasks (`sampling round_robin` puts every task in every step).
Trade-off: one gradient copy of the encoder per task in memory, a `(tasks x tasks)` set of dot products per step,
and fewer optimizer steps per epoch for the same batch size.

Example:

```python
>>> project_conflicting(torch.tensor([[1.0, 0.0], [-1.0, 1.0]]))
tensor([0.5000, 1.5000])
```
"""

from collections.abc import Iterable

import torch
import torch.distributed as dist
from torch import nn

from polyhead.training.balancing import HEAD_PREFIX


def project_conflicting(grads: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    r"""
    The PCGrad combination of per-task gradients `grads` (shape `(tasks, n)`): each row projected off every other
    row it conflicts with (negative dot product), in a random order of the others, then summed over tasks. Rows of
    zeros (tasks without a batch in the step) neither change nor are changed.
    """
    projected = grads.clone()
    tasks = grads.shape[0]
    squared_norms = (grads * grads).sum(dim=1)
    for i in range(tasks):
        for j in torch.randperm(tasks, generator=generator).tolist():
            if j == i or squared_norms[j] == 0:
                continue
            dot = torch.dot(projected[i], grads[j])
            if dot < 0:
                projected[i] -= (dot / squared_norms[j]) * grads[j]
    return projected.sum(dim=0)


class PCGradAccumulator:
    r"""
    Per-task gradient buffers of `model`'s shared parameters (every trainable parameter not under `heads.`) and the
    PCGrad step (see the module docstring).

    Args:
        model (`nn.Module`): the (unwrapped) multitask model.
        tasks (`Iterable[str]`): the trained tasks.
        seed (`int`): seeds the random order of the projections.
    """

    def __init__(self, model: nn.Module, tasks: Iterable[str], seed: int = 0):
        named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
        self.shared = [p for name, p in named if not name.startswith(HEAD_PREFIX)]
        self.heads = [p for name, p in named if name.startswith(HEAD_PREFIX)]
        self.tasks = {task: i for i, task in enumerate(tasks)}
        self.buffer: torch.Tensor | None = None
        self.generator = torch.Generator().manual_seed(seed)
        self.conflicts = 0  # task pairs found conflicting since the last `pop_conflicts`

    def collect(self, task: str) -> None:
        """Moves the shared parameters' gradients (this micro-batch's: the previous ones were moved already) into
        `task`'s row."""
        if self.buffer is None:
            size = sum(p.numel() for p in self.shared)
            device = self.shared[0].device if self.shared else "cpu"
            self.buffer = torch.zeros(len(self.tasks), size, device=device)
        row, offset = self.buffer[self.tasks[task]], 0
        for p in self.shared:
            n = p.numel()
            if p.grad is not None:
                row[offset : offset + n] += p.grad.reshape(-1).to(row.dtype)
                p.grad = None
            offset += n

    def apply(self, world_size: int = 1) -> None:
        """Sums the buffers (and the heads' gradients) over processes, writes the PCGrad combination into the shared
        parameters' `.grad` and clears the buffers."""
        if self.buffer is None:
            return
        if world_size > 1:
            dist.all_reduce(self.buffer)
            self.buffer /= world_size
            average_gradients(self.heads, world_size)
        active = self.buffer[self.buffer.abs().sum(dim=1) > 0]
        self.conflicts += count_conflicts(active)
        combined = project_conflicting(active, self.generator) if len(active) else torch.zeros_like(self.buffer[0])
        offset = 0
        for p in self.shared:
            n = p.numel()
            p.grad = combined[offset : offset + n].view_as(p).to(p.dtype).clone()
            offset += n
        self.buffer.zero_()

    def pop_conflicts(self) -> int:
        conflicts, self.conflicts = self.conflicts, 0
        return conflicts


def count_conflicts(grads: torch.Tensor) -> int:
    """How many pairs of rows of `grads` have a negative dot product."""
    if len(grads) < 2:
        return 0
    dots = grads @ grads.T
    return int((torch.triu(dots, diagonal=1) < 0).sum())


def average_gradients(params: Iterable[nn.Parameter], world_size: int) -> None:
    """Averages `.grad` of `params` over the processes in one `all_reduce` (a missing gradient counts as zeros, so
    every process reduces the same tensor)."""
    params = list(params)
    if not params:
        return
    flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params])
    dist.all_reduce(flat)
    flat /= world_size
    offset = 0
    for p in params:
        n = p.numel()
        p.grad = flat[offset : offset + n].view_as(p).clone()
        offset += n


__all__ = ["PCGradAccumulator", "average_gradients", "count_conflicts", "project_conflicting"]
