"""Pause and resume tiny `asr train` runs many times (SIGSTOP, then SIGCONT, to the run's process
group, DataLoader worker included: what `pkill -STOP -f "asr train"` does to free the cores for a
benchmark), then stop each with SIGINT, and report any run that did not end cleanly (glibc's heap
messages, a crash, a traceback). `--no-pause` runs the same trials untouched: the control. Not
collected by pytest (a manual experiment: minutes); docs/training.md has what it found.

    python tests/pause_loop.py --out /tmp/pauses --manifest M.jsonl [--runs 6] [--seconds 60] [--no-pause]

Run i uses the room-impulse bank when i is odd; each pause lasts 0.01-0.5 s, 0.05-1.5 s apart,
from 8 s after the start (past the imports) until --seconds. One line per run: pauses, exit
status, the unclean words found in its output (stop_loop.UNCLEAN), and its output's tail if any.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from stop_loop import UNCLEAN, write_config


def trial(out: Path, manifest: str, index: int, seconds: float, pause: bool) -> tuple[int, int | None, str]:
    """One run: (pauses made, exit status, its output)."""
    config = write_config(out, manifest, reverb=index % 2 == 1)
    command = [sys.executable, "-m", "asr", "train", "--config", str(config), "--exp-dir", str(out / f"exp{index}"),
               "--train.num-workers", "1"]
    log = out / f"run{index}.log"  # a file, not a pipe: a full pipe would block the run
    with log.open("w") as sink:
        proc = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, "OMP_NUM_THREADS": "1"},
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    end, pauses = time.time() + seconds, 0
    time.sleep(8)
    while time.time() < end and proc.poll() is None:
        time.sleep(random.uniform(0.05, 1.5))
        if pause:
            os.killpg(proc.pid, signal.SIGSTOP)
            time.sleep(random.uniform(0.01, 0.5))
            os.killpg(proc.pid, signal.SIGCONT)
            pauses += 1
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    return pauses, proc.wait(timeout=120), log.read_text(errors="replace")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--manifest", required=True, help="training utterances (any real speech manifest)")
    parser.add_argument("--runs", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--no-pause", action="store_true", help="the control: the same runs, never paused")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    unclean = 0
    for index in range(args.runs):
        pauses, code, text = trial(args.out, args.manifest, index, args.seconds, not args.no_pause)
        found = [word for word in UNCLEAN if word in text]
        unclean += bool(found) or code not in (130,)
        print(f"run {index}: {pauses} pauses, exit {code}, unclean {found}", flush=True)
        if found or code != 130:
            print(text[-1500:], flush=True)
    print(f"{unclean} of {args.runs} runs did not end cleanly")


if __name__ == "__main__":
    main()
