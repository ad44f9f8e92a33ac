"""Word and character error rates, with the alignment that explains them.

`align` is a plain Levenshtein alignment (substitution = deletion = insertion =
1). Corpus rates are summed counts / summed reference lengths, which is what
jiwer reports (tests/test_metrics.py checks both against jiwer). We keep our
own so that evaluation can write each utterance's aligned pair.
"""

from __future__ import annotations

from dataclasses import dataclass


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


def align(ref: list[str], hyp: list[str]) -> tuple[ErrorCounts, list[tuple[str, str]]]:
    """Minimum edit alignment. Returns counts and pairs (ref_token|'*', hyp_token|'*').

    Several alignments can share the minimum cost with different substitution /
    deletion / insertion splits; ties are broken as rapidfuzz (and so jiwer) does,
    so our per-utterance counts match jiwer's: the common prefix and suffix are
    matched first, then the rest is walked back from its end preferring a deletion,
    then an insertion, then the diagonal.
    """
    prefix = _common_prefix_length(ref, hyp)
    suffix = _common_prefix_length(ref[prefix:][::-1], hyp[prefix:][::-1])
    core_ref, core_hyp = ref[prefix : len(ref) - suffix], hyp[prefix : len(hyp) - suffix]
    n, m = len(core_ref), len(core_hyp)
    cost = [[0] * (m + 1) for _ in range(n + 1)]  # (n+1, m+1) edit distances
    for i in range(n + 1):
        cost[i][0] = i
    for j in range(m + 1):
        cost[0][j] = j
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            diagonal = cost[i - 1][j - 1] + (core_ref[i - 1] != core_hyp[j - 1])
            cost[i][j] = min(diagonal, cost[i - 1][j] + 1, cost[i][j - 1] + 1)
    counts, pairs = ErrorCounts(reference_length=len(ref)), []
    i, j = n, m
    while i or j:
        if i and (not j or cost[i][j] == cost[i - 1][j] + 1):
            counts.deletions += 1
            pairs.append((core_ref[i - 1], "*"))
            i -= 1
        # Insert when that is no longer than the diagonal (the test of Hyyro's bit-parallel walk).
        elif not i or (j > 1 and cost[i][j - 1] == cost[i - 1][j - 1] - 1):
            counts.insertions += 1
            pairs.append(("*", core_hyp[j - 1]))
            j -= 1
        else:
            counts.substitutions += core_ref[i - 1] != core_hyp[j - 1]
            pairs.append((core_ref[i - 1], core_hyp[j - 1]))
            i, j = i - 1, j - 1
    matched_prefix = [(t, t) for t in ref[:prefix]]
    matched_suffix = [(t, t) for t in ref[len(ref) - suffix :]]
    return counts, matched_prefix + pairs[::-1] + matched_suffix


def word_errors(ref: str, hyp: str) -> ErrorCounts:
    return align(ref.split(), hyp.split())[0]


def char_errors(ref: str, hyp: str) -> ErrorCounts:
    """Character errors over the text with single spaces (spaces count as characters)."""
    return align(list(" ".join(ref.split())), list(" ".join(hyp.split())))[0]


def _common_prefix_length(a: list[str], b: list[str]) -> int:
    length = 0
    while length < min(len(a), len(b)) and a[length] == b[length]:
        length += 1
    return length


def format_alignment(pairs: list[tuple[str, str]]) -> str:
    """Readable alignment: correct words as-is, errors as (ref->hyp)."""
    return " ".join(r if r == h else f"({r}->{h})" for r, h in pairs)
