#!/usr/bin/env bash
# Do two checkpoints transcribe alike? For the half-precision export: the float32 checkpoint a run
# tuned against the model `asr export` wrote from it (weights in float16).
#   local/compare_models.sh A.pt B.pt [MANIFEST] [OUT_DIR]     (from recipes/speechocean762)
# Decodes MANIFEST (default data/dev_report.jsonl) with each model, greedy and with its stored default
# decoding, and prints each WER/CER and how many utterances' transcripts differ.
set -euo pipefail
a=$1; b=$2; manifest=${3:-data/dev_report.jsonl}; out=${4:-exp/compare_models}
asr=${ASR:-asr}
set_name=$(basename "$manifest" .jsonl)
for decoding in greedy default; do
  flags=(); [ "$decoding" = greedy ] && flags=(--decoder greedy)
  for side in a b; do
    model=${!side}
    $asr evaluate --model "$model" --manifest "$manifest" "${flags[@]}" --out-dir "$out/$side-$decoding" | sed "s|^|$side ($model), $decoding: |"
  done
  differ=$(diff <(grep -P '\thyp\t' "$out/a-$decoding/recogs-$set_name.txt" | sort) \
                <(grep -P '\thyp\t' "$out/b-$decoding/recogs-$set_name.txt" | sort) | grep -c '^<' || true)
  echo "$decoding: $differ of $(grep -cP '\thyp\t' "$out/a-$decoding/recogs-$set_name.txt") transcripts differ"
done
