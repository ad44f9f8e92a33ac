"""WER/CER of our bundled model, Whisper tiny.en and pocketsphinx on speechocean762 dev.

    python -m benchmarks.accuracy [--manifest recipes/speechocean762/data/dev.jsonl] [--limit N]

All three systems are scored by the same code (asr.evaluate.score) after the same
text normalization: `benchmark_text` spells out digits (the references write
numbers as words, "ZERO THREE FIVE ONE"; Whisper writes "0351") and then applies
asr.text.normalize_text, which the references go through as well. Our model
decodes with its stored decoding options (greedy, or beam + LM if the bundled
model ships one). The peers run in their own venv (benchmarks/peers.py installs
it on first use). Seconds are decoding wall time on this machine, model loading
excluded; they are only comparable within one run.

--limit N scores a seeded random subset of N utterances, so a quick run still
spans many speakers. --out-dir writes each system's
recogs-*/wer-summary-* files there. --subset NAME=MANIFEST (repeatable) adds a table
for the utterances of the run that MANIFEST also lists, from the same transcripts:
the bundled model trains on 39 dev speakers, so its fair figure is the table of
the other 24 (`--subset dev_report=recipes/speechocean762/data/dev_report.jsonl`).
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import time
from pathlib import Path

import torch

from asr.checkpoint import load_model
from asr.data.manifest import Utterance, read_manifest
from asr.decode import Hypothesis, make_decoder
from asr.evaluate import decode_utterances, score, write_report
from asr.pretrained import default_model_path
from asr.text import DIGIT_WORDS, normalize_text
from benchmarks.common import DEV_MANIFEST, machine_line
from benchmarks.peers import PEERS, transcribe_with_peer

_NUMBER = re.compile(r"\d+")


def spell_number(digits: str) -> str:
    """ "7" -> "seven", "42" -> "forty two"; longer runs and leading zeros digit by digit
    ("0351" -> "zero three five one"), as speechocean762 reads its digit sequences."""
    if len(digits) <= 2 and not (len(digits) == 2 and digits[0] == "0"):
        return normalize_text(digits)
    return " ".join(DIGIT_WORDS[int(d)] for d in digits)


def benchmark_text(text: str) -> str:
    """Digits spelled out, then asr.text.normalize_text (lower case, no punctuation)."""
    return normalize_text(_NUMBER.sub(lambda m: f" {spell_number(m.group())} ", text))


def select(utterances: list[Utterance], limit: int | None, seed: int = 0) -> list[Utterance]:
    if not limit or limit >= len(utterances):
        return utterances
    return random.Random(seed).sample(utterances, limit)


def run_ours(model_path: str | Path, utterances: list[Utterance]) -> tuple[str, dict[str, str], float]:
    loaded = load_model(model_path)
    options = loaded.decoding
    decoder = make_decoder(options, loaded.tokenizer)
    start = time.perf_counter()
    hyps = decode_utterances(loaded, utterances, decoder, num_workers=0)
    seconds = time.perf_counter() - start
    lm = " + LM" if options.lm else ""
    return f"asr bundled ({options.decoder}{lm})", {k: h.text for k, h in hyps.items()}, seconds


def parse_subset(value: str) -> tuple[str, set[str]]:
    """NAME=MANIFEST -> (NAME, the utterance ids MANIFEST lists)."""
    name, sep, path = value.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"{value!r}: expected NAME=MANIFEST")
    return name, {u.id for u in read_manifest(path)}


def print_table(title: str, rows: list[tuple[str, dict, float]], audio_seconds: float | None) -> None:
    """One row per system: WER, CER and, given audio_seconds, decode seconds and real-time factor."""
    timed = audio_seconds is not None
    print(f"\n{title}\n{'system':<32} {'WER':>8} {'CER':>8}" + (f" {'decode s':>9} {'RTF':>7}" if timed else ""))
    for name, summary, seconds in rows:
        print(f"{name:<32} {summary['wer']:>8.2%} {summary['cer']:>8.2%}"
              + (f" {seconds:>9.1f} {seconds / audio_seconds:>7.3f}" if timed else ""))
    print(f"({summary['utterances']} utterances, {summary['words']} reference words"
          + ("; RTF = decode seconds / audio seconds)" if timed else ")"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", default=str(DEV_MANIFEST))
    parser.add_argument("--model", help="checkpoint (default: the bundled model)")
    parser.add_argument("--limit", type=int, help="score a seeded random N-utterance subset")
    parser.add_argument("--systems", default="asr," + ",".join(PEERS),
                        help=f"comma-separated subset of asr,{','.join(PEERS)}")
    parser.add_argument("--threads", type=int, default=2, help="torch / CTranslate2 threads")
    parser.add_argument("--whisper-compute-type", default="int8")
    parser.add_argument("--out-dir", help="write recogs-SYSTEM.txt and wer-summary-SYSTEM.json here")
    parser.add_argument("--subset", type=parse_subset, action="append", default=[], metavar="NAME=MANIFEST",
                        help="also score the utterances MANIFEST lists (repeatable)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    print(machine_line())
    utterances = select(read_manifest(args.manifest), args.limit)
    audio_seconds = sum(u.duration for u in utterances)
    print(f"{args.manifest}: {len(utterances)} utterances, {audio_seconds / 60:.1f} min of audio", flush=True)
    rows, all_hyps = [], []
    for system in args.systems.split(","):
        if system == "asr":
            name, texts, seconds = run_ours(args.model or default_model_path(), utterances)
        elif system in PEERS:
            texts, seconds = transcribe_with_peer(system, utterances, args.threads, args.whisper_compute_type)
            name = f"{system} ({args.whisper_compute_type})" if system.startswith("whisper") else system
        else:
            parser.error(f"unknown system {system!r}")
        hyps = {utt_id: Hypothesis(benchmark_text(text)) for utt_id, text in texts.items()}
        summary, details = score(utterances, hyps)
        if args.out_dir:
            write_report(args.out_dir, system, summary, details)
        rows.append((name, summary, seconds))
        all_hyps.append(hyps)
        print(f"  {name}: WER {summary['wer']:.2%}  CER {summary['cer']:.2%}", file=sys.stderr, flush=True)

    print_table(args.manifest, rows, audio_seconds)
    for subset_name, ids in args.subset:
        subset = [u for u in utterances if u.id in ids]
        if not subset:
            print(f"\n{subset_name}: none of its utterances is in this run")
            continue
        subset_rows = [(name, score(subset, hyps)[0], seconds) for (name, _, seconds), hyps in zip(rows, all_hyps)]
        print_table(f"{subset_name}: {len(subset)} of the {len(utterances)}", subset_rows, None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
