"""TaskBatchSampler: single-task batches, strategy ratios, exhaustion of small tasks, determinism."""

from collections import Counter

import numpy as np
import pytest

from polyhead.training.sampling import STRATEGIES, TaskBatchSampler


SIZES = [400, 100, 12]


def _tasks(sampler, batches):
    return [sampler.task_of_batch(batch) for batch in batches]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_single_task_batches_of_valid_indices(strategy):
    sampler = TaskBatchSampler(SIZES, batch_size=8, strategy=strategy, seed=1)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 50 + 13 + 2
    bounds = np.cumsum([0, *SIZES])
    for batch in batches:
        task = sampler.task_of_batch(batch)
        assert 1 <= len(batch) <= 8
        assert all(bounds[task] <= index < bounds[task + 1] for index in batch)


def test_proportional_sees_every_row_once():
    sampler = TaskBatchSampler(SIZES, batch_size=8, strategy="proportional")
    rows = [index for batch in sampler for index in batch]
    assert sorted(rows) == list(range(sum(SIZES)))


def test_proportional_ratios_follow_sizes():
    sampler = TaskBatchSampler([300, 100], batch_size=4, strategy="proportional")
    counts = Counter(_tasks(sampler, sampler))
    assert counts[0] / counts[1] == pytest.approx(3.0)


def test_temperature_limits():
    sizes = [1000, 10]
    proportional = TaskBatchSampler(sizes, 10, "temperature", temperature=1.0).task_probabilities()
    assert proportional == pytest.approx(np.array(sizes) / sum(sizes))
    near_uniform = TaskBatchSampler(sizes, 10, "temperature", temperature=1000.0).task_probabilities()
    assert near_uniform == pytest.approx([0.5, 0.5], abs=0.01)
    middle = TaskBatchSampler(sizes, 10, "temperature", temperature=2.0).task_probabilities()
    assert middle[1] == pytest.approx(1 / 11)  # sqrt(10) / (sqrt(1000) + sqrt(10))


def test_temperature_empirical_share():
    sampler = TaskBatchSampler([900, 100], batch_size=1, strategy="temperature", temperature=2.0, seed=0)
    counts = Counter(_tasks(sampler, sampler))
    assert counts[1] / len(sampler) == pytest.approx(0.25, abs=0.04)  # sqrt(100) / (sqrt(900) + sqrt(100))


def test_round_robin_order():
    sampler = TaskBatchSampler([40, 8, 4], batch_size=4, strategy="round_robin")
    assert len(sampler) == 10 + 2 + 1
    assert _tasks(sampler, sampler) == [0, 1, 2] * 4 + [0]


@pytest.mark.parametrize("strategy", ["temperature", "round_robin"])
def test_small_task_runs_out_and_restarts(strategy):
    sampler = TaskBatchSampler([1000, 3], batch_size=2, strategy=strategy, temperature=50.0, seed=0)
    small = [batch for batch in sampler if sampler.task_of_batch(batch) == 1]
    assert len(small) > 10  # far more than the task's 2 batches: reshuffled and restarted, no crash
    assert Counter(index for batch in small for index in batch).keys() == {1000, 1001, 1002}


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_deterministic_per_seed_and_epoch(strategy):
    sampler = TaskBatchSampler(SIZES, 8, strategy, seed=7)
    sampler.set_epoch(2)
    first = list(sampler)
    assert list(sampler) == first
    again = TaskBatchSampler(SIZES, 8, strategy, seed=7)
    again.set_epoch(2)
    assert list(again) == first
    again.set_epoch(3)
    assert list(again) != first
    assert list(TaskBatchSampler(SIZES, 8, strategy, seed=8)) != list(TaskBatchSampler(SIZES, 8, strategy, seed=7))


def test_fixed_number_of_batches_and_errors():
    assert len(list(TaskBatchSampler([5, 5], 2, "proportional", num_batches=11))) == 11
    with pytest.raises(ValueError, match="Unknown sampling strategy 'uniform'"):
        TaskBatchSampler([5], 2, "uniform")
    with pytest.raises(ValueError, match="at least one train row"):
        TaskBatchSampler([5, 0], 2)


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("num_replicas", [2, 3])
def test_ranks_split_the_epoch_between_them(strategy, num_replicas):
    # Every rank builds the same epoch and keeps every num_replicas-th batch: together they yield the one-process
    # epoch, plus at most num_replicas - 1 repeated batches so that every rank runs the same number of steps.
    whole = TaskBatchSampler(SIZES, 8, strategy, seed=3)
    whole.set_epoch(1)
    full = list(whole)
    shards = []
    for rank in range(num_replicas):
        sampler = TaskBatchSampler(SIZES, 8, strategy, seed=3, num_replicas=num_replicas, rank=rank)
        sampler.set_epoch(1)
        shards.append(list(sampler))
        assert len(shards[-1]) == len(sampler) == -(-len(full) // num_replicas)
    interleaved = [batch for step in zip(*shards) for batch in step]
    assert interleaved[: len(full)] == full
    assert all(batch in full[:num_replicas] for batch in interleaved[len(full) :])
    assert len(interleaved) - len(full) < num_replicas


def test_two_ranks_see_every_row_once_when_batches_divide_evenly():
    sizes = [32, 16]  # 4 + 2 batches of 8: 3 per rank, nothing repeated
    rows = [i for rank in (0, 1) for batch in TaskBatchSampler(sizes, 8, num_replicas=2, rank=rank) for i in batch]
    assert sorted(rows) == list(range(48))


def test_bad_rank_is_an_error():
    with pytest.raises(ValueError, match="0 <= rank < num_replicas"):
        TaskBatchSampler([5], 2, num_replicas=2, rank=2)


def _padding(batches, flat_lengths):
    return sum(
        max(flat_lengths[i] for i in batch) * len(batch) - sum(flat_lengths[i] for i in batch) for batch in batches
    )


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_grouping_by_length_pads_less_and_keeps_the_task_mix(strategy):
    rng = np.random.default_rng(0)
    lengths = [rng.integers(5, 200, size=n).tolist() for n in SIZES]
    flat = [n for task in lengths for n in task]
    plain = TaskBatchSampler(SIZES, 8, strategy, seed=3)
    grouped = TaskBatchSampler(SIZES, 8, strategy, seed=3, lengths=lengths)
    batches = list(grouped)
    assert len(batches) == len(plain)
    assert _padding(batches, flat) < 0.5 * _padding(list(plain), flat)
    if strategy == "proportional":  # every row once, each task's number of batches kept
        assert sorted(index for batch in batches for index in batch) == list(range(sum(SIZES)))
        assert Counter(_tasks(grouped, batches)) == Counter(_tasks(plain, list(plain)))
    else:  # the same task order, batch for batch
        assert _tasks(grouped, batches) == _tasks(plain, list(plain))
    again = TaskBatchSampler(SIZES, 8, strategy, seed=3, lengths=lengths)
    assert list(again) == batches  # a function of (seed, epoch), as without lengths (resume)
    again.set_epoch(1)
    assert list(again) != batches


def test_lengths_must_match_the_tasks_rows():
    with pytest.raises(ValueError, match=r"one length per row of each task \(\[3, 2\] rows\)"):
        TaskBatchSampler([3, 2], 2, lengths=[[1, 2, 3], [4]])
