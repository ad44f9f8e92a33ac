"""Text normalization and the character tokenizer.

Every transcript (training targets, references at evaluation time, hypotheses,
and the text language models are built from) goes through `normalize_text`, so
scoring never depends on a corpus's casing, punctuation or way of writing
numbers:

    normalize_text("Mr. Smith paid $3.50 on May 1st, 1884.")
    -> "mister smith paid three dollars fifty cents on may first eighteen eighty four"

The rules, in order:
1. Abbreviations of titles and places become words ("Mr." -> "mister", "Dr." ->
   "doctor", "St. Paul" -> "saint paul", "Baker St." -> "baker street"); see
   `ABBREVIATIONS`. Title-case ones also match without the period when a
   capitalized name follows ("Mr Smith"); upper-case ones need the period, so an
   upper-case transcript word such as "NO" is left alone.
2. Numbers are spelled as a reader says them (num2words for the words):
   currency "$5.50" -> "five dollars fifty cents", percentages, times "3:30" ->
   "three thirty", ordinals "21st", decades "1920s" -> "nineteen twenties",
   decimals "3.14" -> "three point one four", "1,000", years "1884" ->
   "eighteen eighty four" (every plain 4-digit number from 1100 to 2099 is read
   as a year), digit strings with a leading zero or of more than 12 digits
   digit by digit ("0351" -> "zero three five one"), any other integer as a cardinal.
3. Letters are folded to ASCII ("café" -> "cafe", "ß" -> "ss"); any other
   character that is not a letter, a digit or an apostrophe inside a word becomes a word
   break, so hyphens and dashes split words ("well-known" -> "well known").
4. "&" -> "and"; lower case, single spaces.

The tokenizer maps characters to ids with the CTC blank at id 0 and the space
character as the word separator. Its vocabulary is a plain list of strings that
is stored inside every checkpoint.
"""

from __future__ import annotations

import functools
import re
import string
import unicodedata

BLANK = "<blank>"
SPACE = " "
WORD_SEPARATOR = "|"  # flashlight's name for SPACE in lexicons and character LMs (asr.decode, asr.lm)
DEFAULT_VOCAB = [BLANK, SPACE, "'", *string.ascii_lowercase]  # 29 symbols

# Abbreviation (title case, without its period) -> words. "St" is special-cased below.
ABBREVIATIONS = {
    "Mr": "mister", "Mrs": "missus", "Ms": "miz", "Dr": "doctor", "Messrs": "messieurs",
    "Mme": "madame", "Mlle": "mademoiselle", "Prof": "professor", "Rev": "reverend",
    "Capt": "captain", "Col": "colonel", "Gen": "general", "Lieut": "lieutenant", "Lt": "lieutenant",
    "Sgt": "sergeant", "Gov": "governor", "Hon": "honorable", "Jr": "junior", "Sr": "senior",
    "Esq": "esquire", "Mt": "mount", "Ft": "fort", "Ave": "avenue", "Bros": "brothers",
    "Vs": "versus", "Etc": "et cetera", "Viz": "namely",
}
# Titles that are abbreviations even without a period, when a capitalized name follows.
_TITLES = ("Mr", "Mrs", "Ms", "Dr", "Messrs", "Mme", "Mlle", "St")
_ABBREVIATION = re.compile(
    r"\b(?:(?P<word>[A-Za-z]+)\.|(?P<title>%s)\b(?=\s+[A-Z]))" % "|".join(_TITLES))
_NEXT_IS_NAME = re.compile(r"\s+[A-Z]")
_NEXT_IS_DIGIT = re.compile(r"\s?[0-9]")
_LOWER_CASE_ABBREVIATIONS = ("Vs", "Etc", "Viz")
_LATIN = {"e.g.": " for example ", "i.e.": " that is ", "E.g.": " for example ", "I.e.": " that is "}
_LATIN_RE = re.compile(r"\b(?:[eE]\.g|[iI]\.e)\.")

