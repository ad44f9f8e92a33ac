"""CPU training throughput for the default config, and the padding our duration sampler saves.

    python benchmarks/train_step.py [--manifest TRAIN.jsonl] [--steps 12] [--config YAML]

1. Throughput: `asr.train.run`, the real training loop (features computed on the
   fly in a DataLoader worker, SpecAugment, forward, CTC loss, backward, AdamW
   step), for --steps steps of the default RunConfig (or --config) on the
   speechocean762 train manifest, batches in random order (no SortaGrad, whose
   short-first epoch 0 would flatter the figure). Audio seconds per second of
   wall time come from the loop's own metrics.jsonl; the first logged window
   (start-up) is left out.
2. Padding: the share of padded frames over one epoch of batches, with
   DurationBatchSampler and with random batching of the same utterances under
   the same cap (batch size x longest utterance <= max_batch_seconds).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import numpy as np
import torch
from common import TRAIN_MANIFEST, machine_line

from asr.config import load_yaml, merge
from asr.data.manifest import read_manifest
from asr.data.sampler import DurationBatchSampler
from asr.train import RunConfig, run

LOG_EVERY = 3  # steps per throughput window in metrics.jsonl


def padding_fraction(durations: np.ndarray, batches: list[list[int]]) -> float:
    """Padded share of all frames when each batch is padded to its longest utterance."""
    padded = sum(len(b) * durations[b].max() for b in batches)
    return 1.0 - durations.sum() / padded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--manifest", default=str(TRAIN_MANIFEST))
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--config", help="recipe YAML to measure instead of the defaults")
    args = parser.parse_args()
    print(machine_line())

    config = RunConfig()
    if args.config:
        config = merge(config, load_yaml(args.config))
    config = merge(config, {"train_manifest": args.manifest, "dev_manifest": "",
                            "train": {"max_steps": args.steps, "log_every": LOG_EVERY, "sortagrad": False,
                                      "checkpoint_every": 10**9, "device": "cpu"}})

    durations = np.array([u.duration for u in read_manifest(args.manifest)])
    sampler = DurationBatchSampler(durations.tolist(), config.train.max_batch_seconds, seed=0)
    ours = padding_fraction(durations, sampler.batches(0))
    # Random batching: the same greedy packing under the same cap, over a shuffled order.
    random_order = np.random.default_rng(0).permutation(len(durations))
    shuffled = padding_fraction(durations, sampler._pack(random_order))
    print(f"padding  {len(durations)} utterances, batches of <= {config.train.max_batch_seconds:g} padded s: "
          f"duration sampler {ours:.1%}   random batching {shuffled:.1%}")

    with tempfile.TemporaryDirectory() as exp_dir:
        run(config, exp_dir)
        rows = [json.loads(line) for line in (Path(exp_dir) / "metrics.jsonl").read_text().splitlines()]
    speeds = [row["audio_sec_per_sec"] for row in rows if "audio_sec_per_sec" in row][1:]
    model = config.model
    print(f"train    {args.config or 'default config'} "
          f"({model.num_layers}x{model.hidden_size} BiLSTM, subsample {model.subsample}, "
          f"{config.train.max_batch_seconds:g} s batches), {torch.get_num_threads()} threads: "
          f"{statistics.median(speeds):.1f} audio-s/s (median of {len(speeds)} windows of {LOG_EVERY} steps, "
          f"range {min(speeds):.1f}-{max(speeds):.1f})")


if __name__ == "__main__":
    main()
