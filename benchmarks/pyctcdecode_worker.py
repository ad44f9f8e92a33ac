"""Decode saved emissions with pyctcdecode; runs inside benchmarks/.venv-pyctcdecode (see decoder.py).

    benchmarks/.venv-pyctcdecode/bin/python benchmarks/pyctcdecode_worker.py < job.json > result.json

A standalone file, run by path by benchmarks.decoder with that venv's python (pyctcdecode pins
numpy<2, and neither asr nor torch is installed there): it must not import the benchmarks package.

Reads a JSON job on stdin: labels, lm (ARPA path), unigrams, alpha, beta, beam, repeat,
emissions {utt id: .npy path of (frames, vocab) log-probs}. Writes {"texts", "seconds"}
on stdout: the fastest of `repeat` passes over all utterances, LM loading excluded.
"""

import json
import sys
import time

import numpy as np
from pyctcdecode import build_ctcdecoder


def main() -> None:
    job = json.load(sys.stdin)
    decoder = build_ctcdecoder(job["labels"], kenlm_model_path=job["lm"], unigrams=job["unigrams"],
                               alpha=job["alpha"], beta=job["beta"])
    emissions = {utt_id: np.load(path) for utt_id, path in job["emissions"].items()}
    best, texts = float("inf"), {}
    for _ in range(job["repeat"]):
        start = time.perf_counter()
        texts = {utt_id: decoder.decode(log_probs, beam_width=job["beam"]) for utt_id, log_probs in emissions.items()}
        best = min(best, time.perf_counter() - start)
    json.dump({"texts": texts, "seconds": best}, sys.stdout)


if __name__ == "__main__":
    main()
