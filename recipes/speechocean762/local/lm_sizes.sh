#!/usr/bin/env bash
# Which word LM fits the 40 MB package best? Builds each LM below from the same text as stage 4
# (--text-dir: the Gutenberg books and Common Voice sentences; plus the training transcripts; never a dev
# sentence), tunes the LM weight and word score of MODEL's beam search with it on dev_report (the 24 speakers
# no model trains on; dev-tuned, as the shipped weights are), decodes dev_report with the tuned weights, and
# prints one table: n-grams, LM + lexicon size, the package's total (model + LM + lexicon, `asr export`
# refuses > 40 MB) and dev_report WER / CER.
# Run from recipes/speechocean762 after stage 1:
#   local/lm_sizes.sh --text-dir DIR [--model ../../asr/pretrained/model.pt]
# Finished builds and decodes are kept: a rerun after a kill skips them.
set -euo pipefail
text_dir=downloads/text
model=../../asr/pretrained/model.pt
while [ $# -gt 0 ]; do
  case "$1" in
    --text-dir) text_dir=$2; shift 2 ;;
    --model) model=$2; shift 2 ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
done
asr=${ASR:-asr}
out=exp/lm-sizes
# name  order  vocabulary  lmplz --prune thresholds per order
rows=(
  "3g-50k    3  50000   0,2,3"
  "4g-50k    4  50000   0,2,3,4"
  "3g-100k   3  100000  0,2,3"
  "3g-200k   3  200000  0,3,4"
  "4g-100k   4  100000  0,3,4,5"
)
mkdir -p $out
for row in "${rows[@]}"; do
  read -r name order vocab prune <<<"$row"
  [ -f $out/$name/lm.bin ] ||
    $asr lm build --text "$text_dir" --in-domain data/train.jsonl --exclude data/dev.jsonl \
      --order "$order" --vocab-size "$vocab" --prune "$prune" --quantize 8 --out $out/$name
  if [ -f $out/$name/lm.arpa ]; then  # n-gram counts per order from the ARPA header, then drop the ARPA (10x the binary)
    head -20 $out/$name/lm.arpa | sed -n 's/^ngram [0-9]*=\([0-9]*\)/\1/p' | paste -sd/ > $out/$name/ngrams.txt
    rm $out/$name/lm.arpa
  fi
  [ -f $out/tuned-$name.pt ] ||
    $asr tune --model "$model" --manifest data/dev_report.jsonl --lm $out/$name/lm.bin \
      --lexicon $out/$name/lexicon.txt --lm-weights 0.5,0.75,1,1.5,2 --word-scores=-1,0,1 --out $out/tuned-$name.pt
  [ -f $out/decode-$name/wer-summary-dev_report.json ] ||
    $asr evaluate --model $out/tuned-$name.pt --manifest data/dev_report.jsonl --out-dir $out/decode-$name
done

python - "$model" "$out" "${rows[@]}" <<'PY'
import json, os, sys
import torch
model, out, rows = sys.argv[1], sys.argv[2], sys.argv[3:]
mb = lambda path: os.path.getsize(path) / 1e6
print("| LM | prune | n-grams (per order) | LM + lexicon | package | dev_report WER / CER | tuned lm_weight / word_score |")
print("| --- | --- | ---: | ---: | ---: | --- | --- |")
for row in rows:
    name, order, vocab, prune = row.split()
    lm, lexicon = f"{out}/{name}/lm.bin", f"{out}/{name}/lexicon.txt"
    build = json.load(open(f"{out}/{name}/build.json"))
    ngrams = open(f"{out}/{name}/ngrams.txt").read().strip()  # per order, 1-grams first
    summary = json.load(open(f"{out}/decode-{name}/wer-summary-dev_report.json"))
    decoding = torch.load(f"{out}/tuned-{name}.pt", map_location="cpu", weights_only=False)["decoding"]
    package = mb(model) + mb(lm) + mb(lexicon)
    print(f"| {order}-gram, {build['vocabulary']:,} words | {prune} | {ngrams} "
          f"| {mb(lm):.1f} + {mb(lexicon):.1f} MB | {package:.1f} MB{' (over 40)' if package > 40 else ''} "
          f"| {summary['wer']:.2%} / {summary['cer']:.2%} | {decoding['lm_weight']:g} / {decoding['word_score']:g} |")
PY
