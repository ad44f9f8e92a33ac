"""Make a small OpenSLR-style mirror of LibriSpeech subsets holding synthetic speech.

    python local/make_mini_mirror.py OUT [--speakers 4 --chapters 2 --utterances 5]
    ./run.sh --conf mini --mirror file://$PWD/OUT --checksums OUT/md5sum.txt

Writes what `asr prepare librispeech --mirror` expects to find:
    OUT/31/train-clean-5.tar.gz  LibriSpeech/train-clean-5/<spk>/<chapter>/<spk>-<chapter>-NNNN.flac
                                 and <spk>-<chapter>.trans.txt, the real archives' layout
    OUT/31/dev-clean-2.tar.gz    the same, with other speakers and sentences
    OUT/md5sum.txt               `<md5>  <subset>.tar.gz` lines, for --checksums
The speech is espeak-ng (asr.synth) with one voice per speaker, saying sentences
from asr.synth.prompts' small grammar: enough to run every stage of the recipe
without internet, not to measure accuracy. Tests build their mirrors with `make_mirror`.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import tarfile
import tempfile
from pathlib import Path

import soundfile as sf

from asr.audio import SAMPLE_RATE
from asr.synth.corpus import plan_jobs, synthesize
from asr.synth.prompts import GRAMMAR, PromptSource
from asr.synth.voices import ESPEAK_ACCENTS, ESPEAK_VARIANTS

MINI_SUBSETS = ("train-clean-5", "dev-clean-2")  # OpenSLR resource 31


def make_mirror(out: str | Path, subsets=MINI_SUBSETS, speakers: int = 4, chapters: int = 2,
                utterances: int = 5, resource: int = 31, seed: int = 0) -> dict[str, dict[str, tuple[str, float]]]:
    """Write OUT/<resource>/<subset>.tar.gz for each subset, and OUT/md5sum.txt.
    Returns {subset: {utterance id: (transcript, seconds)}}."""
    out = Path(out)
    (out / str(resource)).mkdir(parents=True, exist_ok=True)
    contents, sums = {}, []
    for k, subset in enumerate(subsets):
        archive = out / str(resource) / f"{subset}.tar.gz"
        contents[subset] = _write_subset(archive, subset, speakers, chapters, utterances, seed=seed + k,
                                         first_speaker=100 * (k + 1))
        sums.append(f"{hashlib.md5(archive.read_bytes(), usedforsecurity=False).hexdigest()}  {archive.name}\n")
    (out / "md5sum.txt").write_text("".join(sums))
    return contents


def _write_subset(archive: Path, subset: str, speakers: int, chapters: int, utterances: int, seed: int,
                  first_speaker: int) -> dict[str, tuple[str, float]]:
    grammar = [PromptSource(GRAMMAR, 1.0)]
    jobs = iter(plan_jobs(grammar, speakers * chapters * utterances, seed=seed, engines=["espeak"]))
    contents = {}
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "LibriSpeech"
        (tree / subset).mkdir(parents=True)
        (tree / "README.TXT").write_text("Synthetic speech (espeak-ng) in the LibriSpeech layout, for tests.\n")
        for s in range(speakers):
            speaker = first_speaker + s
            voice = ESPEAK_ACCENTS[s % len(ESPEAK_ACCENTS)] + ESPEAK_VARIANTS[(5 * s) % len(ESPEAK_VARIANTS)]
            for c in range(chapters):
                chapter = 1000 * speaker + c
                folder = tree / subset / str(speaker) / str(chapter)
                folder.mkdir(parents=True)
                lines = []
                for u in range(utterances):
                    job = dataclasses.replace(next(jobs), voice=voice, warp=1.0)  # one voice per speaker
                    utt = f"{speaker}-{chapter}-{u:04d}"
                    audio = synthesize(job)  # (samples,)
                    sf.write(folder / f"{utt}.flac", audio, SAMPLE_RATE, subtype="PCM_16")
                    lines.append(f"{utt} {job.text}\n")
                    contents[utt] = (job.text, len(audio) / SAMPLE_RATE)
                (folder / f"{speaker}-{chapter}.trans.txt").write_text("".join(lines))
        with tarfile.open(archive, "w:gz") as tar:
            tar.add(tree, arcname="LibriSpeech")
    return contents


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", help="mirror folder (serve it over HTTP, or pass file://ABSOLUTE/PATH)")
    parser.add_argument("--speakers", type=int, default=4, help="speakers per subset")
    parser.add_argument("--chapters", type=int, default=2, help="chapters per speaker")
    parser.add_argument("--utterances", type=int, default=5, help="utterances per chapter")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    contents = make_mirror(args.out, speakers=args.speakers, chapters=args.chapters, utterances=args.utterances,
                           seed=args.seed)
    for subset, utts in contents.items():
        print(f"{subset}: {len(utts)} utterances, {sum(s for _, s in utts.values()) / 60:.1f} min")


if __name__ == "__main__":
    main()
