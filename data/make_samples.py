"""Make data/samples/: the sentences `asr demo` speaks, as FLAC files with their transcripts.

    python data/make_samples.py            # rewrites data/samples/*.flac and *.txt

Each sample is `asr.demo.sample_jobs()`'s job rendered by `asr.synth.synthesize.render`:
espeak-ng reads the sentence slowly (tempo 0.85) in the voice named in the file name,
with 0.3 s of silence before and after, peak 0.7, and white noise at -60 dBFS; the
result is written as 16 kHz mono 16-bit FLAC. espeak-ng's output is bit-exact for a
given espeak-ng version, so a rerun with the version in data/README.md rewrites
the same files. Each NAME.flac has its transcript in NAME.txt, the layout
`asr prepare folder` reads.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's asr, when run as a script

from asr.audio import SAMPLE_RATE  # noqa: E402
from asr.demo import sample_jobs  # noqa: E402
from asr.synth.synthesize import render  # noqa: E402

OUT = ROOT / "data" / "samples"


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for job in sample_jobs():
        name = f"{job.index + 1:02d}-{re.sub(r'[^a-z0-9]+', '-', job.voice)}"
        sf.write(OUT / f"{name}.flac", render(job), SAMPLE_RATE, subtype="PCM_16", format="FLAC")
        (OUT / f"{name}.txt").write_text(job.text.lower() + "\n")
        print(f"{name}.flac  {job.text.lower()}")


if __name__ == "__main__":
    main()
