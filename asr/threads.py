"""How many threads torch's math may use in this process (`torch.set_num_threads`).

    set_threads(None)                  # the default below; `asr train` / `evaluate` / `transcribe`
    set_threads(2, "--train.threads")  # what a flag asked for; < 1 is a ConfigError naming the flag

The default is half the cores this process may run on (at least 1, at most what torch
would take: OMP_NUM_THREADS, or torchrun's 1 per process, still win). The BiLSTM's
matrices are small, so extra threads gain little, while a thread that has to share its
core makes every parallel region wait for it: on a machine that others (or this run's
own DataLoader workers) also use, fewer threads are faster. benchmarks/train_step.py
measures both, with and without a competing process (table in benchmarks/README.md).
"""

from __future__ import annotations

import os

import torch

from asr.config import ConfigError


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask, not the machine's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def default_threads() -> int:
    """Half the usable cores, at least 1, at most torch's own default."""
    return max(1, min(torch.get_num_threads(), usable_cores() // 2))


def set_threads(threads: int | None, flag: str = "--threads") -> int:
    """Set torch's intra-op threads to `threads` (None: `default_threads()`). Returns the number set."""
    if threads is None:
        threads = default_threads()
    elif threads < 1:
        raise ConfigError(f"{flag} must be at least 1, got {threads}")
    torch.set_num_threads(threads)
    return threads
