"""Helpers shared by the benchmark scripts: default paths, the machine line, timing, peak memory.

Every benchmark prints `machine: ...` first, so a figure copied into README.md
carries the hardware and software it was measured on.
"""

from __future__ import annotations

import datetime
import os
import platform
import resource
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RECIPE = ROOT / "recipes" / "speechocean762"
DEV_MANIFEST = RECIPE / "data" / "dev.jsonl"
TRAIN_MANIFEST = RECIPE / "data" / "train.jsonl"
MODEL = RECIPE / "exp" / "small" / "best.pt"  # the recipe's model; a clean checkout has the bundled one


def default_model() -> Path:
    """The speechocean762 recipe's best.pt if it has been trained here, else the bundled model."""
    from asr.pretrained import default_model_path

    return MODEL if MODEL.exists() else default_model_path()


def machine_line() -> str:
    import torch

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor() or "unknown CPU")
    load = os.getloadavg()[0]  # other work on the machine slows every figure; say how much there was
    return (f"machine: {cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, torch {torch.__version__}, "
            f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, load average {load:.1f}")


def best_time(fn, repeat: int = 3) -> float:
    """Fastest of `repeat` wall-clock runs of fn() in seconds (the least disturbed one)."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
