"""asr.threads: the default thread count and the check of a requested one."""

from __future__ import annotations

import os

import pytest
import torch

from asr.config import ConfigError
from asr.threads import default_threads, set_threads


@pytest.mark.parametrize("cores, torch_default, expected", [
    (2, 2, 1),    # our development machine: one core left for the DataLoader worker and the neighbours
    (8, 8, 4),
    (16, 8, 8),   # torch's own default (physical cores, OMP_NUM_THREADS) is the ceiling
    (8, 1, 1),    # OMP_NUM_THREADS=1, or torchrun's one thread per process
    (1, 1, 1),
])
def test_default_is_half_the_usable_cores_within_torchs_default(monkeypatch, cores, torch_default, expected):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cores)))
    monkeypatch.setattr(torch, "get_num_threads", lambda: torch_default)
    assert default_threads() == expected


def test_set_threads_sets_torch_and_refuses_less_than_one():
    before = torch.get_num_threads()
    try:
        assert set_threads(2) == 2 and torch.get_num_threads() == 2
        for bad in (0, -3):
            with pytest.raises(ConfigError, match=f"--train.threads must be at least 1, got {bad}"):
                set_threads(bad, "--train.threads")
        assert torch.get_num_threads() == 2  # a refused value changes nothing
    finally:
        torch.set_num_threads(before)
