"""Duration-bucketed batch sampler.

Utterances of similar length are packed together so that little of each batch is
padding, and every batch is capped by *padded* audio seconds
(`len(batch) * longest utterance in it <= max_batch_seconds`), which is what
memory actually scales with. An utterance longer than the cap gets a batch of
its own rather than being dropped.

The batch list of an epoch is a pure function of (seed, epoch, rank), so
  * two runs with the same seed see the same batches, and
  * a resumed run calls `set_epoch(e, start_batch=k)` and yields exactly the
    batches the uninterrupted run would have yielded from batch k on.
With `sortagrad`, epoch 0 runs from shortest to longest batch (SortaGrad,
Amodei et al. 2016), which gets CTC off its all-blank plateau sooner.
Under DDP each rank takes every `world_size`-th batch; the list is trimmed so
all ranks get the same number of batches.

With `groups` (epoch -> groups of utterance indices, e.g. asr.data.augment's
join_groups), the batch items are those tuples, each packed by its joined
duration (the utterances' durations plus `gap_seconds` per join), so batches of
long joined examples respect the same cap.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


class DurationBatchSampler:
    """Yields lists of dataset indices (tuples of them with `groups`). `len()` is the number of
    batches left this epoch."""

    def __init__(
        self,
        durations: list[float],
        max_batch_seconds: float,
        seed: int = 0,
        shuffle: bool = True,
        sortagrad: bool = False,
        rank: int = 0,
        world_size: int = 1,
        groups: Callable[[int], list[tuple[int, ...]]] | None = None,
        gap_seconds: float = 0.0,
    ):
        if max_batch_seconds <= 0:
            raise ValueError("max_batch_seconds must be positive")
        self.durations = np.asarray(durations, dtype=np.float64)
        self.max_batch_seconds = max_batch_seconds
        self.seed = seed
        self.shuffle = shuffle
        self.sortagrad = sortagrad
        self.rank = rank
        self.world_size = world_size
        self.groups = groups
        self.gap_seconds = gap_seconds
        self.epoch = 0
        self.start_batch = 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Select the epoch's batch order and skip its first `start_batch` batches (resume)."""
        self.epoch = epoch
        self.start_batch = start_batch

    def batches(self, epoch: int) -> list[list[int]]:
        """All of this rank's batches for `epoch`, in order."""
        rng = np.random.default_rng([self.seed, epoch])
        items, durations = self._items(epoch)
        if self.shuffle:
            # Jitter durations by up to +-5% so the packing differs between epochs.
            keys = durations * rng.uniform(0.95, 1.05, size=len(durations))
        else:
            keys = durations
        order = np.argsort(keys, kind="stable")
        batches = [[items[i] for i in batch] for batch in self._pack(order, durations)]
        if self.shuffle and not (self.sortagrad and epoch == 0):
            batches = [batches[i] for i in rng.permutation(len(batches))]
        per_rank = len(batches) // self.world_size if self.world_size > 1 else len(batches)
        return batches[self.rank : per_rank * self.world_size : self.world_size]

    def _items(self, epoch: int) -> tuple[list, np.ndarray]:
        """The epoch's batch items (indices, or groups of them) and their durations."""
        if self.groups is None:
            return list(range(len(self.durations))), self.durations
        groups = self.groups(epoch)
        seconds = [joined_seconds(self.durations, g, self.gap_seconds) for g in groups]
        return groups, np.asarray(seconds, dtype=np.float64)

    def _pack(self, order: np.ndarray, durations: np.ndarray) -> list[list[int]]:
        """Positions in `durations`, in `order`, cut into batches under the padded-seconds cap."""
        batches, current, longest = [], [], 0.0
        for index in order.tolist():
            duration = durations[index]
            widest = max(longest, duration)
            if current and widest * (len(current) + 1) > self.max_batch_seconds:
                batches.append(current)
                current, widest = [], duration
            current.append(index)
            longest = widest
        if current:
            batches.append(current)
        return batches

    def __iter__(self):
        yield from self.batches(self.epoch)[self.start_batch :]

    def __len__(self) -> int:
        return max(0, len(self.batches(self.epoch)) - self.start_batch)


def joined_seconds(durations, group: tuple[int, ...], gap_seconds: float) -> float:
    """The duration of the utterances `group` (indices into `durations`) joined into one example
    with `gap_seconds` between them: the sampler budgets it, the augmenter caps it."""
    return float(sum(durations[i] for i in group)) + gap_seconds * (len(group) - 1)
