"""A degraded copy of a manifest's audio: noise, rooms, phone lines, codecs and gain, as users bring.

    python local/degrade.py data/dev.jsonl data/dev_degraded data/dev_degraded.jsonl [--seed 1]

Each utterance goes through asr.data.augment's Augmenter with DEGRADE (stronger and
more frequent than the training mix in conf/small_aug.yaml) and is written as 16-bit
FLAC, with the same id, text and speaker. The rooms come from a bank rendered with
`--seed` (training renders its bank with train.seed, 0 by default, so these rooms are
new to the model) and the babble from the manifest's own other utterances, so nothing
here was heard in training. Deterministic: the same command writes the same files.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import soundfile as sf
import torch

from asr.audio import SAMPLE_RATE, load_audio
from asr.data.augment import AugmentConfig, Augmenter, ensure_rir_bank
from asr.data.manifest import Utterance, read_manifest, write_manifest

DEGRADE = AugmentConfig(noise_prob=0.7, noise_snr_db=(0.0, 20.0), reverb_prob=0.5, telephone_prob=0.2,
                        codec_prob=0.4, gain_prob=0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("manifest")
    parser.add_argument("out_dir")
    parser.add_argument("out_manifest")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(1)
    utterances = read_manifest(args.manifest)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    bank = ensure_rir_bank(out_dir / "rir_bank.npz", DEGRADE, seed=args.seed)
    load = lambda i: load_audio(utterances[i].audio_path, utterances[i].offset, utterances[i].duration)  # noqa: E731
    augment = Augmenter(DEGRADE, load, len(utterances), bank)
    manifest_dir = Path(args.out_manifest).resolve().parent
    rows = []
    for index, utt in enumerate(utterances):
        path = out_dir / f"{utt.id}.flac"
        sf.write(path, augment(load(index), args.seed, 0, index), SAMPLE_RATE, subtype="PCM_16")
        rows.append(Utterance(utt.id, os.path.relpath(path, manifest_dir), utt.duration, utt.text, utt.speaker))
    write_manifest(rows, args.out_manifest)
    print(f"wrote {args.out_manifest}: {len(rows)} utterances")


if __name__ == "__main__":
    main()
