"""CPU training throughput, packed LSTM (before) against dense (now), and the padding our duration sampler saves.

    python benchmarks/train_step.py [--config YAML] [--manifest TRAIN.jsonl] [--steps 8] [--seconds 25]

1. Throughput: one optimizer step of `asr.train` (`optimizer_step`: SpecAugment,
   forward, CTC loss, backward, gradient clipping, AdamW) on the same batches, in
   audio seconds trained per second of wall time, for
     - the LSTM formulation: `packed`, nn.LSTM over a PackedSequence as the model ran
       before (`asr.model.packed_bilstm` put in place of `dense_bilstm`), and `dense`,
       the model as it is;
     - 1 and 2 torch threads;
     - the machine as it is, then with a competing CPU-bound process that this script
       starts (a one-core Python busy loop, like a neighbour's job) and stops.
   Batches: the first --steps + 1 of a shuffled epoch of --config (default: the
   speechocean762 `small` recipe, batches of 50 padded seconds; no SortaGrad, whose
   short-first epoch would flatter the figure), featurized once beforehand so that
   every row trains on the same audio. Each row starts from the same initial weights;
   its first step is a warm-up and is not timed, and a row stops after --seconds of
   timed steps (at least one), which only the slowest rows reach.
2. Padding: the share of padded frames over one epoch of batches, with
   DurationBatchSampler and with random batching of the same utterances under
   the same cap (batch size x longest utterance <= max_batch_seconds).
"""

from __future__ import annotations

import argparse
import itertools
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from common import RECIPE, TRAIN_MANIFEST, machine_line

import asr.model
from asr.config import load_yaml, merge
from asr.data.manifest import read_manifest
from asr.data.sampler import DurationBatchSampler
from asr.distributed import Distributed
from asr.text import CharTokenizer
from asr.threads import default_threads, set_threads
from asr.train import RunConfig, build_optimization, get_lr, load_data, make_loader, optimizer_step, resolve

FORMULATIONS = {"packed": asr.model.packed_bilstm, "dense": asr.model.dense_bilstm}


def padding_fraction(durations: np.ndarray, batches: list[list[int]]) -> float:
    """Padded share of all frames when each batch is padded to its longest utterance."""
    padded = sum(len(b) * durations[b].max() for b in batches)
    return 1.0 - durations.sum() / padded


def throughput(config: RunConfig, batches: list[dict], formulation: str, seconds: float) -> float:
    """Audio seconds per second over the timed steps (all but the first) of one fresh model and optimizer."""
    asr.model.dense_bilstm = FORMULATIONS[formulation]  # what CTCModel.forward calls on a padded CPU batch
    try:
        resolved = resolve(config, CharTokenizer())
        set_threads(resolved.train.threads, "train.threads")  # as `asr train` does
        opt = build_optimization(resolved, Distributed(), torch.device("cpu"))  # the same initial weights every time
        opt.model.train()
        audio = elapsed = 0.0
        for step, batch in enumerate(batches):
            start = time.perf_counter()
            optimizer_step(opt, [batch], get_lr(step, config.train, len(batches)), resolved)
            if step > 0:  # the first step is a warm-up
                elapsed += time.perf_counter() - start
                audio += batch["feature_lengths"].sum().item() * config.features.hop_ms / 1000
                if elapsed > seconds:
                    break
    finally:
        asr.model.dense_bilstm = FORMULATIONS["dense"]
    return audio / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=str(RECIPE / "conf" / "small.yaml"))
    parser.add_argument("--manifest", default=str(TRAIN_MANIFEST))
    parser.add_argument("--steps", type=int, default=8, help="timed steps per row (after one warm-up step)")
    parser.add_argument("--seconds", type=float, default=25.0, help="stop a row after this much timed training")
    args = parser.parse_args()
    print(machine_line())
    torch_default = torch.get_num_threads()  # what training used before asr set its own default

    config = merge(RunConfig(), load_yaml(args.config))
    config = merge(config, {"train_manifest": args.manifest, "dev_manifest": "",
                            "train": {"sortagrad": False, "num_workers": 0, "device": "cpu"}})

    durations = np.array([u.duration for u in read_manifest(args.manifest)])
    sampler = DurationBatchSampler(durations.tolist(), config.train.max_batch_seconds, seed=0)
    ours = padding_fraction(durations, sampler.batches(0))
    # Random batching: the same greedy packing under the same cap, over a shuffled order.
    random_order = np.random.default_rng(0).permutation(len(durations))
    shuffled = padding_fraction(durations, sampler._pack(random_order, durations))
    print(f"padding  {len(durations)} utterances, batches of <= {config.train.max_batch_seconds:g} padded s: "
          f"duration sampler {ours:.1%}   random batching {shuffled:.1%}")

    with tempfile.TemporaryDirectory() as exp_dir:
        resolved = resolve(config, CharTokenizer())
        data = load_data(resolved, Distributed(), Path(exp_dir))
        batches = list(itertools.islice(make_loader(resolved, data, CharTokenizer(), epoch=0), args.steps + 1))
    utterances = [len(b["ids"]) for b in batches[1:]]
    audio = sum(b["feature_lengths"].sum().item() for b in batches[1:]) * config.features.hop_ms / 1000
    model = config.model
    print(f"train    {args.config}: {model.num_layers}x{model.hidden_size} BiLSTM, subsample {model.subsample}; "
          f"{args.steps} timed batches of {min(utterances)}-{max(utterances)} utterances, {audio:.0f} s of audio "
          f"in all, <= {config.train.max_batch_seconds:g} padded s each")
    print("| threads | competing process | packed (before), audio s/s | dense (now), audio s/s | dense / packed |")
    print("| ---: | --- | ---: | ---: | ---: |")
    speeds = {}  # (competing, threads) -> {formulation: audio s/s}
    for competing in (False, True):
        rival = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if competing else None
        try:
            for threads in sorted({1, 2, torch_default, default_threads()}):
                config.train.threads = threads
                speed = speeds[competing, threads] = {name: throughput(config, batches, name, args.seconds)
                                                      for name in FORMULATIONS}
                print(f"| {threads} | {'one busy-loop process' if competing else 'none started'} "
                      f"| {speed['packed']:.1f} | {speed['dense']:.1f} | {speed['dense'] / speed['packed']:.1f}x |",
                      flush=True)
        finally:
            if rival is not None:
                rival.kill()
                rival.wait()
    ratios = [speeds[competing, default_threads()]["dense"] / speeds[competing, torch_default]["packed"]
              for competing in (False, True)]
    print(f"defaults: before, packed at torch's default of {torch_default} thread(s); now, dense at asr's default "
          f"of {default_threads()}: {ratios[0]:.1f}x with none started, {ratios[1]:.1f}x with the busy-loop process")
    print(machine_line())  # the load average again, after the run


if __name__ == "__main__":
    main()
