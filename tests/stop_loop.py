"""Stop tiny `asr train` runs with SIGINT or SIGTERM at random moments, many times, and report
every stop that did not end cleanly (a crash, a traceback, glibc's heap messages, a hang): the
evidence behind docs/training.md's "Stopping at any moment". Not collected by pytest (a manual
experiment: minutes); the deterministic cases it found are tests in tests/test_train.py.

    python tests/stop_loop.py --stops 60 --out /tmp/stops --manifest M.jsonl [--after start|training] [--seed 1]

Each trial draws: num_workers 0 or 1; the room-impulse bank (augment reverb) on or off; SIGINT
or SIGTERM; to the trainer alone or to its process group (its DataLoader worker too); once or
twice (a second Ctrl-C); one run or two at once (into two experiment folders); and a moment:
0.3-12 s after the start (`--after start`: import, setup, first steps) or 0-4 s after the
"model:" line (`--after training`). A run keeps its experiment folder between trials, so most
resume. The runs get SIGINT at its default (a shell's `&` would start them ignoring it). One JSON
line per run goes to OUT/stops.jsonl (the output's tail when it was not clean); a summary ends it.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml

UNCLEAN = ("corrupted", "free()", "malloc", "terminate called", "Traceback", "core dumped", "double free",
           "Aborted", "Segmentation", "munmap", "Fatal Python", "INTERNAL ASSERT")
CLEAN_CODES = (130, 143, -signal.SIGTERM)  # stopped and said so; or a SIGTERM before the trainer's handler


def write_config(out: Path, manifest: str, reverb: bool) -> Path:
    config = {"train_manifest": manifest,
              "model": {"hidden_size": 32, "num_layers": 1, "subsample": 3, "dropout": 0.1},
              "augment": {"noise_prob": 0.5, "reverb_prob": 0.5 if reverb else 0.0, "rir_count": 3},
              "train": {"epochs": 1000, "max_batch_seconds": 4.0, "lr": 3e-3, "warmup_steps": 5, "log_every": 1,
                        "checkpoint_every": 2, "device": "cpu", "threads": 1, "precision": "float32"}}
    path = out / f"conf-reverb{int(reverb)}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def start(config: Path, exp_dir: Path, workers: int) -> tuple[subprocess.Popen, list[str], threading.Event]:
    """One `asr train` in a session of its own; its output lines are collected by a thread, which
    sets the event at the "model:" line (training begins) or at the end."""
    command = [sys.executable, "-m", "asr", "train", "--config", str(config), "--exp-dir", str(exp_dir),
               "--train.num-workers", str(workers)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"}, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    lines, training = [], threading.Event()

    def read():
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("model:"):
                training.set()
        training.set()

    threading.Thread(target=read, daemon=True).start()
    return proc, lines, training


def stop(procs: list[subprocess.Popen], signum: int, group: bool) -> None:
    for proc in procs:
        try:
            os.killpg(proc.pid, signum) if group else os.kill(proc.pid, signum)
        except ProcessLookupError:
            pass


def trial(number: int, rng: random.Random, args, out: Path) -> list[dict]:
    """One trial's draw, runs and stop; a record per run."""
    draw = dict(trial=number, workers=rng.choice([0, 1]), reverb=rng.choice([False, True]),
                signal=rng.choice(["SIGINT", "SIGTERM"]), group=rng.random() < 0.6, twice=rng.random() < 0.25,
                runs=2 if rng.random() < 0.3 else 1,
                delay=round(rng.uniform(0.3, 12.0) if args.after == "start" else rng.uniform(0.0, 4.0), 2))
    config = write_config(out, args.manifest, draw["reverb"])
    started = [start(config, out / f"exp{k}-w{draw['workers']}-r{int(draw['reverb'])}", draw["workers"])
               for k in range(draw["runs"])]
    procs = [proc for proc, _, _ in started]
    if args.after == "training":
        for _, _, training in started:
            training.wait(300)
    time.sleep(draw["delay"])
    for _ in range(2 if draw["twice"] else 1):
        stop(procs, getattr(signal, draw["signal"]), draw["group"])
        time.sleep(rng.uniform(0.0, 1.0))
    records = []
    for run, (proc, lines, _) in enumerate(started):
        try:
            proc.wait(120)
            hung = False
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            hung = True
        time.sleep(0.2)  # the reader thread takes the last lines
        text = "".join(lines)
        found = [word for word in UNCLEAN if word in text]
        record = dict(draw, run=run, code=proc.returncode, hung=hung, found=found)
        if hung or found or proc.returncode not in CLEAN_CODES:
            record["tail"] = text[-6000:]
        records.append(record)
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stops", type=int, default=60, help="trials")
    parser.add_argument("--out", required=True, help="folder for the configs, experiment folders and stops.jsonl")
    parser.add_argument("--manifest", required=True, help="a tiny training manifest (a few utterances)")
    parser.add_argument("--after", choices=("start", "training"), default="start")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    outcomes = collections.Counter()
    with open(out / "stops.jsonl", "a") as log:
        for number in range(args.stops):
            for record in trial(number, rng, args, out):
                log.write(json.dumps(record) + "\n")
                log.flush()
                outcomes[(record["signal"], record["code"], record["hung"], tuple(record["found"]))] += 1
    for (signame, code, hung, found), count in sorted(outcomes.items(), key=str):
        seen = " HUNG" * hung + "".join(f" {word!r}" for word in found)
        print(f"{count:4d} x {signame} -> exit {code}{seen}")


if __name__ == "__main__":
    main()
