#!/usr/bin/env bash
# Does bfloat16 training learn as well as float32? The `small` network (conf/small.yaml, real speech only)
# trained for the same optimizer steps (default 2,000; the schedule is sized to them) from the same initial
# weights (same seed), once in each precision, 1 thread each; greedy dev CER on the 24 dev_report speakers
# every 500 steps. Prints the table of dev WER/CER at equal steps and each run's training speed.
# Run from recipes/speechocean762 after stage 1:   local/precision_check.sh [STEPS [SEED]]
# (SEED, default 0, draws the initial weights, batch order and augmentation; runs go to exp/precision[-sSEED]-*)
# Killed at any point, the same command resumes (asr train continues from last.pt).
set -euo pipefail
steps=${1:-2000}
seed=${2:-0}
asr=${ASR:-asr}
exp=exp/precision$([ "$seed" = 0 ] || echo "-s$seed")

for precision in bfloat16 float32; do
  $asr train --config conf/small.yaml --exp-dir $exp-$precision --dev-manifest data/dev_report.jsonl \
    --train.max-steps "$steps" --train.eval-every 500 --train.precision $precision --train.threads 1 \
    --train.seed "$seed"
done

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
