#!/usr/bin/env bash
# LibriSpeech recipe: download -> prepare -> train -> decode -> report, in stages.
#
#   ./run.sh --conf 100h --device cuda                  # train-clean-100 on one GPU, all stages
#   ./run.sh --conf 960h --nproc 8 --device cuda        # 960 h on the 8 GPUs of this machine
#   ./run.sh --conf 100h --stage 4 --avg 5              # decode the last 5 epochs averaged, report
#   ./run.sh --conf mini -- --train.max-steps 20        # after --: flags for `asr train`
#
# Stages:
#   1  download and extract the subsets into $root             (resumes; skips finished ones)
#   2  data/<subset>.jsonl, and data/train-$conf.jsonl joining the training subsets
#   3  train conf/$conf.yaml -> exp/$conf                       (resumes from exp/$conf/last.pt)
#   4  decode each test set with best.pt (or the average of the last --avg N epochs;
#      last.pt if no dev evaluation ran)                        -> exp/$conf/decode/
#   5  print the WER table                                      -> exp/$conf/decode/wer-table.txt
#
# --mirror URL replaces https://www.openslr.org/resources; --checksums FILE (md5sum.txt
# lines) replaces the published MD5s, for a mirror with other archives (local/make_mini_mirror.py).
# data/, exp/ and downloads/ go in --work-dir (default: this folder).
set -euo pipefail
recipe=$(cd "$(dirname "$0")" && pwd)

stage=1
stop_stage=5
conf=100h
nproc=1
avg=0
device=cpu
work_dir=$recipe
root=downloads
mirror_args=()
train_args=()
asr="${ASR:-asr}"
torchrun="${TORCHRUN:-torchrun}"
python="${PYTHON:-python3}"

while [ $# -gt 0 ]; do
  case "$1" in
    --stage) stage=$2; shift 2 ;;
    --stop-stage) stop_stage=$2; shift 2 ;;
    --conf) conf=$2; shift 2 ;;
    --nproc) nproc=$2; shift 2 ;;
    --avg) avg=$2; shift 2 ;;
    --device) device=$2; shift 2 ;;
    --work-dir) work_dir=$2; shift 2 ;;
    --root) root=$2; shift 2 ;;
    --mirror|--checksums) mirror_args+=("$1" "$2"); shift 2 ;;
    --) shift; train_args=("$@"); break ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
done

case $conf in
  mini) train_sets="train-clean-5"; dev_set=dev-clean-2; test_sets="dev-clean-2" ;;
  100h) train_sets="train-clean-100"; dev_set=dev-clean; test_sets="dev-clean dev-other test-clean test-other" ;;
  960h) train_sets="train-clean-100 train-clean-360 train-other-500"; dev_set=dev-clean
        test_sets="dev-clean dev-other test-clean test-other" ;;
  *) echo "error: unknown --conf $conf (mini, 100h or 960h)" >&2; exit 2 ;;
esac
subsets=$(echo $train_sets $dev_set $test_sets | tr ' ' '\n' | awk '!seen[$0]++' | tr '\n' ' ')
mkdir -p "$work_dir"
cd "$work_dir"
exp=exp/$conf

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
  $asr prepare librispeech --subsets $subsets --root "$root" ${mirror_args[@]+"${mirror_args[@]}"} --download-only
fi

if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
  $asr prepare librispeech --subsets $subsets --root "$root" ${mirror_args[@]+"${mirror_args[@]}"} --manifest-dir data
  for set in $train_sets; do cat "data/$set.jsonl"; done > "data/train-$conf.jsonl.tmp"
  mv "data/train-$conf.jsonl.tmp" "data/train-$conf.jsonl"
fi

if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
  if [ "$nproc" -gt 1 ]; then
    launch=("$torchrun" --standalone --nproc_per_node="$nproc" -m asr)
  else
    launch=($asr)
  fi
  "${launch[@]}" train --config "$recipe/conf/$conf.yaml" --exp-dir "$exp" --train.device "$device" \
    --train-manifest "data/train-$conf.jsonl" --dev-manifest "data/$dev_set.jsonl" \
    ${train_args[@]+"${train_args[@]}"}
fi

if [ "$stage" -le 4 ] && [ "$stop_stage" -ge 4 ]; then
  model=$exp/best.pt
  if [ "$avg" -gt 0 ]; then
    $asr average --exp-dir "$exp" --last "$avg"
    model=$exp/avg-last-$avg.pt
  elif [ ! -f "$model" ]; then
    model=$exp/last.pt
  fi
  echo "$model" > "$exp/decode-model.txt"
  for set in $test_sets; do
    $asr evaluate --model "$model" --manifest "data/$set.jsonl" --out-dir "$exp/decode" --device "$device"
  done
fi

if [ "$stage" -le 5 ] && [ "$stop_stage" -ge 5 ]; then
  "$python" - "$exp" $test_sets <<'PY' | tee "$exp/decode/wer-table.txt"
import json, sys
from pathlib import Path
exp, sets = Path(sys.argv[1]), sys.argv[2:]
print(f"model: {(exp / 'decode-model.txt').read_text().strip()}")
print(f"{'set':<12} {'WER':>8} {'CER':>8} {'utts':>6} {'words':>7}")
for name in sets:
    s = json.loads((exp / "decode" / f"wer-summary-{name}.json").read_text())
    print(f"{name:<12} {s['wer']:>8.2%} {s['cer']:>8.2%} {s['utterances']:>6} {s['words']:>7}")
PY
fi
