#!/usr/bin/env bash
# Adaptation measurements (`asr adapt`): recipes/adapt/RESULTS.md quotes what this prints.
#
#   ./run.sh --dev-report DEV_REPORT.jsonl --text SENTENCES.txt [--stage 1 --stop-stage 3] [--speakers N]
#   ./run.sh --dev-report ... --stage 1 --stop-stage 1 --tag -noheld --adapt-args "--held-out 0"   # a variant
#
# DEV_REPORT.jsonl is speechocean762's 24 reporting dev speakers (recipes/speechocean762 stage 1
# writes data/dev_report.jsonl: no training of the bundled model saw them); SENTENCES.txt is a
# text file with a sentence a line (the shared Common Voice sentences, CC0) for the synthetic voice.
# Every `asr adapt` here uses its defaults, on the bundled model; wall times are of this machine.
#
# Stages:
#   1  per speaker: adapt on 10 of the speaker's utterances, test on the other 10
#      (default decoding: beam + LM + lexicon), before and after        -> exp/speakers/SPK/
#      summary table                                                    -> exp/speakers.md
#      (--tag T --adapt-args "...": a variant of the defaults, in exp/speakers/SPK/adaptedT, exp/speakersT.md)
#   2  one voice the bundled model never heard (flite awb, a held-out voice of asr.synth):
#      20.4 minutes to adapt on, 100 other sentences to test on         -> data/voice_*.jsonl, exp/voice/
#   3  what the voice model of stage 2 costs on everyone else: dev_report with it  -> exp/voice/dev_report/
set -euo pipefail
cd "$(dirname "$0")"

stage=1
stop_stage=3
dev_report=""
text=""
speakers=24
voice=flite:awb:1.00
tag=""
adapt_args=""
asr="${ASR:-asr}"
while [ $# -gt 0 ]; do
  case "$1" in
    --stage) stage=$2; shift 2 ;;
    --stop-stage) stop_stage=$2; shift 2 ;;
    --dev-report) dev_report=$2; shift 2 ;;
    --text) text=$2; shift 2 ;;
    --speakers) speakers=$2; shift 2 ;;
    --voice) voice=$2; shift 2 ;;
    --tag) tag=$2; shift 2 ;;
    --adapt-args) adapt_args=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

timed() {  # timed FILE COMMAND...: run it, write its wall seconds to FILE
  local start end
  start=$(date +%s.%N)
  "${@:2}"
  end=$(date +%s.%N)
  python3 -c "print(round($end - $start, 1))" > "$1"
}

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
  python local/per_speaker.py "$dev_report" --adapt 10 --out-dir data/speakers
  for folder in $(ls -d data/speakers/*/ | head -n "$speakers"); do
    spk=$(basename "$folder")
    exp=exp/speakers/$spk
    mkdir -p "$exp"
    [ -f "$exp/base/wer-summary-test.json" ] || \
      $asr evaluate --model ../../asr/pretrained/model.pt --manifest "$folder/test.jsonl" --out-dir "$exp/base"
    if [ ! -f "$exp/adapted$tag/wer-summary-test.json" ]; then
      # shellcheck disable=SC2086  # adapt_args holds several flags
      timed "$exp/seconds$tag" $asr adapt "$folder/adapt.jsonl" --out "$exp/model$tag.pt" $adapt_args
      $asr evaluate --model "$exp/model$tag.pt" --manifest "$folder/test.jsonl" --out-dir "$exp/adapted$tag"
    fi
  done
  python local/summarize.py exp/speakers "$tag" | tee "exp/speakers$tag.md"
fi

if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
  python local/synth_voice.py --text "$text" --voice "$voice" --skip 0 --count 370 \
    --out-dir data/voice/train --manifest data/voice_train.jsonl
  python local/synth_voice.py --text "$text" --voice "$voice" --skip 1000 --count 100 \
    --out-dir data/voice/test --manifest data/voice_test.jsonl
  $asr evaluate --model ../../asr/pretrained/model.pt --manifest data/voice_test.jsonl --out-dir exp/voice/base
  # One thread, and its CPU time next to the wall time: on a shared machine the CPU time is
  # what the run would take on an idle core.
  mkdir -p exp/voice
  /usr/bin/time -f "wall %e s, user %U s, sys %S s" -o exp/voice/time $asr adapt data/voice_train.jsonl \
    --out exp/voice/model.pt --threads 1 $adapt_args
  $asr evaluate --model exp/voice/model.pt --manifest data/voice_test.jsonl --out-dir exp/voice/adapted
  echo "asr adapt: $(cat exp/voice/time)"
fi

if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
  $asr evaluate --model ../../asr/pretrained/model.pt --manifest "$dev_report" --out-dir exp/dev_report_base
  $asr evaluate --model exp/voice/model.pt --manifest "$dev_report" --out-dir exp/voice/dev_report
fi
