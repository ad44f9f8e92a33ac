"""Split a manifest per speaker: the first N utterances (by id) to adapt on, the rest to test on.

    python local/per_speaker.py DEV_REPORT.jsonl --adapt 10 --out-dir data/speakers
    -> data/speakers/SPEAKER/adapt.jsonl, data/speakers/SPEAKER/test.jsonl, one folder per speaker
"""

from __future__ import annotations

import argparse
import collections
from pathlib import Path

from asr.data.manifest import read_manifest, write_manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("manifest")
    parser.add_argument("--adapt", type=int, default=10, help="utterances per speaker to adapt on")
    parser.add_argument("--out-dir", required=True, type=Path)
    args = parser.parse_args()
    speakers = collections.defaultdict(list)
    for utt in read_manifest(args.manifest):
        speakers[utt.speaker].append(utt)
    for speaker, utts in sorted(speakers.items()):
        utts.sort(key=lambda u: u.id)
        folder = args.out_dir / speaker
        folder.mkdir(parents=True, exist_ok=True)
        write_manifest(utts[:args.adapt], folder / "adapt.jsonl")
        write_manifest(utts[args.adapt:], folder / "test.jsonl")
    print(f"{len(speakers)} speakers in {args.out_dir}")


if __name__ == "__main__":
    main()
