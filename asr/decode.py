"""CTC decoding behind one interface.

    decoder = make_decoder(DecodingOptions(...), tokenizer)
    hyps = decoder.decode(log_probs, lengths)   # log_probs (batch, frames, vocab), lengths (batch,)

Each `Hypothesis` holds the text, the token ids and, for each token, the model
output frame where it was emitted (multiply by the frame period for seconds).
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
class Hypothesis:
    text: str
    tokens: list[int] = field(default_factory=list)
    frames: list[int] = field(default_factory=list)  # output frame of each token
    score: float = 0.0  # log-probability of the decoded path (greedy) / decoder score (beam)


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