CURRENCIES = {"$": ("dollar", "dollars", "cent", "cents"), "£": ("pound", "pounds", "penny", "pence"),
              "€": ("euro", "euros", "cent", "cents")}
DIGIT_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
_INT = r"[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+"  # 1,234,567 or 1234567
_CURRENCY = re.compile(r"([$£€])\s?(%s)(?:\.([0-9]{2})\b)?" % _INT)
_PERCENT = re.compile(r"(%s)(\.[0-9]+)?\s?%%" % _INT)
_TIME = re.compile(r"\b([01]?[0-9]|2[0-3]):([0-5][0-9])\b")
_ORDINAL = re.compile(r"\b([0-9]+)(?:st|nd|rd|th|ST|ND|RD|TH)\b")
_DECADE = re.compile(r"\b([0-9]+0)'?s\b")
_DECIMAL = re.compile(r"\b(%s)\.([0-9]+)\b" % _INT)
_NUMBER = re.compile(_INT)
_DIGIT = re.compile(r"[0-9]")

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "`": "'", "\u00b4": "'", "\u02bc": "'"})
_LETTERS_WITHOUT_DECOMPOSITION = {  # letters NFKD does not split into an ASCII letter + accent
    "ß": "ss", "æ": "ae", "Æ": "AE", "œ": "oe", "Œ": "OE", "ø": "o", "Ø": "O", "ł": "l", "Ł": "L",
    "đ": "d", "Đ": "D", "ð": "d", "Ð": "D", "þ": "th", "Þ": "TH", "ı": "i"}
_NOT_ALLOWED = re.compile(r"[^a-z' ]+")
_SPACES = re.compile(r"\s+")
_STRAY_APOSTROPHE = re.compile(r"(?<![a-z])'|'(?![a-z])")


def normalize_text(text: str) -> str:
    """Raw text -> lower-case words of [a-z'] separated by single spaces (rules in the module docstring).

    Apostrophes inside words are kept ("don't"); quote marks around words are not.
    Idempotent: normalize_text(normalize_text(t)) == normalize_text(t).
    """
    text = text.translate(_APOSTROPHES)
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)  # "ﬁ" -> "fi", "²" -> "2", full-width digits -> ASCII
    if "." in text or any(title in text for title in _TITLES):
        text = _LATIN_RE.sub(lambda m: _LATIN[m.group()], text)
        text = _ABBREVIATION.sub(_expand_abbreviation, text)
    if _DIGIT.search(text):
        text = spell_numbers(text)
    text = fold_to_ascii(text).lower().replace("&", " and ")
    text = _NOT_ALLOWED.sub(" ", text)
    text = _STRAY_APOSTROPHE.sub(" ", text)
    return _SPACES.sub(" ", text).strip()


def fold_to_ascii(text: str) -> str:
    """Accented and other Latin letters -> ASCII letters; any other non-ASCII character -> a space."""
    return text if text.isascii() else text.translate(_ASCII_FOLD)


class _AsciiFold(dict):
    """str.translate table built lazily: code point -> its ASCII letters ("é" -> "e", "ß" -> "ss", "—" -> " ")."""

    def __missing__(self, codepoint: int) -> str:
        char = chr(codepoint)
        decomposed = unicodedata.normalize("NFKD", _LETTERS_WITHOUT_DECOMPOSITION.get(char, char))
        folded = "".join(c if c.isascii() else ("" if unicodedata.combining(c) else " ") for c in decomposed)
        self[codepoint] = folded
        return folded


_ASCII_FOLD = _AsciiFold()


