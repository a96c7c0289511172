"""Single-task batches over the concatenation of every task's train set.

[`TaskBatchSampler`] yields lists of global indices into `torch.utils.data.ConcatDataset(task_train_sets)` such that
each batch holds rows of one task only. How tasks are interleaved is a named strategy:

- `"proportional"`: every task's shuffled rows are cut into batches and the batches are shuffled together, so each
  row is seen exactly once per epoch and tasks appear in proportion to their size. Faithful to the data mix, but a
  small task gets few updates next to a large one.
- `"temperature"`: each batch picks task `i` with probability `p_i ∝ n_i ** (1 / temperature)` (equivalently
  `n_i ** alpha` with `alpha = 1 / temperature`, as in XLM-R / mT5 sampling). `temperature=1` is proportional in
  expectation; larger values flatten towards uniform, giving small tasks more updates (and more repetitions: a task
  that runs out of rows is reshuffled and restarted, it never ends the epoch or crashes it).
- `"round_robin"`: tasks take turns in a fixed order (`a, b, c, a, b, c...`), every task the same number of updates;
  small tasks restart when they run out, so they are repeated the most. Best when all tasks matter equally.

An epoch has the same length under every strategy, `sum_i ceil(n_i / batch_size)` batches (one pass over the data in
expectation), so strategies and single-task baselines compare at equal compute. Iteration is a pure function of
`(seed, epoch)`: after `set_epoch(e)` the sampler yields the same batches every time, which is what makes Trainer's
resume (it re-creates the epoch and skips the batches already seen) land on exactly the same data.

In a multi-process run (`torchrun`, `accelerate launch`) every process builds the same epoch and keeps every
`num_replicas`-th batch starting at its `rank`, so the processes split the epoch's batches between them and each row
is seen once per epoch overall. Every process must run the same number of steps (DDP averages gradients at each one):
when the batch count does not divide evenly, the processes short of a batch repeat one from the start of the epoch
(at most `num_replicas - 1` repeated batches an epoch, as `torch.utils.data.DistributedSampler` pads).

With `lengths` (`--train_sampling_strategy group_by_length`) each pass over a task groups rows of similar length into
its batches, as transformers' `LengthGroupedSampler` does within one dataset (`get_length_grouped_indices`: shuffled,
cut into mega-batches of up to 50 batches, each sorted by length), so a batch pads less; which tasks come when is
unchanged.
"""

import math
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Sampler
from transformers.trainer_pt_utils import get_length_grouped_indices


STRATEGIES = ("proportional", "temperature", "round_robin")


