"""Our beam decoder (flashlight-text) vs pyctcdecode: same emissions, same beam width, same LM.

    python -m benchmarks.decoder [--model recipes/speechocean762/exp/small/best.pt] [--limit 300] [--beam 50]
        [--no-peer]  (ours only, at each --ours operating point)
        [--lm-weight W --word-score S]   (default: the checkpoint's stored decoding, else 0.5 / 0)
        [--lm LM.arpa --lexicon LEXICON]  (default: a word 3-gram of the training transcripts)

1. The model runs once over a seeded random subset of the dev manifest; each
   utterance's log-probs are saved as .npy under benchmarks/.decoder-work/ (git-ignored).
2. A word 3-gram and its lexicon are built from the training transcripts (asr lm build),
   unless --lm and --lexicon name one (e.g. the general LM of `asr lm build --text` on the
   shared corpus; pass its ARPA: pyctcdecode reads it, and its unigrams from the lexicon).
3. Both decoders decode every saved emission one utterance at a time, in one
   thread, three times; the fastest pass counts (utterances/s). LM loading is excluded.
   * ours: lexicon-constrained beam search (the lexicon is the LM's vocabulary),
     KenLM scores in log10 times lm_weight, word_score per word;
   * pyctcdecode: its prefix beam search with the same ARPA file and its unigrams,
     alpha = lm_weight / ln(10) (it weighs natural-log LM scores), beta = word_score.
   pyctcdecode keeps its own pruning defaults besides the beam width; ours runs at each
   operating point of --ours (beam width : beam threshold), to find the fastest one whose
   WER is within 0.5 points of pyctcdecode's ("at equal WER").
4. Both are scored by asr.evaluate.score against the references; the headline ratio is
   that fastest operating point of ours against pyctcdecode at --beam.

pyctcdecode pins numpy<2, so it runs in its own venv, benchmarks/.venv-pyctcdecode
(git-ignored), which this script creates on first use (pip install pyctcdecode kenlm).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from asr.checkpoint import load_model
from asr.data.manifest import read_manifest
from asr.decode import DecodingOptions, Hypothesis, make_decoder
from asr.evaluate import score
from asr.lm import build_lm
from asr.tune import compute_emissions
from benchmarks.common import DEV_MANIFEST, MODEL, TRAIN_MANIFEST, machine_line

HERE = Path(__file__).resolve().parent
WORK = HERE / ".decoder-work"
PEER_VENV = HERE / ".venv-pyctcdecode"
PEER_PACKAGES = ["pyctcdecode==0.5.0", "kenlm==0.3.0", "numpy<2"]
REPEAT = 3


def ensure_pyctcdecode() -> Path:
    """benchmarks/.venv-pyctcdecode with PEER_PACKAGES (created once). Returns its python."""
    python = PEER_VENV / "bin" / "python"
    stamp = PEER_VENV / ".installed"
    wanted = "\n".join(PEER_PACKAGES) + "\n"
    if not (stamp.is_file() and stamp.read_text() == wanted):
        print(f"installing {' '.join(PEER_PACKAGES)} into {PEER_VENV}", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *PEER_PACKAGES], check=True)
        stamp.write_text(wanted)
    return python


def dump_emissions(model_path: Path, manifest: Path, limit: int, seed: int) -> tuple[list, dict[str, np.ndarray]]:
    """Run the model over a seeded subset; save WORK/emissions/<id>.npy. Returns (utterances, emissions)."""
    utterances = read_manifest(manifest)
    utterances = sorted(random.Random(seed).sample(utterances, min(limit, len(utterances))), key=lambda u: u.id)
    emissions = {k: v.numpy() for k, v in compute_emissions(load_model(model_path), utterances).items()}
    folder = WORK / "emissions"
    folder.mkdir(parents=True, exist_ok=True)
    for utt_id, log_probs in emissions.items():
        np.save(folder / f"{utt_id}.npy", log_probs.astype(np.float32))  # (frames, vocab)
    return utterances, emissions


def time_ours(options: DecodingOptions, tokenizer, emissions: dict[str, np.ndarray]) -> tuple[dict[str, str], float]:
    decoder = make_decoder(options, tokenizer)
    tensors = {k: torch.from_numpy(v).unsqueeze(0) for k, v in emissions.items()}  # (1, frames, vocab) each
    best, texts = math.inf, {}
    for _ in range(REPEAT):
        start = time.perf_counter()
        texts = {k: decoder.decode(t, torch.tensor([t.shape[1]]))[0].text for k, t in tensors.items()}
        best = min(best, time.perf_counter() - start)
    return texts, best


def time_pyctcdecode(labels: list[str], lm: str, lexicon: str, alpha: float, beta: float, beam: int,
                     ids: list[str]) -> tuple[dict[str, str], float]:
    python = ensure_pyctcdecode()
    job = {"labels": labels, "lm": lm, "unigrams": [line.split("\t")[0] for line in open(lexicon)],
           "alpha": alpha, "beta": beta, "beam": beam, "repeat": REPEAT,
           "emissions": {utt_id: str(WORK / "emissions" / f"{utt_id}.npy") for utt_id in ids}}
    out = subprocess.run([str(python), str(HERE / "pyctcdecode_worker.py")], input=json.dumps(job),
                         capture_output=True, text=True)
    if out.returncode:
        sys.exit(f"error: pyctcdecode worker failed: {out.stderr.strip().splitlines()[-1:]}")
    result = json.loads(out.stdout)
    return result["texts"], result["seconds"]


def report(name: str, utterances: list, texts: dict[str, str], seconds: float) -> tuple[float, float]:
    """Print and return (utterances/s, WER) of one decoder's pass."""
    summary, _ = score(utterances, {k: Hypothesis(" ".join(v.split())) for k, v in texts.items()})
    speed = len(texts) / seconds
    print(f"{name:34s} {speed:8.1f} utterances/s  WER {summary['wer']:.2%}")
    return speed, summary["wer"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=str(MODEL))
    parser.add_argument("--manifest", default=str(DEV_MANIFEST))
    parser.add_argument("--train-manifest", default=str(TRAIN_MANIFEST), help="LM training text")
    parser.add_argument("--limit", type=int, default=300, help="dev utterances (seeded random subset)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--beam", type=int, default=50)
    parser.add_argument("--lm-weight", type=float)
    parser.add_argument("--word-score", type=float)
    parser.add_argument("--lm", help="word LM (ARPA) to use instead of building one from --train-manifest")
    parser.add_argument("--lexicon", help="its lexicon (with --lm)")
    parser.add_argument("--no-peer", action="store_true",
                        help="ours only, no pyctcdecode (then --lm may be a KenLM binary, e.g. the bundled lm.bin)")
    parser.add_argument("--ours", default="50:50",
                        help="our operating points, comma-separated BEAM:THRESHOLD pairs (e.g. 50:50,20:20,10:12)")
    args = parser.parse_args(argv)
    try:
        operating_points = [(int(beam), float(threshold))
                            for beam, threshold in (point.split(":") for point in args.ours.split(","))]
    except ValueError:
        parser.error(f"--ours expects BEAM:THRESHOLD pairs separated by commas, got {args.ours!r}")
    if bool(args.lm) != bool(args.lexicon):
        parser.error("--lm and --lexicon go together")

    print(machine_line())
    loaded = load_model(args.model)
    stored = loaded.decoding
    lm_weight = args.lm_weight if args.lm_weight is not None else stored.lm_weight
    word_score = args.word_score if args.word_score is not None else stored.word_score
    utterances, emissions = dump_emissions(Path(args.model), Path(args.manifest), args.limit, args.seed)
    if args.lm:
        lm = {"lm": args.lm, "lexicon": args.lexicon, "vocabulary": sum(1 for _ in open(args.lexicon)),
              "source": args.lm}
    else:
        lm = {**build_lm(args.train_manifest, 3, WORK / "lm"), "source": f"word 3-gram of {args.train_manifest}"}
        lm["lm"] = lm["arpa"]
    frames = sum(e.shape[0] for e in emissions.values())
    print(f"model: {args.model}; {len(utterances)} dev utterances, {frames} frames; "
          f"LM: {lm['source']} ({lm['vocabulary']} words); beam {args.beam}; "
          f"lm_weight {lm_weight:g} (pyctcdecode alpha {lm_weight / math.log(10):.4g}), word_score {word_score:g}")

    if args.no_peer:
        for beam, threshold in operating_points:
            options = DecodingOptions(decoder="beam", beam_size=beam, beam_threshold=threshold, lm=lm["lm"],
                                      lexicon=lm["lexicon"], lm_weight=lm_weight, word_score=word_score)
            report(f"asr (beam {beam}, threshold {threshold:g})", utterances,
                   *time_ours(options, loaded.tokenizer, emissions))
        return 0
    labels = ["" if i == loaded.tokenizer.blank_id else s for i, s in enumerate(loaded.tokenizer.vocab)]
    peer, peer_seconds = time_pyctcdecode(labels, lm["lm"], lm["lexicon"], lm_weight / math.log(10), word_score,
                                          args.beam, list(emissions))
    peer_speed, peer_wer = report(f"pyctcdecode (beam {args.beam})", utterances, peer, peer_seconds)
    equal_wer = []
    for beam, threshold in operating_points:
        options = DecodingOptions(decoder="beam", beam_size=beam, beam_threshold=threshold, lm=lm["lm"],
                                  lexicon=lm["lexicon"], lm_weight=lm_weight, word_score=word_score)
        ours, ours_seconds = time_ours(options, loaded.tokenizer, emissions)
        speed, wer = report(f"asr (beam {beam}, threshold {threshold:g})", utterances, ours, ours_seconds)
        if wer <= peer_wer + 0.005:
            equal_wer.append((speed, wer, f"beam {beam}, threshold {threshold:g}"))
    if not equal_wer:
        print("no operating point of ours is within 0.5 WER points of pyctcdecode")
        return 0
    speed, wer, name = max(equal_wer)
    print(f"speed ratio (ours at {name} / pyctcdecode): {speed / peer_speed:.1f}x;  "
          f"WER difference: {(wer - peer_wer) * 100:+.2f} points")
    return 0


if __name__ == "__main__":
    sys.exit(main())
