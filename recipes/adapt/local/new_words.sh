#!/usr/bin/env bash
# Can a word that only the lexicon knows come out of the bundled model's beam search?
# Four espeak-ng sentences, each with one made-up word, decoded with the bundled lexicon and
# with the same lexicon plus the four words (as `asr adapt` adds DATA's and --text's words;
# the LM is unchanged and scores them as its <unk>), and greedily for reference.
#   local/new_words.sh OUT_DIR
set -euo pipefail
out=$1
asr="${ASR:-asr}"
mkdir -p "$out"
for text in "my friend zorbly plays the piano" "call doctor kwame tomorrow" "the grumbo was late again" \
            "we ate at zanelli last night"; do
  espeak-ng -v en-us -s 140 -w "$out/$(echo "$text" | tr ' ' _).wav" "$text"
done
lexicon=$(python -c "from asr.pretrained import PRETRAINED_DIR; print(PRETRAINED_DIR / 'lexicon.txt')")
cp "$lexicon" "$out/lexicon_new.txt"
printf "zorbly\tz o r b l y |\nkwame\tk w a m e |\ngrumbo\tg r u m b o |\nzanelli\tz a n e l l i |\n" >> "$out/lexicon_new.txt"
echo "== bundled lexicon"; $asr transcribe "$out"/*.wav --lexicon "$lexicon"
echo "== with the new words"; $asr transcribe "$out"/*.wav --lexicon "$out/lexicon_new.txt"
echo "== greedy"; $asr transcribe "$out"/*.wav --decoder greedy
