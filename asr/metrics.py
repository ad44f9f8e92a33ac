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
        """errors / reference length (1.0 per inserted token when the reference is empty)."""
        if self.reference_length == 0:
            return float(self.errors > 0)
        return self.errors / self.reference_length

    def __add__(self, other: "ErrorCounts") -> "ErrorCounts":
        return ErrorCounts(
            self.substitutions + other.substitutions,
            self.deletions + other.deletions,
            self.insertions + other.insertions,
            self.reference_length + other.reference_length,
        )


def align(ref: list[str], hyp: list[str]) -> tuple[ErrorCounts, list[tuple[str, str]]]:
    """Minimum edit alignment. Returns counts and pairs (ref_token|'*', hyp_token|'*')."""
    n, m = len(ref), len(hyp)
    cost = [[0] * (m + 1) for _ in range(n + 1)]  # (n+1, m+1) edit distances
    for i in range(n + 1):
        cost[i][0] = i
    for j in range(m + 1):
        cost[0][j] = j
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            diagonal = cost[i - 1][j - 1] + (ref[i - 1] != hyp[j - 1])
            cost[i][j] = min(diagonal, cost[i - 1][j] + 1, cost[i][j - 1] + 1)
    counts, pairs = ErrorCounts(reference_length=n), []
    i, j = n, m
    while i or j:
        if i and j and cost[i][j] == cost[i - 1][j - 1] + (ref[i - 1] != hyp[j - 1]):
            counts.substitutions += ref[i - 1] != hyp[j - 1]
            pairs.append((ref[i - 1], hyp[j - 1]))
            i, j = i - 1, j - 1
        elif i and cost[i][j] == cost[i - 1][j] + 1:
            counts.deletions += 1
            pairs.append((ref[i - 1], "*"))
            i -= 1
        else:
            counts.insertions += 1
            pairs.append(("*", hyp[j - 1]))
            j -= 1
    return counts, pairs[::-1]


def word_errors(ref: str, hyp: str) -> ErrorCounts:
    return align(ref.split(), hyp.split())[0]


def char_errors(ref: str, hyp: str) -> ErrorCounts:
    """Character errors over the text with single spaces (spaces count as characters)."""
    return align(list(" ".join(ref.split())), list(" ".join(hyp.split())))[0]


def format_alignment(pairs: list[tuple[str, str]]) -> str:
    """Readable alignment: correct words as-is, errors as (ref->hyp)."""
    return " ".join(r if r == h else f"({r}->{h})" for r, h in pairs)
