"""Tune the LM weight and word score on a dev set, and store the best in the checkpoint.

    asr tune --model exp/best.pt --manifest data/dev.jsonl --lm lm/lm.arpa --lexicon lm/lexicon.txt \\
        [--lm-weights 0,0.5,1,2] [--word-scores=-1,0,1] [--trials 20 --seed 0] [--out tuned.pt]

The model runs over the manifest once (`compute_emissions`); every candidate
(lm_weight, word_score) pair then only re-runs the beam search on those
emissions. Grid search tries every pair of the two lists; with `--trials N` it
is a random search instead: N pairs drawn uniformly from the ranges the lists
span. The pair with the lowest WER, with the other beam options as given, is
saved as the checkpoint's `decoding` dict (atomically), which `asr evaluate` and
`asr transcribe` then use unless flags override it. The WER it reports is
dev-tuned: quote it as such, and score held-out data for an unbiased figure.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import random
from collections.abc import Callable
from pathlib import Path

import torch

from asr.checkpoint import LoadedModel, read_checkpoint, save_atomic
from asr.config import ConfigError
from asr.configs import LM_WEIGHT_RANGE, WORD_SCORE_RANGE
from asr.data.manifest import ManifestError, Utterance
from asr.decode import Decoder, DecodingOptions, Hypothesis, make_decoder
from asr.evaluate import iter_emissions, score

MAX_TRIALS = 10_000  # the most random (lm_weight, word_score) pairs one search takes


def compute_emissions(loaded: LoadedModel, utterances: list[Utterance], device: str = "cpu",
                      num_workers: int = 1) -> dict[str, torch.Tensor]:
    """Run the model once over `utterances` (ids must be unique).
    Returns {utt id: log-probs (frames, vocab)} on the CPU, in the order of `utterances`."""
    ids = [utt.id for utt in utterances]
    duplicates = [utt_id for utt_id, count in collections.Counter(ids).items() if count > 1]
    if duplicates:
        raise ManifestError(f"utterance id {duplicates[0]!r} appears more than once")
    emissions = {}
    for batch_ids, log_probs, lengths in iter_emissions(loaded, utterances, device, num_workers=num_workers):
        for utt_id, utt_log_probs, length in zip(batch_ids, log_probs.float().cpu(), lengths.tolist()):
            emissions[utt_id] = utt_log_probs[:length].clone()  # (frames, vocab), not a view of the batch
    return {utt_id: emissions[utt_id] for utt_id in ids}


def decode_emissions(decoder: Decoder, emissions: dict[str, torch.Tensor]) -> dict[str, Hypothesis]:
    """Decode stored emissions one utterance at a time. Returns {utt id: Hypothesis}."""
    return {utt_id: decoder.decode(e.unsqueeze(0), torch.tensor([e.shape[0]]))[0]
            for utt_id, e in emissions.items()}


def candidates(lm_weights: tuple[float, ...], word_scores: tuple[float, ...], trials: int = 0,
               seed: int = 0) -> list[tuple[float, float]]:
    """The (lm_weight, word_score) pairs to try: the full grid, or `trials` random pairs within its ranges.
    ConfigError for a grid value outside DecodingOptions' bounds, or too many trials (before any model runs)."""
    if not 0 <= trials <= MAX_TRIALS:
        raise ConfigError(f"--trials must be between 0 and {MAX_TRIALS}, got {trials}")
    for name, values, (low, high) in (("lm_weight", lm_weights, LM_WEIGHT_RANGE),
                                      ("word_score", word_scores, WORD_SCORE_RANGE)):
        for value in values:
            if not low <= value <= high:
                raise ConfigError(f"{name} must be between {low:g} and {high:g}, got {value:g}")
    if not trials:
        return list(itertools.product(lm_weights, word_scores))
    rng = random.Random(seed)
    return [(rng.uniform(min(lm_weights), max(lm_weights)), rng.uniform(min(word_scores), max(word_scores)))
            for _ in range(trials)]


def tune(emissions: dict[str, torch.Tensor], utterances: list[Utterance], tokenizer, base: DecodingOptions,
         pairs: list[tuple[float, float]], log: Callable[[str], None] = print) -> tuple[DecodingOptions, list[dict]]:
    """Beam-decode `emissions` with each (lm_weight, word_score) on top of `base`.
    Returns the options with the lowest WER and one row per pair {lm_weight, word_score, wer, cer}."""
    rows, best = [], None
    for lm_weight, word_score in pairs:
        options = dataclasses.replace(base, decoder="beam", lm_weight=round(lm_weight, 4),
                                      word_score=round(word_score, 4))
        summary, _ = score(utterances, decode_emissions(make_decoder(options, tokenizer), emissions))
        rows.append({"lm_weight": options.lm_weight, "word_score": options.word_score, "wer": summary["wer"],
                     "cer": summary["cer"]})
        log(f"lm_weight {options.lm_weight:g}  word_score {options.word_score:g}  WER {summary['wer']:.2%}  "
            f"CER {summary['cer']:.2%}")
        if best is None or summary["wer"] < best[0]:
            best = (summary["wer"], options)
    return best[1], rows


def save_decoding(checkpoint_path: str | Path, options: DecodingOptions, out_path: str | Path | None = None) -> None:
    """Store `options` as the checkpoint's default decoding (LM and lexicon as absolute paths)."""
    checkpoint = read_checkpoint(checkpoint_path)
    absolute = {k: str(Path(v).resolve()) for k in ("lm", "lexicon") if (v := getattr(options, k))}
    checkpoint["decoding"] = dataclasses.asdict(dataclasses.replace(options, **absolute))
    save_atomic(checkpoint, out_path or checkpoint_path)
