"""The GPU check, for the day a machine with one is lent: does training with AMP and transcription
with --device cuda work there, and how fast? Under 5 minutes.

    python -m benchmarks.gpu [--utterances 1500] [--steps 300] [--hours 1.0] [--work DIR]

1. Prints the GPU, its memory and the versions (torch, CUDA, cuDNN). Without CUDA it says so
   and exits 0: there is nothing to measure (tests/test_shard.py runs it that way).
2. Generates --utterances sentences of the toolkit's prompt grammar (asr.synth.prompts) with
   espeak-ng at five voices and rates, under --work (default: benchmarks/.gpu-work/, git-ignored).
3. Trains the LibriSpeech `100h` config (recipes/librispeech/conf/100h.yaml: 4 x 384 BiLSTM,
   batches of 400 padded seconds, 4 DataLoader workers, train.precision auto = float16 autocast
   on CUDA) on them for --steps steps (warm-up shortened to a tenth of them) and reports the
   audio seconds trained per second (metrics.jsonl, after the first window), the peak GPU memory
   and the loss of the first and last logged windows: it must fall.
4. Joins the utterances, with 0.5 s pauses, into 5-minute recordings making --hours of speech, and
   transcribes them with the trained model as `asr transcribe --device cuda --output-dir` does
   (silero-vad cuts them; segments are batched across files by length, --batch-seconds 600),
   and reports the real-time factor: transcription wall time / audio seconds (model load excluded).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "recipes" / "librispeech" / "conf" / "100h.yaml"
VOICES = [("en-us", 150), ("en", 170), ("en-us+f3", 160), ("en+m3", 140), ("en-us+f2", 180)]
RECORDING_SECONDS = 300.0  # the joined recordings of step 4


def versions() -> str:
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return f"torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN {cudnn}, Python {sys.version.split()[0]}"


def speak(text: str, voice: str, speed: int, path: Path) -> float:
    """`text` spoken into a 16 kHz mono wav at `path`; returns its seconds."""
    from asr.audio import SAMPLE_RATE, resample

    with tempfile.NamedTemporaryFile(suffix=".wav") as raw:
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", raw.name, text], check=True)
        audio, rate = sf.read(raw.name, dtype="float32")
    audio = resample(audio, rate)
    sf.write(path, audio, SAMPLE_RATE)
    return len(audio) / SAMPLE_RATE


def make_corpus(count: int, work: Path) -> Path:
    """Step 2: `count` espeak-ng utterances and their manifest."""
    from asr.data.manifest import Utterance, write_manifest
    from asr.synth.prompts import grammar_sentence

    rng = np.random.default_rng(0)
    texts = [grammar_sentence(rng) for _ in range(count)]
    (work / "wav").mkdir(parents=True, exist_ok=True)

    def one(i: int) -> Utterance:
        voice, speed = VOICES[i % len(VOICES)]
        path = work / "wav" / f"u{i:05d}.wav"
        return Utterance(f"u{i:05d}", str(path), speak(texts[i], voice, speed, path), texts[i], "espeak")

    with ThreadPoolExecutor(16) as pool:
        utterances = list(pool.map(one, range(count)))
    manifest = work / "train.jsonl"
    write_manifest(utterances, manifest)
    print(f"corpus: {count} utterances, {sum(u.duration for u in utterances) / 60:.1f} min (espeak-ng)")
    return manifest


def train(manifest: Path, steps: int, work: Path) -> Path:
    """Step 3: the 100h config for `steps` steps on the GPU; prints the figures, returns last.pt."""
    from asr.config import load_yaml, merge
    from asr.train import RunConfig, run

    overrides = {"train_manifest": str(manifest),
                 "train": {"device": "cuda", "max_steps": steps, "epochs": 1000, "warmup_steps": steps // 10,
                           "log_every": max(1, min(10, steps // 10)), "checkpoint_every": 10 * steps, "keep_last": 0}}
    config = merge(merge(RunConfig(), load_yaml(CONFIG)), overrides)
    exp = work / "exp"
    torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    run(config, exp)
    wall = time.perf_counter() - start
    lines = [json.loads(line) for line in (exp / "metrics.jsonl").read_text().splitlines() if '"loss"' in line]
    speed = np.mean([line["audio_sec_per_sec"] for line in lines[1:]]) if len(lines) > 1 else float("nan")
    first, last = lines[0]["loss"], lines[-1]["loss"]
    print(f"train: {CONFIG.relative_to(ROOT)}, {steps} steps in {wall:.0f} s, precision "
          f"{config.train.precision} (float16 autocast on CUDA); {speed:,.0f} audio s/s after the first window; "
          f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB; loss {first:.3f} -> {last:.3f} "
          f"({'falls' if last < first else 'DOES NOT FALL'})")
    return exp / "last.pt"


def join_recordings(manifest: Path, hours: float, work: Path) -> tuple[Path, float]:
    """Step 4's input: the utterances, cycled, joined into RECORDING_SECONDS recordings."""
    from asr.audio import SAMPLE_RATE, load_audio
    from asr.data.manifest import read_manifest

    clips = [load_audio(u.audio_path) for u in read_manifest(manifest)]
    pause = np.zeros(SAMPLE_RATE // 2, dtype=np.float32)
    folder = work / "long"
    folder.mkdir(exist_ok=True)
    total, k = 0.0, 0
    for n in range(int(np.ceil(hours * 3600 / RECORDING_SECONDS))):
        parts, seconds = [], 0.0
        while seconds < RECORDING_SECONDS:
            parts += [clips[k % len(clips)], pause]
            seconds += (len(clips[k % len(clips)]) + len(pause)) / SAMPLE_RATE
            k += 1
        sf.write(folder / f"r{n:03d}.wav", np.concatenate(parts), SAMPLE_RATE)
        total += seconds
    return folder, total


def transcribe(model: Path, folder: Path, seconds: float, work: Path) -> None:
    """Step 4: --device cuda over the joined recordings; prints the real-time factor."""
    from asr.checkpoint import load_model
    from asr.configs import TranscribeOptions
    from asr.decode import make_decoder
    from asr.transcribe import expand_inputs, output_names, transcribe_many

    paths, _ = expand_inputs([str(folder)])
    loaded = load_model(model, "cuda")
    decoder = make_decoder(loaded.decoding, loaded.tokenizer)
    options = TranscribeOptions(batch_seconds=600.0, jobs=8)
    start = time.perf_counter()
    failures = transcribe_many(loaded, paths, decoder, ("jsonl",), options=options, output_dir=work / "out",
                               names=output_names(paths, [str(folder)]), hide_progress=True)
    wall = time.perf_counter() - start
    print(f"transcribe: {len(paths)} recordings, {seconds / 3600:.2f} h, --device cuda --batch-seconds 600 "
          f"--jobs 8: {wall:.0f} s, RTF {wall / seconds:.4f} ({seconds / wall:,.0f}x real time), "
          f"{failures} failure(s)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--utterances", type=int, default=1500)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--hours", type=float, default=1.0)
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / ".gpu-work")
    args = parser.parse_args()
    print(f"versions: {versions()}")
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to measure here (this check is for a machine with a GPU)")
        return 0
    props = torch.cuda.get_device_properties(0)
    print(f"gpu: {props.name}, {props.total_memory / 2**30:.0f} GiB, compute capability {props.major}.{props.minor}")
    manifest = make_corpus(args.utterances, args.work)
    model = train(manifest, args.steps, args.work)
    folder, seconds = join_recordings(manifest, args.hours, args.work)
    transcribe(model, folder, seconds, args.work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
