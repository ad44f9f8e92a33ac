"""Start-up of `asr transcribe FILE`: the whole process against `python -c "import torch"`, and its parts.

    python -m benchmarks.startup [--file AUDIO] [--runs 7] [--before CHECKOUT]

1. Whole processes, `--runs` of each, interleaved (a shared machine's load drifts; each
   kind sees the same drift): `python -c "import torch"`, and `python -m asr transcribe FILE`
   with the bundled model and its default decoding (beam search, word LM, 50,000-word
   lexicon; the VAD where the file needs it) and every other default. FILE defaults to the
   first speechocean762 dev utterance (3.4 s). Wall time per process; medians, and the
   ratio of the medians (target: <= 1.5x import torch).
2. Parts, in `--runs` fresh processes (each part timed in the order a transcription runs
   it; medians): imports of the command line (no torch), building and running the argument
   parser, imports of torch and the pipeline, loading the model, building the beam decoder
   (the lexicon trie, from its cache after the first run: asr.trie), decoding the file
   (features, network, beam search; the VAD is not loaded for a file shorter than a
   segment), and, apart, what loading the VAD costs when a long file needs it
   (benchmarks/startup_parts.py, run by path).
`--before CHECKOUT` adds another checkout of asr (e.g. before a change) to both: its
`asr transcribe FILE` in the same interleaved rounds, and its parts, in the same run.
The first process of each kind is a warm-up (file cache, the trie cache), not counted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import DEV_MANIFEST, ROOT, machine_line
from benchmarks.startup_parts import PARTS

PARTS_WORKER = Path(__file__).resolve().parent / "startup_parts.py"


def wall(command: list[str], checkout: str | None) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, **where(checkout))
    return time.perf_counter() - start


def where(checkout: str | None) -> dict:
    """subprocess.run's env and cwd that run `checkout`'s asr (None: this one's): `python -m`
    puts the working folder first on sys.path, so it must be the checkout's."""
    root = Path(checkout).resolve() if checkout else ROOT
    return {"env": {**os.environ, "PYTHONPATH": str(root)}, "cwd": root}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--file", help="audio to transcribe (default: the first dev utterance)")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--before", help="another checkout of asr to measure in the same run")
    args = parser.parse_args()
    if not args.file:
        from asr.data.manifest import read_manifest

        first = read_manifest(DEV_MANIFEST)[0]
        args.file = first.audio_path
    args.file = str(Path(args.file).resolve())

    print(machine_line())
    transcribe = [sys.executable, "-m", "asr", "transcribe", args.file]
    commands = {"python -c 'import torch'": ([sys.executable, "-c", "import torch"], None),
                "asr transcribe FILE": (transcribe, None)}
    checkouts = {"": None}
    if args.before:
        commands["asr transcribe FILE (before)"] = (transcribe, args.before)
        checkouts[" (before)"] = args.before
    times = {name: [] for name in commands}
    for run in range(args.runs + 1):
        for name, (command, checkout) in commands.items():
            seconds = wall(command, checkout)
            if run:  # the first round warms the caches
                times[name].append(seconds)
    pieces = {(name, label): [] for label in checkouts for name in PARTS}
    for run in range(args.runs + 1):
        for label, checkout in checkouts.items():
            # by path, so that sys.path holds the checkout's asr and not this package (see startup_parts.py)
            out = subprocess.run([sys.executable, str(PARTS_WORKER), args.file], check=True, capture_output=True,
                                 text=True, **where(checkout)).stdout
            if run:
                for name, seconds in json.loads(out.strip().splitlines()[-1]).items():
                    pieces[name, label].append(seconds)

    print(f"file: {args.file}; {args.runs} runs of each after a warm-up, medians (min-max)\n")
    print("| whole process | seconds | / import torch |")
    print("| --- | ---: | ---: |")
    torch_median = statistics.median(times["python -c 'import torch'"])
    for name, values in times.items():
        median = statistics.median(values)
        print(f"| `{name}` | {median:.2f} ({min(values):.2f}-{max(values):.2f}) | {median / torch_median:.2f}x |")
    labels = list(checkouts)
    print("\n| part of `asr transcribe FILE` | " + " | ".join(f"seconds{label}" for label in labels) + " |")
    print("| --- |" + " ---: |" * len(labels))
    for name in PARTS:
        cells = [f"{statistics.median(pieces[name, label]):.3f} ({min(pieces[name, label]):.3f}-"
                 f"{max(pieces[name, label]):.3f})" for label in labels]
        print(f"| {name} | " + " | ".join(cells) + " |")
    sums = [sum(statistics.median(pieces[name, label]) for name in PARTS[:-1]) for label in labels]
    print("| sum of the parts a short file needs | " + " | ".join(f"{total:.3f}" for total in sums) + " |")

if __name__ == "__main__":
    main()
