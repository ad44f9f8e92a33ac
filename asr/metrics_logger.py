"""What a training run reports: exp_dir/metrics.jsonl, TensorBoard scalars and plain progress lines.

    logger = MetricsLogger(exp_dir, is_main=dist.is_main)
    logger.add_step(loss, grad_norm, audio_seconds)        # after each optimizer step
    logger.log_window(step, epoch, lr, dist, device)      # every log_every steps: means over the window
    logger.log({"step": 30, "epoch": 1, "dev_wer": 0.41, "dev_cer": 0.2}); logger.echo("a line")

metrics.jsonl holds one JSON line per logged window, dev evaluation and kept epoch checkpoint;
a window's line carries `cpu_s`, the CPU seconds the run has used since it began, across resumes
(this process and its data-loading workers: what runs compared at equal compute are compared on);
`lines` counts them, and last.pt saves the count so that a resume drops the lines written
after it (`resume`). On a terminal train.py shows a progress bar; otherwise (output to a log
file) each window is also printed as one plain line. Only rank 0 writes or prints; on the
other ranks every method but the collective `log_window` reduction does nothing.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from asr.atomic import atomic_write
from asr.distributed import Distributed


@dataclass
class LogWindow:
    """Sums over the steps since the last log line; the line holds their means."""

    steps: int = 0
    loss: float = 0.0
    grad_norm: float = 0.0
    audio_seconds: float = 0.0  # of training audio
    start: float = field(default_factory=time.perf_counter)  # time outside training is added back: `pause`


class MetricsLogger:
    """metrics.jsonl, TensorBoard and progress lines of the run in `exp_dir` (see the module docstring)."""

    def __init__(self, exp_dir: Path, is_main: bool):
        self.path = Path(exp_dir) / "metrics.jsonl"
        self.is_main = is_main
        self.plain = not sys.stderr.isatty()  # a log file gets lines, a terminal a progress bar
        self.lines = 0  # in metrics.jsonl, saved in last.pt
        self.window = LogWindow()
        self.started = time.perf_counter()
        self.cpu_before = 0.0  # CPU seconds of the run before this process (its last logged cpu_s)
        self.cpu_started = cpu_seconds()
        self.tensorboard = None  # a SummaryWriter once `open_tensorboard` found tensorboard installed

    def start_new(self) -> None:
        """A new run (no last.pt): a new log."""
        if self.is_main:
            self.path.unlink(missing_ok=True)

    def resume(self, keep: int) -> None:
        """Keep the first `keep` lines, those of the run up to the checkpoint resumed from; the
        lines after it will be written again."""
        if not self.is_main:
            return
        lines = self.path.read_text(encoding="utf-8").splitlines()[:keep] if self.path.exists() else []
        with atomic_write(self.path) as f:
            f.writelines(line + "\n" for line in lines)
        self.lines = len(lines)
        self.cpu_before = next((json.loads(line)["cpu_s"] for line in reversed(lines) if '"cpu_s"' in line), 0.0)

    def open_tensorboard(self, step: int) -> None:
        """Write TensorBoard scalars to exp_dir/tensorboard, if tensorboard is installed. After a
        resume at `step`, TensorBoard hides the events of the steps that are done again."""
        if not self.is_main:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # the optional extra `asr[tensorboard]` is not installed
            return
        self.tensorboard = SummaryWriter(self.path.parent / "tensorboard", purge_step=step + 1)

    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()

    def log(self, record: dict) -> None:
        """Append `record` to metrics.jsonl and its numbers to TensorBoard."""
        if not self.is_main:
            return
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        self.lines += 1
        if self.tensorboard is not None:
            for key, value in record.items():
                if key not in ("step", "epoch", "elapsed_s") and isinstance(value, (int, float)):
                    tag = f"dev/{key.removeprefix('dev_')}" if key.startswith("dev_") else f"train/{key}"
                    self.tensorboard.add_scalar(tag, value, record["step"])

    def echo(self, message: str) -> None:
        """Print a line to stdout, above the progress bar if there is one; flushed, for log files."""
        if self.is_main:
            tqdm.write(message, file=sys.stdout)
            sys.stdout.flush()

    def add_step(self, loss: float, grad_norm: float, audio_seconds: float) -> None:
        window = self.window
        window.steps += 1
        window.loss += loss
        window.grad_norm += grad_norm
        window.audio_seconds += audio_seconds

    def pause(self, seconds: float) -> None:
        """Leave `seconds` (a dev evaluation) out of the audio seconds trained per second."""
        self.window.start += seconds

    def log_window(self, step: int, epoch: int, lr: float, dist: Distributed, device: torch.device) -> None:
        """Log the means of the steps since the last line (over all ranks: a collective call) and
        start a new window."""
        window = self.window
        loss, grad_norm, audio = dist.sum([window.loss, window.grad_norm, window.audio_seconds], device)
        steps = window.steps * dist.world_size
        if not steps:  # every step of the window was skipped (non-finite), and logged as such
            self.window = LogWindow()
            return
        speed = audio / (time.perf_counter() - window.start)
        elapsed = time.perf_counter() - self.started
        cpu = self.cpu_before + cpu_seconds() - self.cpu_started
        self.log({"step": step, "epoch": epoch, "lr": lr, "loss": round(loss / steps, 4),
                  "grad_norm": round(grad_norm / steps, 3), "audio_sec_per_sec": round(speed, 2),
                  "elapsed_s": round(elapsed, 1), "cpu_s": round(cpu, 1)})
        if self.plain:
            self.echo(f"step {step}  epoch {epoch}  loss {loss / steps:.3f}  lr {lr:.2e}  "
                      f"{speed:.1f} audio-s/s  elapsed {_clock(elapsed)}")
        self.window = LogWindow()


def cpu_seconds() -> float:
    """CPU seconds (user + system) used so far by this process and its child processes: the finished
    ones (reaped: an epoch's DataLoader workers) and, on Linux, the live ones (read from /proc)."""
    finished = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = time.process_time() + finished.ru_utime + finished.ru_stime
    pid = os.getpid()
    try:
        children = open(f"/proc/{pid}/task/{pid}/children").read().split()
    except OSError:  # not Linux, or a kernel without the children file: live workers are not counted
        return total
    ticks = os.sysconf("SC_CLK_TCK")
    for child in children:
        try:
            fields = open(f"/proc/{child}/stat").read().rsplit(")", 1)[1].split()
        except OSError:  # it ended meanwhile (and is counted once reaped)
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime (fields 14 and 15 of stat)
    return total


def _clock(seconds: float) -> str:
    """H:MM:SS"""
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}"
