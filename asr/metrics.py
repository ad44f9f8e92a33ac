"""Word and character error rates, with the alignment that explains them.

jiwer aligns each utterance (a minimum edit alignment: substitution = deletion =
insertion = 1, rapidfuzz underneath). `ErrorCounts` adds the counts up over a
corpus, so a corpus rate is summed errors / summed reference lengths, which is what
`jiwer.wer` and `jiwer.cer` report for a list of sentences. Evaluation writes each
utterance's aligned pair with `format_alignment`.
"""

from __future__ import annotations

from dataclasses import dataclass

import jiwer


@dataclass
class ErrorCounts:
    substitutions: int = 0
    deletions: int = 0
    insertions: int = 0
    reference_length: int = 0

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def rate(self) -> float:
        """errors / reference length (1.0 when the reference is empty and anything was inserted)."""
        if self.reference_length == 0:
            return float(self.errors > 0)
        return self.errors / self.reference_length

    def __add__(self, other: ErrorCounts) -> ErrorCounts:
        return ErrorCounts(
            self.substitutions + other.substitutions,
            self.deletions + other.deletions,
            self.insertions + other.insertions,
            self.reference_length + other.reference_length,
        )


def align_words(ref: str, hyp: str) -> tuple[ErrorCounts, list[tuple[str, str]]]:
    """Word errors of `hyp` against `ref` (both split at whitespace) and the aligned
    pairs (ref_word|'*', hyp_word|'*') that explain them, in order."""
    return _counts_and_pairs(jiwer.process_words(" ".join(ref.split()), " ".join(hyp.split())))


def char_errors(ref: str, hyp: str) -> ErrorCounts:
    """Character errors over the text with single spaces (spaces count as characters)."""
    return align_chars(ref, hyp)[0]


def align_chars(ref: str, hyp: str) -> tuple[ErrorCounts, list[tuple[str, str]]]:
    """Character errors (as `char_errors`) and the aligned character pairs (ref|'*', hyp|'*')."""
    return _counts_and_pairs(jiwer.process_characters(" ".join(ref.split()), " ".join(hyp.split())))


def _counts_and_pairs(output: jiwer.WordOutput | jiwer.CharacterOutput) -> tuple[ErrorCounts, list[tuple[str, str]]]:
    """Counts and aligned token pairs of jiwer's output for one sentence pair."""
    ref, hyp = output.references[0], output.hypotheses[0]
    counts = ErrorCounts(output.substitutions, output.deletions, output.insertions, len(ref))
    pairs = []
    for chunk in output.alignments[0]:
        ref_tokens = ref[chunk.ref_start_idx : chunk.ref_end_idx]
        hyp_tokens = hyp[chunk.hyp_start_idx : chunk.hyp_end_idx]
        if chunk.type == "delete":
            pairs += [(token, "*") for token in ref_tokens]
        elif chunk.type == "insert":
            pairs += [("*", token) for token in hyp_tokens]
        else:  # "equal" or "substitute": as many tokens on both sides
            pairs += zip(ref_tokens, hyp_tokens)
    return counts, pairs


def format_alignment(pairs: list[tuple[str, str]]) -> str:
    """Readable alignment: correct words as-is, errors as (ref->hyp)."""
    return " ".join(r if r == h else f"({r}->{h})" for r, h in pairs)
