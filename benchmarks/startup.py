"""Start-up of `asr transcribe FILE`: the whole process against `python -c "import torch"`, and its parts.

    python benchmarks/startup.py [--file AUDIO] [--runs 7] [--before CHECKOUT]

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
   segment), and, apart, what loading the VAD costs when a long file needs it.
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

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # common.py when run as a script

from common import DEV_MANIFEST, ROOT, machine_line  # noqa: E402

PARTS = ["imports (command line)", "parser", "imports (torch, pipeline)", "model load", "decoder build",
         "first decode", "VAD load (long files only)"]


def parts(path: str) -> None:
    """In a fresh process: time each part of `asr transcribe path`, print them as JSON."""
    times, start = {}, time.perf_counter()

    def lap(name: str) -> None:
        nonlocal start
        now = time.perf_counter()
        times[name], start = now - start, now

    from asr import cli
    lap("imports (command line)")
    args = cli.build_parser().parse_args(["transcribe", path])
    lap("parser")
    from asr.checkpoint import load_model
    from asr.decode import make_decoder
    from asr.pretrained import default_model_path
    from asr.threads import set_threads
    from asr.transcribe import transcribe
    lap("imports (torch, pipeline)")
    set_threads(args.threads)
    precision = {"precision": args.precision} if hasattr(args, "precision") else {}  # an older checkout: none
    loaded = load_model(default_model_path(), **precision)
    lap("model load")
    decoder = make_decoder(loaded.decoding, loaded.tokenizer)
    lap("decoder build")
    transcribe(loaded, path, decoder)
    lap("first decode")
    from asr.vad import load_vad
    load_vad("silero")
    lap("VAD load (long files only)")
    print(json.dumps(times))


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
    parser.add_argument("--parts", help=argparse.SUPPRESS)  # internal: time the parts on this file
    args = parser.parse_args()
    if args.parts:
        return parts(args.parts)
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
            out = subprocess.run([sys.executable, __file__, "--parts", args.file], check=True, capture_output=True,
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
