#!/usr/bin/env bash
# speechocean762 recipe: prepare -> train -> evaluate, in stages.
#
#   ./run.sh --data-dir /path/to/speechocean762            # all stages
#   ./run.sh --data-dir ... --stage 2 --stop-stage 2        # train only (resumes if killed)
#
# Stages:
#   1  manifests for train/ and dev/ from the Kaldi data dirs    -> data/{train,dev}.jsonl
#   2  train conf/$conf on train, dev WER each epoch            -> exp/$conf/{best,last}.pt
#   3  greedy decode of dev with the best checkpoint             -> exp/$conf/decode/
set -euo pipefail
cd "$(dirname "$0")"

stage=1
stop_stage=3
data_dir=""
conf=small
asr="${ASR:-asr}"

while [ $# -gt 0 ]; do
  case "$1" in
    --stage) stage=$2; shift 2 ;;
    --stop-stage) stop_stage=$2; shift 2 ;;
    --data-dir) data_dir=$2; shift 2 ;;
    --conf) conf=$2; shift 2 ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
done
exp=exp/$conf

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
  [ -n "$data_dir" ] || { echo "error: stage 1 needs --data-dir (a local copy with train/ and dev/)" >&2; exit 2; }
  for part in train dev; do
    $asr prepare kaldi "$data_dir/$part" data/$part.jsonl
  done
fi

if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
  $asr train --config conf/$conf.yaml --exp-dir $exp \
    --train_manifest data/train.jsonl --dev_manifest data/dev.jsonl
fi

if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
  $asr evaluate --model $exp/best.pt --manifest data/dev.jsonl --out-dir $exp/decode
fi
