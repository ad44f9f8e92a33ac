"""Long recordings against short clips: does one long file transcribe as well as its utterances one by one?

    python -m benchmarks.long_audio [--manifest recipes/speechocean762/data/dev.jsonl] [--count 100]
        [--seed 0] [--model CKPT] [--threads 1] [--repeat 4] [--baseline COMMIT|CHECKOUT] [--no-baseline]

What a new user tried with the bundled model, measured:
1. Input: --count speechocean762 dev utterances (a seeded random sample, so many speakers)
   joined in one 16 kHz wav with random pauses of 0.2-2 s between them, under
   benchmarks/.long-audio-work/ (git-ignored). A pause is not digital silence: it is
   Gaussian noise at the level of the quietest 100 ms of the utterance before it (its
   room tone), so a VAD cannot find the joins by looking for zeros (benchmarks.recordings).
2. Systems, each in a fresh process with --threads torch threads, decoding with the
   model's stored options (the bundled model: beam search + its word 3-gram LM):
   (a) utterance by utterance: the clips as `asr evaluate` decodes them;
   (b) fixed windows: `asr transcribe` as it was before recordings were cut at pauses
       (--baseline: commit 6c71d9b, extracted from this clone's history into the work
       folder, or the folder of a checkout of that code, for a clone without that commit):
       20 s windows with 4 s overlap, stitched; and with 5 s windows, 1 s overlap;
   (c) cut at pauses: `asr.transcribe.transcribe` with silero-vad (the default), and
       with webrtcvad and an energy threshold plugged into the same segmenter (the
       choice of VAD), and with other pads around the speech (the default 0.3 s).
   WER/CER are corpus figures of the whole transcript against the joined references,
   after benchmark_text (benchmarks.accuracy). RTF = transcription wall time /
   audio duration (model loading excluded). Peak RSS is the process's own maximum.
3. Memory against length: (c) on a --repeat times longer recording (the same
   utterances, new pauses); peak RSS of the two runs is compared.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from benchmarks.common import DEV_MANIFEST, ROOT, peak_rss_mb
from benchmarks.recordings import join_utterances

WORK = Path(__file__).resolve().parent / ".long-audio-work"
BASELINE = "6c71d9b"  # asr before this benchmark: fixed windows, stitched (asr/transcribe.py of that commit)
SILERO = "(c) cut at pauses: silero-vad (default)"


# ---- detectors compared with silero (same interface as asr.vad.SileroVAD) -------------------


class WebrtcVAD:
    """webrtcvad (aggressiveness 2): 30 ms frames, speech 1.0 or 0.0."""

    FRAME = 480
    frame_seconds = FRAME / 16000

    def __init__(self):
        import webrtcvad

        self.vad = webrtcvad.Vad(2)

    def probabilities(self, blocks):
        pending = np.zeros(0, dtype=np.float32)
        for block in itertools.chain(blocks, [np.zeros(self.FRAME - 1, dtype=np.float32)]):  # flushes a last frame
            pending = np.concatenate([pending, block])
            count = len(pending) // self.FRAME
            pcm = (np.clip(pending[: count * self.FRAME], -1, 1) * 32767).astype(np.int16)
            for frame in pcm.reshape(count, self.FRAME):
                yield float(self.vad.is_speech(frame.tobytes(), 16000))
            pending = pending[count * self.FRAME:]


class EnergyVAD:
    """Frame energy against a running noise floor (the 5th percentile of the last 10 s of frames):
    speech probability rises from 0 at 6 dB above the floor to 1 at 18 dB."""

    FRAME = 512
    frame_seconds = FRAME / 16000

    def probabilities(self, blocks):
        history = np.full(round(10 / self.frame_seconds), np.nan)  # dB of the last 10 s of frames
        pending, seen = np.zeros(0, dtype=np.float32), 0
        for block in itertools.chain(blocks, [np.zeros(self.FRAME - 1, dtype=np.float32)]):
            pending = np.concatenate([pending, block])
            count = len(pending) // self.FRAME
            frames = pending[: count * self.FRAME].reshape(count, self.FRAME)
            for db in 10 * np.log10((frames.astype(np.float64) ** 2).mean(axis=1) + 1e-10):
                history[seen % len(history)] = db
                seen += 1
                floor = np.nanpercentile(history, 5)
                yield float(np.clip((db - floor - 6) / 12, 0, 1))
            pending = pending[count * self.FRAME:]


# ---- the input ------------------------------------------------------------------------------


def make_recording(utterances, seed: int, path: Path) -> tuple[Path, str]:
    """Join the utterances with 0.2-2 s room-tone pauses (seeded) into `path`; returns (path, reference)."""
    return path, join_utterances(utterances, path, pauses=(0.2, 2.0), seed=seed)


def baseline_tree(baseline: str) -> Path | None:
    """A folder holding only the asr/ package of `baseline`, to run first on sys.path: for a checkout
    (a folder with asr/transcribe.py), a link to its asr/; else a commit of this clone, extracted once
    into the work folder with `git archive`. None when it is neither (a clone without that history)."""
    checkout = Path(baseline)
    if (checkout / "asr" / "transcribe.py").is_file():
        if "def plan_windows" not in (checkout / "asr" / "transcribe.py").read_text():
            raise SystemExit(f"error: {checkout}: its asr/transcribe.py has no fixed windows (plan_windows); "
                             f"--baseline wants a checkout from before recordings were cut at pauses")
        folder = WORK / "asr-checkout"
        folder.mkdir(parents=True, exist_ok=True)
        link = folder / "asr"
        link.unlink(missing_ok=True)
        link.symlink_to((checkout / "asr").resolve(), target_is_directory=True)
        return folder
    folder = WORK / f"asr-{baseline}"
    if (folder / "asr" / "transcribe.py").exists():
        return folder
    try:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", baseline, "asr"], capture_output=True)
    except OSError:  # no git on this machine
        return None
    if archive.returncode != 0:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    return folder


# ---- one system in a fresh process -----------------------------------------------------------


def worker(args) -> None:
    """Load the model, transcribe --input one way, print {seconds, rss_mb, text, inputs}."""
    import torch

    from asr.checkpoint import load_model
    from asr.decode import make_decoder

    torch.set_num_threads(args.threads)
    loaded = load_model(args.model)
    options = loaded.decoding
    if isinstance(options, dict):  # the baseline's asr stores raw fields; its pretrained module resolves them
        from asr.pretrained import stored_decoding

        options = stored_decoding(loaded)
    if args.decoder:
        options = dataclasses.replace(options, decoder=args.decoder)
    decoder = make_decoder(options, loaded.tokenizer)
    if args.system == "utterances":
        from asr.data.manifest import read_manifest
        from asr.evaluate import decode_utterances

        utterances = read_manifest(args.input)
        start = time.perf_counter()
        hyps = decode_utterances(loaded, utterances, decoder, num_workers=0)
        seconds, inputs = time.perf_counter() - start, len(utterances)
        text = " ".join(hyps[u.id].text for u in utterances)
    elif args.system == "windows":  # the baseline's asr: run() puts its folder first on sys.path
        from asr.transcribe import TranscribeOptions, plan_windows, transcribe_file

        windowing = TranscribeOptions(window_seconds=args.window, overlap_seconds=args.overlap)
        inputs = len(plan_windows(sf.info(args.input).duration, loaded.frame_seconds, windowing))
        start = time.perf_counter()
        text = transcribe_file(loaded, args.input, decoder, windowing).text
        seconds = time.perf_counter() - start
    else:
        from asr import transcribe
        from asr.transcribe import TranscribeOptions
        from asr.vad import SegmentOptions

        detectors = {"silero": lambda: transcribe.load_vad("silero"), "webrtc": WebrtcVAD, "energy": EnergyVAD}
        detector = detectors[args.vad]()
        transcribe.load_vad = lambda name: detector  # loaded before the clock starts, like the model
        counted = []
        run_model = transcribe.run_model
        transcribe.run_model = lambda loaded, segments: counted.extend(segments) or run_model(loaded, segments)
        options = TranscribeOptions(segments=SegmentOptions(pad_seconds=args.pad))
        start = time.perf_counter()
        text = transcribe.transcribe(loaded, args.input, decoder, options).text
        seconds, inputs = time.perf_counter() - start, len(counted)
    print(json.dumps({"seconds": seconds, "rss_mb": peak_rss_mb(), "text": text, "inputs": inputs}))


def run(args, system: str, input_path: Path, asr_folder: Path | None = None, **flags) -> dict:
    """One system in a fresh `python -m benchmarks.long_audio --worker` process. With asr_folder (a folder
    holding only an asr/ package), the worker runs in it with PYTHONPATH=asr_folder:ROOT (`python -m` puts
    the working folder first on sys.path), so asr comes from asr_folder and this package from ROOT.
    Every path passed is absolute, so the working folder does not matter to them."""
    command = [sys.executable, "-m", "benchmarks.long_audio", "--worker", "--system", system,
               "--input", str(input_path), "--model", str(args.model), "--threads", str(args.threads)]
    command += [f"--{key}={value}" for key, value in flags.items()]
    command += ["--decoder", args.decoder] if args.decoder else []
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    if asr_folder:
        env["PYTHONPATH"] = os.pathsep.join([str(asr_folder), str(ROOT)])
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=asr_folder)
    if result.returncode != 0:
        raise SystemExit(f"{system} failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--manifest", default=str(DEV_MANIFEST.relative_to(ROOT)),
                        help="dev manifest, relative to the repository or absolute")
    parser.add_argument("--count", type=int, default=100, help="utterances joined into the recording")
    parser.add_argument("--seed", type=int, default=0, help="which utterances, and the pauses")
    parser.add_argument("--model", type=Path, help="default: the bundled model")
    parser.add_argument("--decoder", choices=["greedy", "beam"], help="default: the model's stored decoding")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of each system")
    parser.add_argument("--repeat", type=int, default=4, help="the memory run's recording is this many times longer")
    parser.add_argument("--baseline", default=BASELINE,
                        help="(b)'s asr: a commit of this clone, or a checkout's folder (a clone without that commit)")
    parser.add_argument("--no-baseline", action="store_true", help="skip (b), the fixed windows of --baseline")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--system", help=argparse.SUPPRESS)
    parser.add_argument("--input", help=argparse.SUPPRESS)
    parser.add_argument("--vad", default="silero", help=argparse.SUPPRESS)
    parser.add_argument("--pad", type=float, default=0.3, help=argparse.SUPPRESS)
    parser.add_argument("--window", type=float, default=20.0, help=argparse.SUPPRESS)
    parser.add_argument("--overlap", type=float, default=4.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)

    from asr.data.manifest import read_manifest, write_manifest
    from asr.metrics import char_errors, word_errors
    from asr.pretrained import default_model_path
    from benchmarks.accuracy import benchmark_text
    from benchmarks.common import machine_line

    args.model = (args.model or default_model_path()).resolve()
    manifest = Path(args.manifest) if Path(args.manifest).is_absolute() else ROOT / args.manifest
    utterances = random.Random(args.seed).sample(read_manifest(manifest), args.count)
    clips = WORK / f"clips-{args.count}-{args.seed}.jsonl"
    write_manifest(utterances, clips)
    recording, reference = make_recording(utterances, args.seed, WORK / f"joined-{args.count}-{args.seed}.wav")
    longer, longer_reference = make_recording(utterances * args.repeat, args.seed + 1,
                                              WORK / f"joined-{args.count}x{args.repeat}-{args.seed}.wav")
    duration = sf.info(recording).duration
    print(machine_line())
    print(f"model: {args.model}; {args.threads} torch thread(s); input: {args.count} utterances of {manifest.name} "
          f"(seed {args.seed}), {sum(u.duration for u in utterances):.0f} s of clips, joined with pauses: "
          f"{duration:.0f} s; {len(reference.split())} reference words", flush=True)

    systems = [("(a) utterance by utterance", "utterances", clips, None, {})]
    baseline = None if args.no_baseline else baseline_tree(args.baseline)
    if baseline:
        systems += [("(b) fixed 20 s windows, 4 s overlap", "windows", recording, baseline, {}),
                    ("(b) fixed 5 s windows, 1 s overlap", "windows", recording, baseline,
                     {"window": 5.0, "overlap": 1.0})]
    elif not args.no_baseline:
        print(f"(b) skipped: {args.baseline} is neither a commit of this clone nor a checkout's folder; "
              f"--baseline CHECKOUT takes a checkout of commit {BASELINE}")
    systems += [(SILERO, "segments", recording, None, {}),
                ("(c) cut at pauses: webrtcvad", "segments", recording, None, {"vad": "webrtc"}),
                ("(c) cut at pauses: energy threshold", "segments", recording, None, {"vad": "energy"}),
                ("(c) silero-vad, pad 0.1 s", "segments", recording, None, {"pad": 0.1}),
                ("(c) silero-vad, pad 0.6 s", "segments", recording, None, {"pad": 0.6})]
    rows = []
    for name, system, path, asr_folder, flags in systems:
        result = run(args, system, path, asr_folder, **flags)
        seconds = sum(u.duration for u in utterances) if system == "utterances" else duration
        ref, hyp = benchmark_text(reference), benchmark_text(result["text"])
        rows.append((name, result, word_errors(ref, hyp).rate, char_errors(ref, hyp).rate, result["seconds"] / seconds))
        print(f"  {name}: {result['seconds']:.1f} s", file=sys.stderr, flush=True)
    long_run = run(args, "segments", longer)
    long_wer = word_errors(benchmark_text(longer_reference), benchmark_text(long_run["text"])).rate

    print("\n| system | model inputs | WER | CER | words out / ref | RTF | peak RSS |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, result, wer, cer, rtf in rows:
        print(f"| {name} | {result['inputs']} | {wer:.1%} | {cer:.1%} | {len(result['text'].split())} / "
              f"{len(reference.split())} | {rtf:.4f} | {result['rss_mb']:.0f} MiB |")
    [(_, default, default_wer, _, _)] = [row for row in rows if row[0] == SILERO]
    print(f"\n(c) silero - (a): {100 * (default_wer - rows[0][2]):+.1f} WER points (target: within 2)")
    print(f"memory: (c) on {sf.info(longer).duration:.0f} s: peak RSS {long_run['rss_mb']:.0f} MiB, "
          f"{long_run['rss_mb'] / default['rss_mb']:.2f}x that on {duration:.0f} s "
          f"(WER {long_wer:.1%}, RTF {long_run['seconds'] / sf.info(longer).duration:.4f})")


if __name__ == "__main__":
    main()