def _expand_abbreviation(match: re.Match) -> str:
    word = match.group("word") or match.group("title")
    if word[:1].isupper() and (word[1:].islower() or not word[1:]):
        key = word  # "Mr", "St"
    elif word.isupper() and match.group("word"):
        key = word.capitalize()  # "MR." (an upper-case word without a period, "NO", is a word)
    elif word.islower() and word.capitalize() in _LOWER_CASE_ABBREVIATIONS:
        key = word.capitalize()  # "etc.", "vs."; "dr." in lower case is too ambiguous
    else:
        return match.group()
    rest = match.string[match.end():]
    if key == "St":  # "St. Paul" -> saint; "Baker St." -> street
        return " saint " if _NEXT_IS_NAME.match(rest) else " street "
    if key == "No":  # "No. 5" -> number five; "No." alone is the word no
        return " number " if _NEXT_IS_DIGIT.match(rest) else match.group()
    if key not in ABBREVIATIONS:
        return match.group()
    return f" {ABBREVIATIONS[key]} "


def spell_numbers(text: str) -> str:
    """Digits in `text` -> words, as a reader says them (the number rules of the module docstring)."""
    text = _CURRENCY.sub(_spell_currency, text)
    text = _PERCENT.sub(lambda m: f" {_decimal_words(m.group(1), m.group(2))} percent ", text)
    text = _TIME.sub(_spell_time, text)
    text = _ORDINAL.sub(lambda m: f" {_num2words(int(m.group(1)), to='ordinal')} ", text)
    text = _DECADE.sub(lambda m: f" {_plural(integer_words(m.group(1)))} ", text)
    text = _DECIMAL.sub(lambda m: f" {_decimal_words(m.group(1), '.' + m.group(2))} ", text)
    return _NUMBER.sub(lambda m: f" {integer_words(m.group())} ", text)


def integer_words(digits: str) -> str:
    """ "42" -> "forty two", "1,000" -> "one thousand", "1884" -> "eighteen eighty four",
    "0351" -> "zero three five one" (digit strings with a leading zero, or over 12 digits, digit by digit)."""
    if "," in digits:
        return _num2words(int(digits.replace(",", "")))
    if (len(digits) > 1 and digits[0] == "0") or len(digits) > 12:
        return " ".join(DIGIT_WORDS[int(d)] for d in digits)
    number = int(digits)
    if len(digits) == 4 and 1100 <= number <= 2099:
        return _num2words(number, to="year")
    return _num2words(number)


def _decimal_words(integer: str, fraction: str | None) -> str:
    """ "3", ".14" -> "three point one four" (fraction digits one by one, as read)."""
    words = _num2words(int(integer.replace(",", "")))
    if fraction:
        words += " point " + " ".join(DIGIT_WORDS[int(d)] for d in fraction[1:])
    return words


def _spell_currency(match: re.Match) -> str:
    one, many, one_cent, cents = CURRENCIES[match.group(1)]
    amount = int(match.group(2).replace(",", ""))
    words = f"{_num2words(amount)} {one if amount == 1 else many}"
    if match.group(3) and int(match.group(3)):
        cent_count = int(match.group(3))
        words += f" {_num2words(cent_count)} {one_cent if cent_count == 1 else cents}"
    return f" {words} "


def _spell_time(match: re.Match) -> str:
    hours, minutes = int(match.group(1)), int(match.group(2))
    if minutes == 0:
        return f" {_num2words(hours)} o'clock "
    oh = "oh " if minutes < 10 else ""
    return f" {_num2words(hours)} {oh}{_num2words(minutes)} "


def _plural(words: str) -> str:
    """ "nineteen twenty" -> "nineteen twenties", "eighteen hundred" -> "eighteen hundreds"."""
    if words.endswith("y"):
        return words[:-1] + "ies"
    return words + ("es" if words.endswith("x") else "s")


@functools.lru_cache(maxsize=1 << 16)  # num2words takes ~0.1 ms a call; texts repeat their numbers
def _num2words(number: int, to: str = "cardinal") -> str:
    from num2words import num2words  # imported on first use: most text has no digits

    return num2words(number, lang="en", to=to)


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
