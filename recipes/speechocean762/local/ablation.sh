#!/usr/bin/env bash
# Issue 11's ablation: what each addition to the training data is worth at equal compute.
# Every row trains the `small` network for the same number of optimizer steps (default 1,000; the
# learning-rate schedule is sized to them) and is scored greedy on three dev sets:
#   dev           speechocean762 dev (1,260 utterances, 63 speakers never trained on)
#   dev_degraded  the same utterances through unseen rooms, noise, phone lines and codecs (local/degrade.py)
#   synth_dev     300 synthetic utterances from voice settings training never uses (stage 1)
# Rows: real speech only (conf/small.yaml); + on-the-fly augmentation (conf/small_aug.yaml); + the first
# 4,500 synthetic utterances of stage 1 (data/synth_pre.jsonl); + both.
# Run from recipes/speechocean762 after stage 1:   local/ablation.sh [STEPS]
# Killed at any point, the same command resumes (asr train continues from last.pt; finished decodes are kept).
set -euo pipefail
steps=${1:-1000}
asr=${ASR:-asr}

[ -f data/dev_degraded.jsonl ] || python local/degrade.py data/dev.jsonl data/dev_degraded data/dev_degraded.jsonl
rows=(
  "abl-real        small      data/train.jsonl"
  "abl-aug         small_aug  data/train.jsonl"
  "abl-synth       small      data/train.jsonl,data/synth_pre.jsonl"
  "abl-synth-aug   small_aug  data/train.jsonl,data/synth_pre.jsonl"
)
for row in "${rows[@]}"; do
  read -r name conf manifest <<<"$row"
  $asr train --config conf/$conf.yaml --exp-dir exp/$name --train-manifest "$manifest" --dev-manifest "" \
    --train.max-steps "$steps"
  for dev in dev dev_degraded synth_dev; do
    [ -f exp/$name/decode/wer-summary-$dev.json ] ||
      $asr evaluate --model exp/$name/last.pt --manifest data/$dev.jsonl --decoder greedy --out-dir exp/$name/decode
  done
done

python - "${rows[@]}" <<'PY'
import json, sys
print("| row | training data | dev WER / CER | dev_degraded WER / CER | synth_dev WER / CER |")
print("| --- | --- | --- | --- | --- |")
for row in sys.argv[1:]:
    name, conf, manifest = row.split()
    cells = []
    for dev in ("dev", "dev_degraded", "synth_dev"):
        s = json.load(open(f"exp/{name}/decode/wer-summary-{dev}.json"))
        cells.append(f"{s['wer']:.2%} / {s['cer']:.2%}")
    print(f"| {name} ({conf}) | {manifest} | " + " | ".join(cells) + " |")
PY
