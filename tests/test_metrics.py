"""asr.metrics (jiwer alignments summed into our counts) and asr.evaluate.score: minimum edit distances,
alignments that spell out both sides, and corpus rates equal to jiwer's own wer() and cer()."""

from __future__ import annotations

import random

import jiwer
import pytest

from asr.data.manifest import Utterance
from asr.decode import Hypothesis
from asr.evaluate import score
from asr.metrics import ErrorCounts, align_chars, align_words, char_errors, format_alignment

WORDS = "the a cat sat on mat dog ran in park we call it bear she sells sea shells red door".split()


def _sentence(rng: random.Random, vocab: list[str], max_words: int = 12) -> str:
    return " ".join(rng.choice(vocab) for _ in range(rng.randint(1, max_words)))


def _noisy_copy(rng: random.Random, text: str, vocab: list[str]) -> str:
    """A hypothesis like a recognizer's: the reference with random edits (possibly all deleted)."""
    out = []
    for word in text.split():
        op = rng.random()
        if op < 0.1:
            continue  # deletion
        out.append(rng.choice(vocab) if op < 0.25 else word)
        if rng.random() < 0.1:
            out.append(rng.choice(vocab))  # insertion
    return " ".join(out)


def _pairs(seed: int, count: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    pairs = []
    for k in range(count):
        vocab = WORDS[: rng.choice([3, 6, len(WORDS)])]  # small vocabularies make many equal-cost ties
        ref = _sentence(rng, vocab)
        hyp = _noisy_copy(rng, ref, vocab) if k % 2 else _sentence(rng, vocab) * (rng.random() > 0.05)
        pairs.append((ref, hyp))
    return pairs


def _counts(output) -> tuple[int, int, int, int]:
    return output.substitutions, output.deletions, output.insertions, output.hits


def _ours(counts: ErrorCounts) -> tuple[int, int, int, int]:
    hits = counts.reference_length - counts.substitutions - counts.deletions
    return counts.substitutions, counts.deletions, counts.insertions, hits


def _edit_distance(ref: list[str], hyp: list[str]) -> int:
    """Levenshtein distance (unit costs) by the textbook recurrence, one row at a time."""
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        diagonal, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            diagonal, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diagonal + (r != h))
    return row[-1]


@pytest.mark.parametrize("seed", range(3))
def test_per_sentence_errors_are_the_minimum_edit_distance(seed):
    for ref, hyp in _pairs(seed, 500):
        counts, _ = align_words(ref, hyp)
        assert counts.errors == _edit_distance(ref.split(), hyp.split()), (ref, hyp)
        assert counts.reference_length == len(ref.split())
    for ref, hyp in _pairs(100 + seed, 300):
        assert char_errors(ref, hyp).errors == _edit_distance(list(ref), list(hyp)), (ref, hyp)


def test_corpus_rates_match_jiwer():
    pairs = _pairs(7, 400)
    refs, hyps = [r for r, _ in pairs], [h for _, h in pairs]
    words = sum((align_words(r, h)[0] for r, h in pairs), ErrorCounts())
    chars = sum((char_errors(r, h) for r, h in pairs), ErrorCounts())
    assert words.rate == pytest.approx(jiwer.wer(refs, hyps), abs=1e-12)
    assert chars.rate == pytest.approx(jiwer.cer(refs, hyps), abs=1e-12)


def test_score_matches_jiwer_on_a_corpus():
    pairs = _pairs(11, 300)
    utterances = [Utterance(f"u{i}", "/x.wav", 1.0, ref.upper() + "!", "s") for i, (ref, _) in enumerate(pairs)]
    hyps = {f"u{i}": Hypothesis(hyp) for i, (_, hyp) in enumerate(pairs)}
    summary, rows = score(utterances, hyps)
    refs, hyp_texts = [r for r, _ in pairs], [h for _, h in pairs]
    corpus = jiwer.process_words(refs, hyp_texts)
    assert summary["wer"] == round(jiwer.wer(refs, hyp_texts), 4)
    assert summary["cer"] == round(jiwer.cer(refs, hyp_texts), 4)
    assert (summary["substitutions"], summary["deletions"], summary["insertions"]) == _counts(corpus)[:3]
    assert summary["words"] == sum(len(r.split()) for r in refs)
    assert summary["utterances"] == len(pairs)
    assert [row["ref"] for row in rows] == refs  # references were normalized before scoring


def test_alignment_pairs_spell_out_both_sides():
    for ref, hyp in _pairs(3, 300):
        counts, pairs = align_words(ref, hyp)
        assert [r for r, _ in pairs if r != "*"] == ref.split()
        assert [h for _, h in pairs if h != "*"] == hyp.split()
        assert sum(h == "*" for _, h in pairs) == counts.deletions
        assert sum(r == "*" for r, _ in pairs) == counts.insertions
        assert sum("*" != r != h != "*" for r, h in pairs) == counts.substitutions


def test_alignment_and_format_on_a_known_example():
    counts, pairs = align_words("the cat sat on the mat", "the  cat sat on a mat today ")
    assert counts == ErrorCounts(substitutions=1, deletions=0, insertions=1, reference_length=6)
    assert format_alignment(pairs) == "the cat sat on (the->a) mat (*->today)"


def test_empty_sides():
    assert align_words("", "") == (ErrorCounts(), [])
    assert align_words("a b c", "")[0] == ErrorCounts(deletions=3, reference_length=3)
    assert align_words("", "x y") == (ErrorCounts(insertions=2), [("*", "x"), ("*", "y")])
    assert align_words("", "x y")[0].rate == 1.0
    assert char_errors(" ", "ab") == ErrorCounts(insertions=2)


def test_char_errors_ignore_extra_spaces():
    assert char_errors("the  cat ", " the cat") == ErrorCounts(reference_length=7)


def test_char_alignment_spells_out_both_texts():
    counts, pairs = align_chars("the cat", "a cart")
    assert counts == char_errors("the cat", "a cart")
    assert "".join(r for r, _ in pairs if r != "*") == "the cat"
    assert "".join(h for _, h in pairs if h != "*") == "a cart"
    assert sum("*" != r != h != "*" for r, h in pairs) == counts.substitutions
