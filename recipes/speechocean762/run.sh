#!/usr/bin/env bash
# speechocean762 recipe: prepare -> train -> evaluate, in stages.
#
#   ./run.sh                                                # all stages, downloading the corpora first
#   ./run.sh --data-dir /path/to/speechocean762            # all stages from a copy on disk
#   ./run.sh --data-dir ... --stage 2 --stop-stage 2        # train only (resumes if killed)
#   ./run.sh --dry-run                                      # list the URLs stage 0 would fetch, fetch nothing
#
# Stages:
#   0  download the corpus from OpenSLR (resource 101, ~500 MB)  -> downloads/speechocean762/
#      (skipped with --data-dir; --mirror URL stands for https://www.openslr.org/resources)
#      and the LM text, 854 files checked against asr/corpora/lmtext.tsv (~104 MB: 851
#      Gutenberg books, the Common Voice sentences; --text-mirror URL says where from)
#                                                                -> downloads/text/
#      (with --text-dir DIR: that copy is checked instead, and used as is). Only stage 0
#      fetches anything: the later stages read what it fetched.
#   1  manifests for train/ and dev/ from the Kaldi data dirs    -> data/{train,dev}.jsonl
#      (the original download has test/ instead of dev/: all 125 test speakers become dev),
#      then $synth_count synthetic utterances, about 25 h (espeak-ng, flite, festival, piper;
#      1,034 voice settings; prompts: training transcripts, the Common Voice sentences and
#      Gutenberg books of the LM text, and a small grammar; never dev text), Ogg/Opus, one core,
#      niced, resumable (rerun the stage after a kill; --synth-count 0 skips it)
#                                                                -> data/synth/, data/synth.jsonl
#      and a synthetic dev set from held-out voices and text     -> data/synth_dev/, data/synth_dev.jsonl
#      and real + synthetic training speech together              -> data/train_synth.jsonl
#      and the manifests of its first 4,500 and 8,000 utterances (the bundled model's two parts)
#                                                                -> data/synth_pre.jsonl, data/synth_main.jsonl
#   2  train conf/$conf on its train_manifest, dev WER each epoch           -> exp/$conf/{best,last}.pt
#      (a conf with `init_from: exp/PARENT/last.pt` first trains conf/PARENT.yaml, if not done yet)
#   3  greedy decode of the conf's dev_manifest with the best checkpoint -> exp/$conf/decode/
#      and, for a conf that keeps epoch checkpoints, the average of the last (up to 5) of them;
#      the one with the lower greedy dev WER becomes                  -> exp/$conf/final.pt
#   4  a general English word 3-gram + 50k-word lexicon from the LM text
#      (~50M words of public-domain books and CC0 sentences) plus the training
#      transcripts, never a dev sentence (built once: an existing lm/lm.bin is reused), then the
#      LM weight and word score tuned on the conf's dev (dev-tuned!) and beam + LM decoding of it
#                                                  -> lm/, exp/$conf/tuned.pt, exp/$conf/decode-beam-lm/
#   5  export it as the bundled default model (--export only) -> ../../asr/pretrained/
#
# The bundled model is `./run.sh --data-dir DIR --conf bundled --stop-stage 5 --export` (it trains
# conf/bundled_pre.yaml, then conf/bundled.yaml from its weights; dev = the 24 reporting speakers);
# after retraining, `./run.sh --conf CONF --stage 4 --stop-stage 5 --export` re-tunes the LM
# weights for the new model and exports it (the LM itself does not depend on the model).
set -euo pipefail
cd "$(dirname "$0")"

stage=0
stop_stage=4
export_model=false
data_dir=""
mirror=""
synth_count=22000  # about 25 h of audio (4.1 s per utterance on average)
text_dir=""  # a copy of the LM text; default: fetched into downloads/text by stage 0
text_mirror=""
dry_run=false
conf=small
asr="${ASR:-asr}"

while [ $# -gt 0 ]; do
  case "$1" in
    --stage) stage=$2; shift 2 ;;
    --stop-stage) stop_stage=$2; shift 2 ;;
    --data-dir) data_dir=$2; shift 2 ;;
    --mirror) mirror=$2; shift 2 ;;
    --synth-count) synth_count=$2; shift 2 ;;
    --text-dir) text_dir=$2; shift 2 ;;
    --text-mirror) text_mirror=$2; shift 2 ;;
    --dry-run) dry_run=true; shift ;;
    --conf) conf=$2; shift 2 ;;
    --export) export_model=true; shift ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
done
exp=exp/$conf

if [ "$dry_run" = true ]; then
  if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
    if [ -z "$data_dir" ] && [ ! -f downloads/.speechocean762.tar.gz.done ]; then
      echo "${mirror:-https://www.openslr.org/resources}/101/speechocean762.tar.gz"
    fi
    if [ -z "$text_dir" ]; then
      $asr prepare text --root downloads --dry-run ${text_mirror:+--mirror "$text_mirror"}
    fi
  fi
  exit 0
fi

