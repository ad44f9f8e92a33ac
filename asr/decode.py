"""CTC decoding behind one interface.

    decoder = make_decoder(DecodingOptions(...), tokenizer)
    hyps = decoder.decode(log_probs, lengths)   # log_probs (batch, frames, vocab), lengths (batch,)

Each `Hypothesis` holds the text, the token ids and, for each token, the model
output frame where it was emitted (multiply by the frame period for seconds).
`add_word_timings` turns those frames and the frame posteriors into `Word`s with
start/end times and a confidence.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from asr.text import CharTokenizer


@dataclass(frozen=True)
class DecodingOptions:
    """How to turn log-probabilities into text. Frozen: build a new one to change it."""

    decoder: str = "greedy"  # "greedy" | "beam"


@dataclass
class Word:
    text: str
    start: float  # seconds
    end: float  # seconds
    confidence: float  # in [0, 1]; see add_word_timings


@dataclass
class Hypothesis:
    text: str
    tokens: list[int] = field(default_factory=list)
    frames: list[int] = field(default_factory=list)  # output frame of each token
    score: float = 0.0  # log-probability of the decoded path (greedy) / decoder score (beam)
    words: list[Word] = field(default_factory=list)  # filled by add_word_timings


class Decoder:
    """Interface: (batch, frames, vocab) log-probs + (batch,) lengths -> one Hypothesis each."""

    def decode(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> list[Hypothesis]:
        raise NotImplementedError


class GreedyDecoder(Decoder):
    """Best class per frame, then collapse repeats and drop blanks."""

    def __init__(self, tokenizer: CharTokenizer):
        self.tokenizer = tokenizer

    def decode(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> list[Hypothesis]:
        best_scores, best = log_probs.detach().float().cpu().max(dim=-1)  # (batch, frames) each
        hyps = []
        for b, length in enumerate(lengths.tolist()):
            path = best[b, :length]  # (frames,)
            changed = torch.ones_like(path, dtype=torch.bool)
            changed[1:] = path[1:] != path[:-1]
            keep = changed & (path != self.tokenizer.blank_id)
            frames = keep.nonzero().squeeze(1).tolist()
            tokens = path[keep].tolist()
            text = " ".join(self.tokenizer.decode(tokens).split())
            hyps.append(Hypothesis(text, tokens, frames, float(best_scores[b, :length].sum())))
        return hyps


def make_decoder(options: DecodingOptions, tokenizer: CharTokenizer) -> Decoder:
    if options.decoder == "greedy":
        return GreedyDecoder(tokenizer)
    raise ValueError(f"unknown decoder {options.decoder!r} (choose from: greedy)")


def add_word_timings(hyp: Hypothesis, log_probs: torch.Tensor, frame_seconds: float, space_id: int,
                     offset: float = 0.0) -> Hypothesis:
    """Fill `hyp.words` from its token frames. log_probs: (frames, vocab) of this utterance.

    A word spans from its first token's frame to one frame past its last token's.
    Its confidence is the mean, over its tokens, of the posterior probability of
    that token at the frame where it was emitted. `offset` (seconds) shifts all
    times, for audio decoded in windows.
    """
    posteriors = log_probs.detach().float().cpu().exp()  # (frames, vocab)
    words, current = [], []  # current: [(token, frame)] of the word being built
    for token, frame in [*zip(hyp.tokens, hyp.frames), (space_id, -1)]:
        if token != space_id:
            current.append((token, frame))
            continue
        if current:
            confidence = sum(float(posteriors[f, t]) for t, f in current) / len(current)
            words.append(Word(text="", start=offset + current[0][1] * frame_seconds,
                              end=offset + (current[-1][1] + 1) * frame_seconds, confidence=confidence))
            current = []
    for word, text in zip(words, hyp.text.split()):
        word.text = text
    hyp.words = words
    return hyp
