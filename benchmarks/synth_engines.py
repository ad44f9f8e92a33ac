"""How fast each text-to-speech engine of `asr synth` speaks, and what its audio costs on disk.

    python -m benchmarks.synth_engines [--count 30] [--prompts TRAIN.jsonl]

For each installed engine, `count` jobs of one plan (seed 0, the training split:
every voice and warp the recipe draws from, prompts from the manifest and the
grammar) are rendered one after another on one thread, as `asr synth --jobs 1`
does. Speed is audio seconds per CPU second: this process's CPU time plus that of
the engine's child processes (espeak-ng, flite and festival run as programs,
piper in-process), so other jobs on the machine do not inflate it. "render" is
synthesis + warp + padding; "+ Opus" adds the Ogg/Opus encoding that `asr synth`
stores; the disk column is the size of those files per hour of audio.
"""

from __future__ import annotations

import argparse
import io
import resource
import time

import soundfile as sf
import torch

from asr.audio import SAMPLE_RATE
from asr.synth.corpus import plan_jobs, synthesize
from asr.synth.prompts import load_sources
from asr.synth.voices import available_engines
from benchmarks.common import TRAIN_MANIFEST, machine_line


def cpu_seconds() -> float:
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=30, help="utterances per engine")
    parser.add_argument("--prompts", default=str(TRAIN_MANIFEST), help="manifest or text whose sentences are read")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(machine_line())
    sources = load_sources([args.prompts], grammar_weight=0.25)
    print(f"{args.count} utterances per engine, prompts: {args.prompts} + grammar; one thread")
    print(f"  {'engine':<10} {'audio s':>8} {'render x':>9} {'+ Opus x':>9} {'MB per hour':>12}")
    for engine in available_engines():
        jobs = plan_jobs(sources, args.count, seed=0, engines=[engine])
        synthesize(jobs[0])  # warm-up: piper loads its network, the others fill the page cache
        audio_seconds = render_cpu = encode_cpu = size = 0.0
        for job in jobs:
            start = cpu_seconds()
            audio = synthesize(job)
            middle = cpu_seconds()
            buffer = io.BytesIO()
            sf.write(buffer, audio, SAMPLE_RATE, format="OGG", subtype="OPUS")
            encode_cpu += cpu_seconds() - middle
            render_cpu += middle - start
            size += buffer.tell()
            audio_seconds += len(audio) / SAMPLE_RATE
        print(f"  {engine:<10} {audio_seconds:8.0f} {audio_seconds / render_cpu:9.1f} "
              f"{audio_seconds / (render_cpu + encode_cpu):9.1f} {size / audio_seconds * 3600 / 1e6:12.1f}")


if __name__ == "__main__":
    main()
