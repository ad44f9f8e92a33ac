#!/usr/bin/env bash
# The commands of docs/tutorial.md ("From log-mel to words"), in order, as stages.
#
#   docs/tutorial/run.sh                  # everything (603 s on a shared 2-core machine: docs/tutorial.md)
#   STAGE=4 docs/tutorial/run.sh          # only the pictures and the report again (stages 4-6)
#   STEPS=12 COUNT=24 DEV_COUNT=4 WORK=/tmp/t PICTURES=/tmp/t docs/tutorial/run.sh   # tests/test_tutorial.py
#
# Variables: STEPS (optimizer steps of training), COUNT and DEV_COUNT (training and dev utterances
# to synthesize), WORK (audio, manifests, model, LM, report; exp/ is not committed), PICTURES (where
# the PNGs go; the committed ones are docs/tutorial/*.png), STAGE / STOP_STAGE (first, last stage).
# Run it from the repository root; `asr` must be on the PATH (pip install -e .) and espeak-ng installed.
set -euo pipefail

STEPS=${STEPS:-600}
COUNT=${COUNT:-400}
DEV_COUNT=${DEV_COUNT:-20}
WORK=${WORK:-exp/tutorial}
PICTURES=${PICTURES:-docs/tutorial}
STAGE=${STAGE:-1}
STOP_STAGE=${STOP_STAGE:-6}
mkdir -p "$WORK" "$PICTURES"
stage() { [ "$STAGE" -le "$1" ] && [ "$1" -le "$STOP_STAGE" ]; }

if stage 1; then  # speech: espeak-ng reads sentences of the built-in grammar in many voices
  asr synth --out-dir "$WORK/audio" --manifest "$WORK/train.jsonl" --count "$COUNT" --engines espeak
  asr synth --out-dir "$WORK/audio" --manifest "$WORK/dev.jsonl" --count "$DEV_COUNT" --engines espeak --split dev
fi

if stage 2; then  # a tiny BiLSTM-CTC, an epoch checkpoint kept after every pass over the data
  asr train --config docs/tutorial/tiny.yaml --exp-dir "$WORK/exp" \
    --train-manifest "$WORK/train.jsonl" --dev-manifest "$WORK/dev.jsonl" --train.max-steps "$STEPS"
  asr plot "$WORK/exp" --out "$PICTURES/curves.png"
fi

if stage 3; then  # a word 3-gram LM and its lexicon from the training sentences
  asr lm build --text "$WORK/train.jsonl" --order 3 --out "$WORK/lm"
fi

FILE=$(python -c 'import json, sys; print(json.loads(open(sys.argv[1]).readline())["audio_path"])' "$WORK/dev.jsonl")
if stage 4; then  # one dev sentence after 1 epoch (the blank plateau) and after 3 (the first spikes)
  asr explain "$WORK/$FILE" --model "$WORK/exp/epoch-1.pt" --out "$PICTURES/epoch1.png"
  asr explain "$WORK/$FILE" --model "$WORK/exp/epoch-3.pt" --out "$PICTURES/epoch3.png"
fi

if stage 5; then  # the same sentence after training: greedy, then beam search with the LM
  asr explain "$WORK/$FILE" --model "$WORK/exp/last.pt" --out "$PICTURES/greedy.png"
  asr explain "$WORK/$FILE" --model "$WORK/exp/last.pt" --out "$PICTURES/beam.png" \
    --lm "$WORK/lm/lm.bin" --lexicon "$WORK/lm/lexicon.txt"
fi

if stage 6; then  # the whole dev set: WER/CER, confusions, the worst sentences with their pictures
  asr evaluate --model "$WORK/exp/last.pt" --manifest "$WORK/dev.jsonl" --out-dir "$WORK/decode" \
    --lm "$WORK/lm/lm.bin" --lexicon "$WORK/lm/lexicon.txt" --report "$WORK/report.html"
fi
