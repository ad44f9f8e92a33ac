"""What on-the-fly augmentation costs a DataLoader worker, per second of audio.

    python -m benchmarks.augment [--manifest TRAIN.jsonl] [--seconds 200] [--recipe-conf CONF.yaml]

For utterances of a manifest (default: speechocean762 train), on one thread, as
one DataLoader worker runs them, this times UtteranceDataset items (decode +
augmentation + log-mel): first with no augmentation, then with each augmentation
on at probability 1, then with the augment section of a recipe conf (its real
mix of probabilities). Figures are CPU milliseconds per second of audio (process
time, so other jobs on the machine do not inflate them) and the audio seconds
per CPU second one worker can feed. Training runs at ~70 audio s/s on this
machine: a worker feeds it as long as its cost stays below ~14 ms per audio second.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from asr.config import merge
from asr.data.augment import AugmentConfig, ensure_rir_bank, join_groups
from asr.data.dataset import UtteranceDataset
from asr.data.manifest import read_manifest
from asr.features import FeatureConfig
from asr.text import CharTokenizer
from benchmarks.common import RECIPE, TRAIN_MANIFEST, machine_line

SINGLE = {
    "noise (coloured)": dict(noise_prob=1.0, babble_share=0.0),
    "noise (babble)": dict(noise_prob=1.0, babble_share=1.0),
    "reverb": dict(reverb_prob=1.0),
    "telephone (GSM)": dict(telephone_prob=1.0, gsm_share=1.0),
    "telephone (mu-law)": dict(telephone_prob=1.0, gsm_share=0.0),
    "codec (Opus)": dict(codec_prob=1.0, mp3_share=0.0),
    "codec (MP3)": dict(codec_prob=1.0, mp3_share=1.0),
    "gain": dict(gain_prob=1.0),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--manifest", default=str(TRAIN_MANIFEST))
    parser.add_argument("--seconds", type=float, default=200.0, help="audio per configuration")
    parser.add_argument("--recipe-conf", default=str(RECIPE / "conf" / "small_aug.yaml"),
                        help="also time the augment section of this conf (skipped if missing)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(machine_line())
    utterances = read_manifest(args.manifest)
    rng = np.random.default_rng(0)
    chosen, total = [], 0.0
    for i in rng.permutation(len(utterances)):
        if total >= args.seconds:
            break
        chosen.append(utterances[i])
        total += utterances[i].duration
    print(f"{len(chosen)} utterances, {total:.0f} s of audio from {args.manifest}; one thread; CPU ms per audio s")
    configs = {"none (decode + log-mel)": AugmentConfig()}
    configs.update({name: AugmentConfig(**settings) for name, settings in SINGLE.items()})
    conf = Path(args.recipe_conf)
    if conf.is_file():
        configs[f"{conf.name} (its mix, joins included)"] = merge(AugmentConfig(), yaml.safe_load(
            conf.read_text()).get("augment", {}))
    with tempfile.TemporaryDirectory() as tmp:
        bank = str(ensure_rir_bank(Path(tmp) / "rirs.npz", AugmentConfig()))
        base = None
        print(f"  {'augmentation':<42} {'ms/s':>7} {'+ms/s':>7} {'audio s/CPU s':>14}")
        for name, config in configs.items():
            cost = _cost(chosen, config, bank)
            base = cost if base is None else base
            extra = "" if cost is base else f"{1000 * (cost - base):7.1f}"
            print(f"  {name:<42} {1000 * cost:7.1f} {extra:>7} {1 / cost:14.0f}")


def _cost(utterances, config: AugmentConfig, bank: str) -> float:
    """CPU seconds per audio second for dataset items, after one warm-up item."""
    dataset = UtteranceDataset(utterances, FeatureConfig(), CharTokenizer(), seed=0, epoch=0, augment=config,
                               rir_bank=bank)
    durations = [u.duration for u in utterances]
    items = join_groups(durations, config, 0, 0) if config.join_prob else [(i,) for i in range(len(utterances))]
    dataset[items[0]]
    start = time.process_time()
    for item in items:
        dataset[item]
    return (time.process_time() - start) / sum(durations)


if __name__ == "__main__":
    main()
