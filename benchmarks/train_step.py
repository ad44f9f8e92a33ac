"""CPU training throughput: float32 against bfloat16 autocast, the dense LSTM against the packed one it
replaced, three network shapes, and the padding our duration sampler saves.

    python -m benchmarks.train_step [--config YAML] [--manifest TRAIN.jsonl] [--steps 8] [--seconds 20]

The first lines say the CPU, its BF16 instruction flags (amx_bf16, avx512_bf16: without them bfloat16
is emulated and slower) and what `train.precision: auto` picks on it.

1. Precision and formulation: one optimizer step as `asr train` takes it (SpecAugment, forward under
   the precision's autocast, CTC loss in float32, backward, gradient clipping, AdamW) on the same
   batches, in audio seconds trained per second of wall time, for
     - `packed` float32: nn.LSTM over a PackedSequence as the model ran before
       (`asr.model.packed_bilstm` put in place of `dense_bilstm`);
     - `dense` float32 and `dense` bfloat16: the model as it is, in each precision;
   at 1 and 2 torch threads, on the machine as it is and then beside a competing CPU-bound
   process that this script starts (a one-core Python busy loop, like a neighbour's job).
2. Networks: the same steps at 1 thread for the race's contenders (3x256 with frame stacking,
   3x256 with the conv front end, 4x320 with frame stacking), float32 against bfloat16.
Batches: the first --steps + 1 of a shuffled epoch of --config (default: the speechocean762 `small`
recipe, batches of 50 padded seconds; no SortaGrad, whose short-first epoch would flatter the
figure), featurized once beforehand so that every row trains on the same audio. Each row starts
from the same initial weights; its first step is a warm-up and is not timed, and a row stops after
--seconds of timed steps (at least one), which only the slowest rows reach.
3. Padding: the share of padded frames over one epoch of batches, with DurationBatchSampler and
   with random batching of the same utterances under the same cap.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import subprocess
import sys
import time

import numpy as np
import torch

import asr.model
from asr.config import load_yaml, merge
from asr.data.dataset import UtteranceDataset, collate
from asr.data.manifest import read_manifest
from asr.data.sampler import DurationBatchSampler
from asr.precision import cpu_bf16_flags, pick_precision
from asr.text import CharTokenizer
from asr.threads import default_threads
from asr.train import RunConfig, compute_loss, get_lr, resolve
from benchmarks.common import RECIPE, TRAIN_MANIFEST, machine_line

FORMULATIONS = {"packed": asr.model.packed_bilstm, "dense": asr.model.dense_bilstm}
CPU = torch.device("cpu")
NETWORKS = {"3x256 stack": {"num_layers": 3, "hidden_size": 256, "front_end": "stack"},
            "3x256 conv": {"num_layers": 3, "hidden_size": 256, "front_end": "conv"},
            "4x320 stack": {"num_layers": 4, "hidden_size": 320, "front_end": "stack"}}


def padding_fraction(durations: np.ndarray, batches: list[list[int]]) -> float:
    """Padded share of all frames when each batch is padded to its longest utterance."""
    padded = sum(len(b) * durations[b].max() for b in batches)
    return 1.0 - durations.sum() / padded


def throughput(config: RunConfig, batches: list[dict], formulation: str, precision: str, threads: int,
               seconds: float) -> float:
    """Audio seconds per second over the timed steps (all but the first) of a fresh model and optimizer."""
    torch.set_num_threads(threads)
    asr.model.dense_bilstm = FORMULATIONS[formulation]  # what CTCModel.forward calls on a padded CPU batch
    try:
        torch.manual_seed(config.train.seed)  # the same initial weights every time
        model = asr.model.CTCModel(config.model).train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.train.lr, weight_decay=config.train.weight_decay)
        autocast = pick_precision(precision, CPU).autocast
        audio = elapsed = 0.0
        for step, batch in enumerate(batches):
            start = time.perf_counter()
            for group in optimizer.param_groups:
                group["lr"] = get_lr(step, config.train, len(batches))
            optimizer.zero_grad(set_to_none=True)
            with autocast():
                loss = compute_loss(model, batch, CPU, config.specaug)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.train.grad_clip)
            optimizer.step()
            if step > 0:  # the first step is a warm-up
                elapsed += time.perf_counter() - start
                audio += batch["feature_lengths"].sum().item() * config.features.hop_ms / 1000
                if elapsed > seconds:
                    break
    finally:
        asr.model.dense_bilstm = FORMULATIONS["dense"]
    return audio / elapsed


def first_batches(config: RunConfig, count: int) -> list[dict]:
    """The first `count` batches of epoch 0 of `config`'s training data, featurized (and augmented) once."""
    utterances = read_manifest(config.train_manifest)
    sampler = DurationBatchSampler([u.duration for u in utterances], config.train.max_batch_seconds,
                                   seed=config.train.seed, sortagrad=False)
    dataset = UtteranceDataset(utterances, config.features, CharTokenizer(), seed=config.train.seed,
                               augment=config.augment)
    return [collate([dataset[i] for i in batch]) for batch in itertools.islice(sampler, count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=str(RECIPE / "conf" / "small.yaml"))
    parser.add_argument("--manifest", default=str(TRAIN_MANIFEST))
    parser.add_argument("--steps", type=int, default=8, help="timed steps per row (after one warm-up step)")
    parser.add_argument("--seconds", type=float, default=20.0, help="stop a row after this much timed training")
    args = parser.parse_args()
    print(machine_line())
    flags = cpu_bf16_flags()
    print(f"cpu      BF16 instruction flags: {', '.join(flags) or 'none'}; train.precision auto picks "
          f"{pick_precision('auto', CPU).name}")

    config = merge(RunConfig(), load_yaml(args.config))
    config = resolve(merge(config, {"train_manifest": args.manifest, "dev_manifest": ""}), CharTokenizer())

    durations = np.array([u.duration for u in read_manifest(args.manifest)])
    sampler = DurationBatchSampler(durations.tolist(), config.train.max_batch_seconds, seed=0)
    ours = padding_fraction(durations, sampler.batches(0))
    # Random batching: the same greedy packing under the same cap, over a shuffled order.
    random_order = np.random.default_rng(0).permutation(len(durations))
    shuffled = padding_fraction(durations, sampler._pack(random_order, durations))
    print(f"padding  {len(durations)} utterances, batches of <= {config.train.max_batch_seconds:g} padded s: "
          f"duration sampler {ours:.1%}   random batching {shuffled:.1%}")

    batches = first_batches(config, args.steps + 1)
    utterances = [len(b["ids"]) for b in batches[1:]]
    audio = sum(b["feature_lengths"].sum().item() for b in batches[1:]) * config.features.hop_ms / 1000
    model = config.model
    print(f"train    {args.config}: {model.num_layers}x{model.hidden_size} BiLSTM, subsample {model.subsample}; "
          f"{args.steps} timed batches of {min(utterances)}-{max(utterances)} utterances, {audio:.0f} s of audio "
          f"in all, <= {config.train.max_batch_seconds:g} padded s each")
    print("| threads | competing process | packed float32 | dense float32 | dense bfloat16 | bfloat16 / float32 |")
    print("| ---: | --- | ---: | ---: | ---: | ---: |")
    rows = (("packed", "float32"), ("dense", "float32"), ("dense", "bfloat16"))
    for competing in (False, True):
        rival = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if competing else None
        try:
            for threads in sorted({1, 2, default_threads()}):
                speed = {row: throughput(config, batches, *row, threads, args.seconds) for row in rows}
                print(f"| {threads} | {'one busy-loop process' if competing else 'none started'} "
                      + "".join(f"| {speed[row]:.1f} " for row in rows)
                      + f"| {speed['dense', 'bfloat16'] / speed['dense', 'float32']:.2f}x |", flush=True)
        finally:
            if rival is not None:
                rival.kill()
                rival.wait()

    print("\nnetworks at 1 thread, none started (audio s/s):")
    print("| network | parameters | float32 | bfloat16 | bfloat16 / float32 |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, sizes in NETWORKS.items():
        network = dataclasses.replace(config, model=dataclasses.replace(config.model, **sizes))
        parameters = asr.model.CTCModel(network.model).num_parameters()
        speed = {p: throughput(network, batches, "dense", p, 1, args.seconds) for p in ("float32", "bfloat16")}
        print(f"| {name} | {parameters / 1e6:.2f}M | {speed['float32']:.1f} | {speed['bfloat16']:.1f} "
              f"| {speed['bfloat16'] / speed['float32']:.2f}x |", flush=True)
    print(machine_line())  # the load average again, after the run


if __name__ == "__main__":
    main()
