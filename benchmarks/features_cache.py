"""Features on the fly or from a cache? Time both on this machine.

    python -m benchmarks.features_cache [--manifest DEV.jsonl] [--seconds 300]

Training computes log-mel features in its DataLoader workers (asr.data.dataset).
The alternative is to compute them once and load them from disk each epoch. For
utterances of a manifest (default: speechocean762 dev), re-encoded first as 16 kHz
16-bit FLAC, which is how LibriSpeech ships, this times on one thread (what each
DataLoader worker uses), utterance by utterance:
    on the fly   load_audio (FLAC decode) + LogMel, as UtteranceDataset.__getitem__
    decode only  load_audio alone, to show where the time goes
    cache f32    np.load of the same features saved as float32 .npy, one file each
    cache f16    the same stored as float16, converted back to float32 on load
Figures are audio seconds per second of wall time (best of 3 passes), and the disk
each form takes per hour of audio. The cache is timed with its files in the page
cache, its best case; reading them from a cold disk is slower.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from asr.audio import SAMPLE_RATE, load_audio
from asr.data.manifest import read_manifest
from asr.features import FeatureConfig, LogMel
from benchmarks.common import DEV_MANIFEST, best_time, machine_line

LIBRISPEECH_HOURS = 960.0  # what a cache of all of LibriSpeech would hold


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--manifest", default=str(DEV_MANIFEST))
    parser.add_argument("--seconds", type=float, default=300.0, help="audio per pass")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(machine_line())

    logmel = LogMel(FeatureConfig())
    with tempfile.TemporaryDirectory() as tmp:
        flacs, total = [], 0.0
        for utt in read_manifest(args.manifest):
            if total >= args.seconds:
                break
            audio = load_audio(utt.audio_path, utt.offset, utt.duration)  # (samples,)
            flac = Path(tmp) / f"{len(flacs)}.flac"
            sf.write(flac, audio, SAMPLE_RATE, subtype="PCM_16")
            flacs.append(flac)
            total += len(audio) / SAMPLE_RATE
        for flac in flacs:
            feats = features(logmel, flac).numpy()  # (frames, mels)
            np.save(flac.with_suffix(".f32.npy"), feats)
            np.save(flac.with_suffix(".f16.npy"), feats.astype(np.float16))

        def on_the_fly():
            for flac in flacs:
                features(logmel, flac)

        def decode_only():
            for flac in flacs:
                load_audio(flac)

        def cache(suffix: str):
            def load():
                for flac in flacs:
                    torch.from_numpy(np.load(flac.with_suffix(suffix)).astype(np.float32, copy=False))
            return load

        print(f"{len(flacs)} utterances, {total:.0f} s of audio, one thread; audio seconds per second (x real time):")
        speeds = {}
        for name, fn in [("on the fly", on_the_fly), ("decode only", decode_only),
                         ("cache f32", cache(".f32.npy")), ("cache f16", cache(".f16.npy"))]:
            speeds[name] = total / best_time(fn)
            print(f"  {name:<12} {speeds[name]:10.0f} x")
        print(f"  cache f32 / on the fly: {speeds['cache f32'] / speeds['on the fly']:.1f}x faster to load")

        print(f"disk per hour of audio (and for {LIBRISPEECH_HOURS:.0f} h):")
        for name, pattern in [("FLAC audio", "*.flac"), ("cache f32", "*.f32.npy"), ("cache f16", "*.f16.npy")]:
            per_hour = sum(p.stat().st_size for p in Path(tmp).glob(pattern)) / total * 3600
            print(f"  {name:<12} {per_hour / 2**20:8.0f} MiB/h  {per_hour * LIBRISPEECH_HOURS / 2**30:8.0f} GiB")
    workers = 1000 / speeds["on the fly"]
    print(f"on the fly, feeding a model that trains on 1000 s of audio per second takes {workers:.1f} worker(s)")


def features(logmel: LogMel, path: Path) -> torch.Tensor:
    """(frames, mels) log-mel of an audio file, as UtteranceDataset computes it."""
    with torch.no_grad():
        return logmel(torch.from_numpy(load_audio(path)))


if __name__ == "__main__":
    main()
