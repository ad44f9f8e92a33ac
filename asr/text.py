"""Text normalization and the character tokenizer.

Every transcript (training targets, references at evaluation time, and the text
we compare hypotheses against) goes through `normalize_text`, so scoring never
depends on a corpus's casing or punctuation habits.

The tokenizer maps characters to ids with the CTC blank at id 0 and the space
character as the word separator. Its vocabulary is a plain list of strings that
is stored inside every checkpoint.
"""

from __future__ import annotations

import re
import string
import unicodedata

BLANK = "<blank>"
SPACE = " "
WORD_SEPARATOR = "|"  # flashlight's name for SPACE in lexicons and character LMs (asr.decode, asr.lm)
DEFAULT_VOCAB = [BLANK, SPACE, "'", *string.ascii_lowercase]  # 29 symbols

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "`": "'", "\u00b4": "'"})
_NOT_ALLOWED = re.compile(r"[^a-z' ]+")
_SPACES = re.compile(r"\s+")
_STRAY_APOSTROPHE = re.compile(r"(?<![a-z])'|'(?![a-z])")


def normalize_text(text: str) -> str:
    """Lower-case, fold accents and curly apostrophes, drop punctuation, squeeze spaces.

    Apostrophes inside words are kept ("don't"); quote marks around words are not.
    Hyphens and other punctuation become word breaks ("well-known" -> "well known").
    """
    text = text.translate(_APOSTROPHES)  # before the ASCII fold, which would drop curly ones
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii").lower()
    text = _NOT_ALLOWED.sub(" ", text)
    text = _STRAY_APOSTROPHE.sub(" ", text)
    return _SPACES.sub(" ", text).strip()


class CharTokenizer:
    """Characters <-> ids. id 0 is the CTC blank; `SPACE` separates words."""

    def __init__(self, vocab: list[str] | None = None):
        self.vocab = list(vocab or DEFAULT_VOCAB)
        if self.vocab[0] != BLANK:
            raise ValueError(f"vocabulary must start with the blank symbol {BLANK!r}")
        if SPACE not in self.vocab:
            raise ValueError("vocabulary must contain the space character (word separator)")
        self._ids = {symbol: i for i, symbol in enumerate(self.vocab)}
        self.blank_id = 0
        self.space_id = self._ids[SPACE]

    def __len__(self) -> int:
        return len(self.vocab)

    def encode(self, text: str) -> list[int]:
        """Normalized text -> ids. Characters outside the vocabulary are dropped."""
        return [self._ids[c] for c in normalize_text(text) if c in self._ids]

    def decode(self, ids) -> str:
        """ids -> text (blanks dropped, no CTC collapsing; see asr.decode for that)."""
        return "".join(self.vocab[i] for i in ids if i != self.blank_id)
