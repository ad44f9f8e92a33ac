"""Long-audio transcription: real-time factor and peak memory, ours against Whisper tiny.en and pocketsphinx.

    python -m benchmarks.transcribe [--model CKPT] [--minutes 1 10 60]
        [--threads 2] [--asr-threads N] [--default-minutes 1 10] [--no-peers]

1. Inputs: speechocean762 dev utterances, in manifest order, concatenated into
   one 16 kHz 16-bit wav per length (whole utterances, so each input is a dev
   subset with a known transcript; benchmarks.recordings, no pauses), under
   benchmarks/.transcribe-work/ (git-ignored).
2. Ours: each input is transcribed by `asr.transcribe.transcribe` (cut at pauses
   by silero-vad into segments of at most 20 s, batches of 8) in a fresh process
   with asr's own default threads (half the cores for torch, beside the thread that
   reads, cuts and featurizes ahead and the one that decodes; --asr-threads N sets
   torch's) and the default precision (asr.precision: bfloat16 on
   a CPU with BF16 instructions), greedy and, on the --default-minutes inputs, with the
   model's default decoding (the bundled model: beam 50, word 3-gram LM, 50,000-word
   lexicon). RTF = transcription wall time / audio duration (model loading excluded);
   peak RSS is the process's own maximum, so it includes Python, torch and the model.
3. Peers on the 10-minute input (benchmarks/peers.py installs them in their own
   venv): Whisper tiny.en with faster-whisper (int8, beam 5, --threads threads,
   long-form: it walks the file in 30 s chunks) and pocketsphinx (en-us,
   single-threaded, given the input's utterances one at a time, see
   SEGMENTED_PEERS). Their decoding time excludes model loading too.
4. Whole processes on the peers' input, start-up and model loading included, what a user
   waits for: `asr transcribe FILE` (default decoding, and --decoder greedy) as
   a command, against each peer's worker process (its start-up, imports, model loading and
   decoding; the peers' wav files are written before it starts).
5. Accuracy beside speed: WER of every system on the 10-minute input's transcript,
   all through the same normalization (benchmarks.accuracy's benchmark_text).
   Ours is also decoded utterance by utterance (asr.evaluate) on the same
   utterances, which shows what cutting long audio costs, if anything
   (benchmarks/long_audio.py measures that in detail).
6. A torch.profiler summary of ours, greedy, on the 1-minute input: where the time goes.

Figures from the same run are comparable; the machine line says what ran them.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import soundfile as sf

from asr.data.manifest import Utterance, read_manifest
from asr.metrics import align_words
from benchmarks.accuracy import benchmark_text
from benchmarks.common import DEV_MANIFEST, default_model, machine_line, peak_rss_mb
from benchmarks.recordings import join_utterances, leading_utterances

WORK = Path(__file__).resolve().parent / ".transcribe-work"
# pocketsphinx decodes an utterance at a time: given a 10-minute file as one utterance
# it ran at RTF 0.85 with a WER over 100% in a trial, so it gets the input's own
# utterances (the same audio, cut where the dev utterances meet).
SEGMENTED_PEERS = {"pocketsphinx-en-us"}


def make_input(utterances: list[Utterance], minutes: float, folder: Path) -> tuple[Path, str, list[Utterance]]:
    """The first whole utterances that reach `minutes`, back to back: (wav, reference text, utterances used).
    A wav of the right length from an earlier run is reused."""
    path = folder / f"dev-{minutes:g}min.wav"
    used = leading_utterances(utterances, minutes)
    seconds = sum(u.duration for u in used)
    if not path.exists() or abs(sf.info(path).duration - seconds) > 1.0:
        join_utterances(used, path)
    return path, " ".join(u.text for u in used), used


def wer(reference: str, hypothesis: str) -> float:
    return align_words(benchmark_text(reference), benchmark_text(hypothesis))[0].rate


def worker(args) -> None:
    """In a fresh process: load the model, transcribe one input, print {seconds, rss_mb, text}."""

    from asr.checkpoint import load_model
    from asr.decode import DecodingOptions, make_decoder
    from asr.threads import set_threads
    from asr.transcribe import transcribe

    set_threads(args.asr_threads)  # None: asr's own default
    loaded = load_model(args.model, precision="auto")
    decoder = make_decoder(loaded.decoding if args.decoder == "default" else DecodingOptions(decoder=args.decoder),
                           loaded.tokenizer)
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            transcribe(loaded, args.worker, decoder)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12), file=sys.stderr)
        return
    start = time.perf_counter()
    hyp = transcribe(loaded, args.worker, decoder)
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "rss_mb": peak_rss_mb(), "text": hyp.text}))


def run_ours(path: Path, args, decoder: str, profile: bool = False) -> dict:
    command = [sys.executable, "-m", "benchmarks.transcribe", "--worker", str(path), "--model", str(args.model),
               *_asr_threads(args), "--decoder", decoder] + (["--profile"] if profile else [])
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"worker failed on {path}:\n{result.stderr}")
    return result if profile else json.loads(result.stdout.strip().splitlines()[-1])


def _asr_threads(args) -> list[str]:
    return ["--threads", str(args.asr_threads)] if args.asr_threads else []


def whole_process(path: Path, args, decoder: str) -> dict:
    """`asr transcribe path` as a user runs it: {seconds (wall, start-up included), text}."""
    command = [sys.executable, "-m", "asr", "transcribe", str(path), *_asr_threads(args),
               "--model", str(args.model), *(["--decoder", "greedy"] if decoder == "greedy" else [])]
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"asr transcribe failed on {path}:\n{result.stderr}")
    return {"seconds": seconds, "text": result.stdout.split("\t", 1)[1].strip()}


def per_utterance_wer(model: Path, utterances: list[Utterance], threads: int | None) -> float:
    from asr.checkpoint import load_model
    from asr.decode import GreedyDecoder
    from asr.evaluate import decode_utterances
    from asr.threads import set_threads

    set_threads(threads)
    loaded = load_model(model)
    hyps = decode_utterances(loaded, utterances, GreedyDecoder(loaded.tokenizer), num_workers=0)
    return wer(" ".join(u.text for u in utterances), " ".join(hyps[u.id].text for u in utterances))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, help="default: the recipe's best.pt, else the bundled model")
    parser.add_argument("--manifest", default=str(DEV_MANIFEST))
    parser.add_argument("--minutes", type=float, nargs="+", default=[1, 10, 60])
    parser.add_argument("--default-minutes", type=float, nargs="*", default=[1, 10],
                        help="inputs also decoded with the model's default decoding (bundled: beam + LM)")
    parser.add_argument("--peer-minutes", type=float, default=10, help="the input the peers run on")
    parser.add_argument("--threads", type=int, default=2, help="the peers' threads (the cores to use)")
    parser.add_argument("--asr-threads", type=int, help="asr's torch threads (default: asr's own default)")
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # internal: transcribe this file and report
    parser.add_argument("--decoder", default="greedy", help=argparse.SUPPRESS)
    parser.add_argument("--profile", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    args.model = args.model or default_model()

    print(machine_line())
    print(f"model: {args.model}; asr: {args.asr_threads or 'its default'} torch threads; peers: {args.threads} threads")
    utterances = read_manifest(args.manifest)
    inputs = {m: make_input(utterances, m, WORK) for m in sorted({*args.minutes, args.peer_minutes})}
    rows = []  # (system, minutes, audio seconds, result dict)
    for minutes in args.minutes:
        path, _, _ = inputs[minutes]
        for decoder in ["greedy"] + (["default"] if minutes in args.default_minutes else []):
            result = run_ours(path, args, decoder)
            rows.append((f"asr {decoder}", minutes, sf.info(path).duration, result))
            print(f"  asr {decoder} {minutes:g} min: {result['seconds']:.1f} s, {result['rss_mb']:.0f} MiB",
                  file=sys.stderr, flush=True)

    path, reference, used = inputs[args.peer_minutes]
    duration = sf.info(path).duration
    processes = []  # (system, {seconds, text}): whole processes on the peers' input
    for decoder in ("default", "greedy"):
        result = whole_process(path, args, decoder)
        processes.append((f"asr transcribe ({decoder})", result))
        print(f"  asr transcribe ({decoder}), whole process: {result['seconds']:.1f} s", file=sys.stderr, flush=True)
    if not args.no_peers:
        from benchmarks.peers import PEERS, transcribe_with_peer

        whole = Utterance(path.stem, str(path), duration, reference, "dev")
        for system in PEERS:
            items = used if system in SEGMENTED_PEERS else [whole]
            timing = {}
            texts, seconds = transcribe_with_peer(system, items, args.threads, timing=timing)
            result = {"seconds": seconds, "text": " ".join(texts[item.id] for item in items)}
            rows.append((system, args.peer_minutes, duration, result))
            processes.append((system, {"seconds": timing["process_seconds"], "text": result["text"]}))
            print(f"  {system} {args.peer_minutes:g} min: {seconds:.1f} s", file=sys.stderr, flush=True)

    print(f"\n{'system':<22} {'input':>6} {'RTF':>7} {'x realtime':>10} {'peak RSS':>9} {'WER':>7}")
    for system, minutes, seconds, result in rows:
        rtf = result["seconds"] / seconds
        rss = f"{result['rss_mb']:.0f} MiB" if "rss_mb" in result else "-"
        score = f"{wer(reference, result['text']):.1%}" if minutes == args.peer_minutes else "-"
        print(f"{system:<22} {minutes:>4g} m {rtf:>7.4f} {1 / rtf:>9.0f}x {rss:>9} {score:>7}")
    print(f"\nwhole processes on the {args.peer_minutes:g}-minute input (start-up and model loading included):")
    print(f"{'system':<32} {'seconds':>8} {'RTF':>7} {'WER':>7}")
    for system, result in processes:
        print(f"{system:<32} {result['seconds']:>8.1f} {result['seconds'] / duration:>7.4f} "
              f"{wer(reference, result['text']):>7.1%}")
    ours = dict(processes)["asr transcribe (default)"]["seconds"]
    for system, result in processes[2:]:
        print(f"asr transcribe (default decoding) vs {system}, whole processes: {result['seconds'] / ours:.1f}x faster")
    for system, minutes, seconds, result in rows:
        if system == "asr greedy" and minutes == args.peer_minutes:
            print(f"asr greedy RTF on the {minutes:g}-minute input, model loading excluded: "
                  f"{result['seconds'] / seconds:.4f}")
    print(f"asr greedy, utterance by utterance (asr evaluate) on the same {len(used)} utterances: "
          f"WER {per_utterance_wer(args.model, used, args.asr_threads):.1%}")

    greedy = {minutes: result for system, minutes, _, result in rows if system == "asr greedy"}
    if len(greedy) > 1:
        low, high = min(greedy), max(greedy)
        print(f"peak RSS {high:g} min / {low:g} min: {greedy[high]['rss_mb'] / greedy[low]['rss_mb']:.2f}x")
    peer_rtf = {system: result["seconds"] / seconds for system, minutes, seconds, result in rows
                if minutes == args.peer_minutes}
    for system in [s for s in peer_rtf if not s.startswith("asr") and "asr greedy" in peer_rtf]:
        print(f"asr greedy vs {system} on {args.peer_minutes:g} min: "
              f"{peer_rtf[system] / peer_rtf['asr greedy']:.1f}x faster")
    if 1 in args.minutes:
        print("\nprofile, asr greedy on the 1-minute input (torch.profiler, by self CPU time):")
        print(run_ours(inputs[1][0], args, "greedy", profile=True).stderr)


if __name__ == "__main__":
    main()