if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
  if [ -z "$data_dir" ]; then
    $asr prepare speechocean762 --root downloads --download-only ${mirror:+--mirror "$mirror"}
  fi
  if [ -z "$text_dir" ]; then
    $asr prepare text --root downloads ${text_mirror:+--mirror "$text_mirror"}
  else
    $asr prepare text --text-dir "$text_dir"
  fi
fi
data_dir=${data_dir:-downloads/speechocean762}
text_dir=${text_dir:-downloads/text}

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
  $asr prepare speechocean762 --corpus-dir "$data_dir" --manifest-dir data
  if [ "$synth_count" -gt 0 ]; then
    prompts=(--prompts data/train.jsonl:0.2 --prompts "$text_dir/common_voice_sentences.txt:0.35"
      --prompts "$text_dir/gutenberg:0.3" --grammar-weight 0.15 --prompt-pool 200000 --exclude-text data/dev.jsonl)
    nice -n 19 $asr synth "${prompts[@]}" --split dev --out-dir data/synth_dev --manifest data/synth_dev.jsonl \
      --count 300 --seed 0 --jobs 1
    nice -n 19 $asr synth "${prompts[@]}" --out-dir data/synth --manifest data/synth.jsonl --count "$synth_count" \
      --seed 0 --jobs 1
    cat data/train.jsonl data/synth.jsonl > data/train_synth.jsonl.tmp
    mv data/train_synth.jsonl.tmp data/train_synth.jsonl
    # A smaller --count plans the same first utterances, so these find their files made.
    nice -n 19 $asr synth "${prompts[@]}" --out-dir data/synth --manifest data/synth_pre.jsonl --count 4500 --seed 0
    nice -n 19 $asr synth "${prompts[@]}" --out-dir data/synth --manifest data/synth_main.jsonl --count 8000 --seed 0
  fi
fi
# The conf's dev set: data/dev.jsonl, or for the bundled model the reporting speakers only.
dev=$(sed -n 's/^dev_manifest: *//p' conf/$conf.yaml)
dev=${dev:-data/dev.jsonl}

if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
  # conf/$conf.yaml names its training manifest (real only, or real + synthetic)
  parent=$(sed -n 's|^  init_from: *exp/\([^/]*\)/.*|\1|p' conf/$conf.yaml)
  if [ -n "$parent" ]; then
    $asr train --config conf/$parent.yaml --exp-dir exp/$parent  # a finished run just says so
  fi
  $asr train --config conf/$conf.yaml --exp-dir $exp
fi

if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
  $asr evaluate --model $exp/best.pt --manifest $dev --out-dir $exp/decode
  cp $exp/best.pt $exp/final.pt.tmp
  # A conf that keeps epoch checkpoints (train.keep_last): average the last ones (up to 5) and
  # keep the average as final.pt only if its greedy dev WER is lower than best.pt's.
  epochs=$(ls $exp/epoch-*.pt 2>/dev/null | wc -l)
  if [ "$epochs" -ge 2 ]; then
    n=$(( epochs < 5 ? epochs : 5 ))
    $asr average --exp-dir $exp --last $n --out $exp/avg-last-$n.pt
    $asr evaluate --model $exp/avg-last-$n.pt --manifest $dev --out-dir $exp/decode-avg-last-$n
    wer() { sed -n 's/.*"wer": *\([0-9.]*\).*/\1/p' "$1/wer-summary-$(basename $dev .jsonl).json"; }
    if awk -v a="$(wer $exp/decode-avg-last-$n)" -v b="$(wer $exp/decode)" 'BEGIN { exit !(a < b) }'; then
      echo "final.pt = avg-last-$n.pt (greedy dev WER $(wer $exp/decode-avg-last-$n) < best.pt's $(wer $exp/decode))"
      cp $exp/avg-last-$n.pt $exp/final.pt.tmp
    else
      echo "final.pt = best.pt (greedy dev WER $(wer $exp/decode) <= avg-last-$n.pt's $(wer $exp/decode-avg-last-$n))"
    fi
  fi
  mv $exp/final.pt.tmp $exp/final.pt
fi

if [ "$stage" -le 4 ] && [ "$stop_stage" -ge 4 ]; then
  if [ -f lm/lm.bin ]; then
    echo "lm/lm.bin exists: reusing it (delete lm/ to rebuild)"
  else
    # --exclude: no dev sentence reaches the LM (asr lm build checks the text it wrote)
    $asr lm build --text "$text_dir" --in-domain data/train.jsonl --exclude data/dev.jsonl \
      --order 3 --vocab-size 50000 --prune 0,2,3 --quantize 8 --out lm
  fi
  $asr tune --model $exp/final.pt --manifest $dev --lm lm/lm.bin --lexicon lm/lexicon.txt \
    --lm-weights 0.5,0.75,1,1.5,2 --word-scores=0,1,2 --out $exp/tuned.pt
  $asr evaluate --model $exp/tuned.pt --manifest $dev --out-dir $exp/decode-beam-lm
fi

if [ "$stage" -le 5 ] && [ "$stop_stage" -ge 5 ] && [ "$export_model" = true ]; then
  $asr export $exp/tuned.pt --lm lm/lm.bin --lexicon lm/lexicon.txt
fi
