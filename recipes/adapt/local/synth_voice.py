"""Render sentences with one synthetic voice setting that training never uses (asr.synth's held-out voices).

    python local/synth_voice.py --text SENTENCES.txt --voice flite:awb:1.00 --skip 0 --count 300 \
        --out-dir data/voice/train --manifest data/voice_train.jsonl

The sentences are a seeded draw (seed 0) from the text file (one sentence a line), of 5 to 14
words; `--skip N` starts after the first N of that draw, so the train and test sets of one
voice never share a sentence. Every utterance has the same tempo, pitch, pauses and noise
level: one steady voice, as a person reading prompts. Writes 16 kHz wav files and a manifest.
"""

from __future__ import annotations

import argparse
import random
import re
from pathlib import Path

import soundfile as sf

from asr.audio import SAMPLE_RATE
from asr.data.manifest import Utterance, write_manifest
from asr.synth.corpus import SynthJob, render
from asr.synth.voices import HELDOUT_VOICES


def sentences(path: Path) -> list[str]:
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    chosen = [s for s in lines if 5 <= len(s.split()) <= 14 and re.fullmatch(r"[A-Za-z ,.'?!;:-]+", s)]
    random.Random(0).shuffle(chosen)
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--text", required=True, type=Path)
    parser.add_argument("--voice", required=True, help="ENGINE:VOICE:WARP of a held-out voice, e.g. flite:awb:1.00")
    parser.add_argument("--skip", type=int, default=0)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--out-dir", required=True, type=Path)
    parser.add_argument("--manifest", required=True)
    args = parser.parse_args()
    engine, voice, warp = args.voice.split(":")
    if (engine, voice) not in HELDOUT_VOICES:
        parser.error(f"{engine}:{voice} is a training voice; choose one of {sorted(HELDOUT_VOICES)}")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    utterances = []
    for i, text in enumerate(sentences(args.text)[args.skip:args.skip + args.count]):
        job = SynthJob(index=args.skip + i, text=text.upper(), engine=engine, voice=voice, tempo=1.0, pitch=1.0,
                       word_gap=0, pad_start=0.3, pad_end=0.3, gain=0.7, noise_db=-60.0, seed=i, warp=float(warp))
        path = args.out_dir / f"{job.id}.wav"
        if not path.exists():
            sf.write(path, render(job), SAMPLE_RATE)
        utterances.append(Utterance(job.id, str(path.resolve()), sf.info(path).duration, job.text, job.speaker))
    write_manifest(utterances, args.manifest)
    print(f"{args.manifest}: {len(utterances)} utterances, {sum(u.duration for u in utterances) / 60:.1f} min")


if __name__ == "__main__":
    main()