class TaskBatchSampler(Sampler[list[int]]):
    r"""
    Batch sampler yielding single-task batches of global indices (task `i` owns indices
    `offsets[i] .. offsets[i] + sizes[i] - 1`, the layout of `ConcatDataset`).

    Args:
        task_sizes (`Sequence[int]`): number of train rows of each task, in concatenation order.
        batch_size (`int`): rows per batch (a task's last batch of a pass may be smaller).
        strategy (`str`, defaults to `"proportional"`): one of `STRATEGIES` (see the module docstring).
        temperature (`float`, defaults to 2.0): the `"temperature"` strategy's T (alpha = 1/T); ignored otherwise.
        seed (`int`, defaults to 0): base seed; batches depend only on `(seed, epoch)`.
        num_batches (`int`, *optional*): batches per epoch (all processes together); defaults to
            `sum(ceil(n_i / batch_size))`.
        num_replicas (`int`, defaults to 1), rank (`int`, defaults to 0): the number of training processes and this
            one's index; this process yields `ceil(num_batches / num_replicas)` batches, its share of the epoch.
        lengths (`Sequence[Sequence[int]]`, *optional*): each task's row lengths (tokens), in row order: batches then
            group rows of similar length (see the module docstring).

    Example:

    ```python
    >>> sampler = TaskBatchSampler([10, 4], batch_size=4, strategy="round_robin", seed=0)
    >>> len(sampler), [len(batch) for batch in sampler]
    (4, [4, 4, 4, 4])
    ```
    """

    def __init__(
        self,
        task_sizes: Sequence[int],
        batch_size: int,
        strategy: str = "proportional",
        temperature: float = 2.0,
        seed: int = 0,
        num_batches: int | None = None,
        num_replicas: int = 1,
        rank: int = 0,
        lengths: Sequence[Sequence[int]] | None = None,
    ):
        if strategy not in STRATEGIES:
            raise ValueError(f"Unknown sampling strategy {strategy!r}: choose one of {', '.join(STRATEGIES)}.")
        if not task_sizes or any(int(n) < 1 for n in task_sizes):
            raise ValueError(f"Every task needs at least one train row, got sizes {list(task_sizes)}.")
        if batch_size < 1 or temperature <= 0:
            raise ValueError(f"batch_size must be >= 1 and temperature > 0, got {batch_size} and {temperature}.")
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise ValueError(f"Need num_replicas >= 1 and 0 <= rank < num_replicas, got {num_replicas} and {rank}.")
        self.task_sizes = [int(n) for n in task_sizes]
        self.offsets = np.concatenate([[0], np.cumsum(self.task_sizes)[:-1]]).astype(int).tolist()
        self.batch_size = batch_size
        self.drop_last = False  # read by accelerate's BatchSamplerShard in multi-process runs
        self.strategy = strategy
        self.temperature = float(temperature)
        self.seed = seed
        self.epoch = 0
        self.num_batches = num_batches or self._one_pass_batches()
        self.num_replicas, self.rank = num_replicas, rank
        if lengths is not None and [len(task) for task in lengths] != self.task_sizes:
            raise ValueError(f"lengths must hold one length per row of each task ({self.task_sizes} rows).")
        self.lengths = None if lengths is None else [list(task) for task in lengths]

    def _one_pass_batches(self) -> int:
        return sum(math.ceil(n / self.batch_size) for n in self.task_sizes)

    def set_epoch(self, epoch: int) -> None:
        """Selects the epoch whose batches the next iteration yields (Trainer calls it every epoch)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return math.ceil(self.num_batches / self.num_replicas)

    def task_probabilities(self) -> np.ndarray:
        """Probability of each task per batch under the current strategy (expected share of batches)."""
        sizes = np.asarray(self.task_sizes, dtype=float)
        if self.strategy == "round_robin":
            return np.full(len(sizes), 1.0 / len(sizes))
        if self.strategy == "proportional":
            batches = np.ceil(sizes / self.batch_size)
            return batches / batches.sum()
        weights = sizes ** (1.0 / self.temperature)
        return weights / weights.sum()

    def task_of_batch(self, batch: list[int]) -> int:
        """The task index a batch of global indices belongs to."""
        return int(np.searchsorted(self.offsets, batch[0], side="right") - 1)

    def __iter__(self) -> Iterator[list[int]]:
        if self.num_replicas == 1:
            yield from self._epoch()
            return
        first = []  # the epoch's first batches, repeated by the processes short of a batch at the end
        for index, batch in enumerate(self._epoch()):
            if index < self.num_replicas:
                first.append(batch)
            if index % self.num_replicas == self.rank:
                yield batch
        if self.rank >= self.num_batches % self.num_replicas > 0:
            yield first[self.rank % len(first)]

    def _epoch(self) -> Iterator[list[int]]:
        """Every batch of the epoch, for all processes together."""
        rng = np.random.default_rng([self.seed, self.epoch])
        if self.strategy == "proportional" and self.num_batches == self._one_pass_batches():
            yield from self._proportional(rng)
            return
        streams = [self._task_stream(task) for task in range(len(self.task_sizes))]
        for task in self._task_order(rng):
            yield next(streams[task])

    def _proportional(self, rng: np.random.Generator) -> Iterator[list[int]]:
        batches = []
        for task in range(len(self.task_sizes)):
            rows = self._pass_order(task, rng) + self.offsets[task]
            batches += [rows[i : i + self.batch_size].tolist() for i in range(0, len(rows), self.batch_size)]
        for position in rng.permutation(len(batches)):
            yield batches[position]

    def _task_order(self, rng: np.random.Generator) -> list[int]:
        num_tasks = len(self.task_sizes)
        if self.strategy == "round_robin":
            return [step % num_tasks for step in range(self.num_batches)]
        return rng.choice(num_tasks, size=self.num_batches, p=self.task_probabilities()).tolist()

    def _task_stream(self, task: int) -> Iterator[list[int]]:
        # An endless stream of the task's batches: when the task runs out it is reshuffled and restarted, so a small
        # task never stops (or crashes) the epoch. Each task has its own generator, seeded by (seed, epoch, task), so
        # its rows do not depend on the order in which tasks are drawn.
        task_rng = np.random.default_rng([self.seed, self.epoch, task + 1])
        size, offset = self.task_sizes[task], self.offsets[task]
        while True:
            rows = self._pass_order(task, task_rng) + offset
            for start in range(0, size, self.batch_size):
                yield rows[start : start + self.batch_size].tolist()

    def _pass_order(self, task: int, rng: np.random.Generator) -> np.ndarray:
        """One pass over `task`'s rows (local indices): shuffled, or grouped by length when lengths are known."""
        if self.lengths is None:
            return rng.permutation(self.task_sizes[task])
        generator = torch.Generator().manual_seed(int(rng.integers(2**62)))  # still a function of (seed, epoch)
        return np.asarray(get_length_grouped_indices(self.lengths[task], self.batch_size, generator=generator))


__all__ = ["STRATEGIES", "TaskBatchSampler"]
