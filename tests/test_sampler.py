"""asr.data.sampler: padded-duration cap, coverage, determinism, resume position, DDP split."""

from __future__ import annotations

import numpy as np
import pytest

from asr.data.sampler import DurationBatchSampler

MAX_SECONDS = 20.0


@pytest.fixture(scope="module")
def durations() -> list[float]:
    rng = np.random.default_rng(0)
    return [*rng.uniform(0.5, 12.0, size=300).round(3).tolist(), 25.0, 31.5]  # two longer than the cap


def _flat(batches):
    return [i for batch in batches for i in batch]


@pytest.mark.parametrize("sortagrad", [False, True])
def test_padded_duration_cap_and_full_coverage(durations, sortagrad):
    sampler = DurationBatchSampler(durations, MAX_SECONDS, seed=3, sortagrad=sortagrad)
    for epoch in range(4):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert sorted(_flat(batches)) == list(range(len(durations))), "each utterance exactly once"
        for batch in batches:
            padded = len(batch) * max(durations[i] for i in batch)
            assert padded <= MAX_SECONDS or len(batch) == 1, batch
        # Over-long utterances get a batch of their own instead of being dropped.
        assert [300] in batches and [301] in batches
        assert len(sampler) == len(batches)


def test_batches_group_similar_durations(durations):
    """Bucketing is the point: a shuffled split would pad far more."""
    sampler = DurationBatchSampler(durations, MAX_SECONDS, seed=0)
    batches = sampler.batches(0)
    padded = sum(len(b) * max(durations[i] for i in b) for b in batches)
    assert padded < 1.15 * sum(durations)


def test_same_seed_and_epoch_give_the_same_batches(durations):
    a = DurationBatchSampler(durations, MAX_SECONDS, seed=5)
    b = DurationBatchSampler(durations, MAX_SECONDS, seed=5)
    for epoch in range(3):
        a.set_epoch(epoch)
        b.set_epoch(epoch)
        assert list(a) == list(b)


def test_epochs_and_seeds_differ(durations):
    sampler = DurationBatchSampler(durations, MAX_SECONDS, seed=5)
    epochs = [sampler.batches(e) for e in range(4)]
    assert all(epochs[i] != epochs[j] for i in range(4) for j in range(i + 1, 4))
    assert DurationBatchSampler(durations, MAX_SECONDS, seed=6).batches(0) != epochs[0]


def test_sortagrad_epoch_zero_runs_from_short_to_long(durations):
    sampler = DurationBatchSampler(durations, MAX_SECONDS, seed=1, sortagrad=True)
    longest = [max(durations[i] for i in batch) for batch in sampler.batches(0)]
    # Sorted by durations jittered by +-5%, so only near-ties may come out of order.
    assert all(a <= b * 1.05 / 0.95 for i, a in enumerate(longest) for b in longest[i + 1:])
    later = [max(durations[i] for i in batch) for batch in sampler.batches(1)]
    assert later != sorted(later)


def test_no_shuffle_is_sorted_and_epoch_independent(durations):
    sampler = DurationBatchSampler(durations, MAX_SECONDS, shuffle=False)
    assert sampler.batches(0) == sampler.batches(7)
    order = _flat(sampler.batches(0))
    assert [durations[i] for i in order] == sorted(durations)


@pytest.mark.parametrize("start_batch", [0, 1, 17, "last", "end"])
def test_resume_yields_exactly_the_remaining_batches(durations, start_batch):
    full = DurationBatchSampler(durations, MAX_SECONDS, seed=11)
    full.set_epoch(2)
    uninterrupted = list(full)
    k = {"last": len(uninterrupted) - 1, "end": len(uninterrupted)}.get(start_batch, start_batch)
    resumed = DurationBatchSampler(durations, MAX_SECONDS, seed=11)  # a fresh process after a kill
    resumed.set_epoch(2, start_batch=k)
    assert len(resumed) == len(uninterrupted) - k
    assert list(resumed) == uninterrupted[k:]
    resumed.set_epoch(3)  # the next epoch starts from its beginning again
    full.set_epoch(3)
    assert list(resumed) == list(full)


@pytest.mark.parametrize("world_size", [2, 3, 4])
def test_ddp_ranks_are_disjoint_and_equal_length(durations, world_size):
    single = DurationBatchSampler(durations, MAX_SECONDS, seed=2)
    for epoch in range(2):
        ranks = [DurationBatchSampler(durations, MAX_SECONDS, seed=2, rank=r, world_size=world_size)
                 for r in range(world_size)]
        for r in ranks:
            r.set_epoch(epoch)
        per_rank = [list(r) for r in ranks]
        assert len({len(b) for b in per_rank}) == 1, "ranks must run the same number of steps"
        assert len(per_rank[0]) == len(single.batches(epoch)) // world_size
        seen = [_flat(b) for b in per_rank]
        assert sum(len(s) for s in seen) == len(set().union(*map(set, seen))), "an utterance on two ranks"
        # Only the trimmed tail (fewer than world_size batches) is missing.
        missing = set(range(len(durations))) - set().union(*map(set, seen))
        tail = single.batches(epoch)[len(per_rank[0]) * world_size:]
        assert missing == set(_flat(tail))


def test_rejects_a_non_positive_cap():
    with pytest.raises(ValueError):
        DurationBatchSampler([1.0], 0)
