#!/usr/bin/env bash
# Does bfloat16 training learn as well as float32? The `small` network (conf/small.yaml, real speech only)
# trained for the same optimizer steps (default 2,000; the schedule is sized to them) from the same initial
# weights, once in each precision, side by side (1 thread each, so both see the same machine load); greedy dev
# CER on the 24 dev_report speakers every 500 steps. Prints the table of dev WER/CER at equal steps and each
# run's training speed.
# Run from recipes/speechocean762 after stage 1:   local/precision_check.sh [STEPS [SEED [INIT]]]
# SEED (default 0) draws the initial weights, batch order and augmentation. INIT, a checkpoint of the same
# network (for example ../../asr/pretrained/model.pt), starts both runs from its weights instead, at a
# fine-tuning peak learning rate of 5e-4: past the blank plateau, whose exit hangs on small differences.
# Runs go to exp/precision[-sSEED][-init]-{float32,bfloat16}; killed at any point, the same command resumes.
set -euo pipefail
steps=${1:-2000}
seed=${2:-0}
asr=${ASR:-asr}
init=${3:-}
exp=exp/precision$([ "$seed" = 0 ] || echo "-s$seed")$([ -z "$init" ] || echo "-init")
start=()
[ -z "$init" ] || start=(--train.init-from "$init" --train.lr 0.0005)

mkdir -p exp
pids=()
for precision in bfloat16 float32; do
  $asr train --config conf/small.yaml --exp-dir $exp-$precision --dev-manifest data/dev_report.jsonl \
    --train.max-steps "$steps" --train.eval-every 500 --train.precision $precision --train.threads 1 \
    --train.seed "$seed" "${start[@]}" >> $exp-$precision.log 2>&1 &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done  # a failed run stops the script here (set -e)

python - "$exp" <<'PY'
import json, sys
exp = sys.argv[1]
runs = {p: [json.loads(line) for line in open(f"{exp}-{p}/metrics.jsonl")] for p in ("float32", "bfloat16")}
dev = {p: {r["step"]: r for r in records if "dev_cer" in r} for p, records in runs.items()}
print("| step | float32 dev WER / CER | bfloat16 dev WER / CER | CER difference (points) |")
print("| ---: | --- | --- | ---: |")
for step in sorted(set(dev["float32"]) & set(dev["bfloat16"])):
    a, b = dev["float32"][step], dev["bfloat16"][step]
    print(f"| {step} | {a['dev_wer']:.2%} / {a['dev_cer']:.2%} | {b['dev_wer']:.2%} / {b['dev_cer']:.2%} "
          f"| {100 * (b['dev_cer'] - a['dev_cer']):+.2f} |")
for p, records in runs.items():
    speeds = [r["audio_sec_per_sec"] for r in records if "audio_sec_per_sec" in r]
    elapsed = max(r.get("elapsed_s", 0) for r in records)
    print(f"{p}: median {sorted(speeds)[len(speeds) // 2]:.1f} audio-s/s over {len(speeds)} log windows, "
          f"{elapsed / 60:.1f} min in all (dev evaluations included)")
PY
