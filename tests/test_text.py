"""asr.text: normalization rules (tables of cases) and the character tokenizer."""

from __future__ import annotations

import random
import string

import pytest

from asr.text import BLANK, DEFAULT_VOCAB, SPACE, CharTokenizer, normalize_text


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("HELLO World", "hello world"),  # case
        ("Hello, world! How are you?", "hello world how are you"),  # punctuation
        ("don\u2019t  it\u2018s rock`n", "don't it's rock'n"),  # curly and other apostrophes
        ("'quoted' words", "quoted words"),  # quote marks around words are not apostrophes
        ("rock 'n' roll", "rock n roll"),
        ("well-known mother-in-law", "well known mother in law"),  # hyphens split words
        ("  tabs\tand\nnewlines   \r\n", "tabs and newlines"),  # whitespace
        ("caf\u00e9 na\u00efve \u00c9cole \u00fcber", "cafe naive ecole uber"),  # accents folded
        ("\ufb01ne", "fine"),  # ligature (NFKD)
        ("3 apples & 2 pears", "three apples and two pears"),
        ("a #hash* @sign", "a hash sign"),  # other symbols are dropped
        ("beautiful\u2014while it\u2013was", "beautiful while it was"),  # dashes split words
        ("Stra\u00dfe \u00c6sop \u0153uvre \u00d8rsted", "strasse aesop oeuvre orsted"),  # no NFKD split
        ("...!?", ""),
        ("", ""),
    ],
)
def test_normalize_text(raw, expected):
    assert normalize_text(raw) == expected


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("in 1884", "in eighteen eighty four"),  # years: plain 4-digit numbers 1100..2099
        ("1100, 1905, 2000, 2010", "eleven hundred nineteen oh five two thousand twenty ten"),
        ("1066 and 2100", "one thousand and sixty six and two thousand one hundred"),  # outside: cardinals
        ("42 men, 7 boys, 0 girls", "forty two men seven boys zero girls"),
        ("123 and 100000", "one hundred and twenty three and one hundred thousand"),
        ("1,000 and 2,500,000", "one thousand and two million five hundred thousand"),
        ("call 0351 or 5550123456789", "call zero three five one or five five five zero one two three four five "
         "six seven eight nine"),  # leading zero / very long: digit by digit
        ("the 1st, 2nd, 3rd, 4th and 21ST", "the first second third fourth and twenty first"),
        ("in the 1920s and 1880's", "in the nineteen twenties and eighteen eighties"),
        ("$5", "five dollars"),
        ("$1 and $1.01", "one dollar and one dollar one cent"),
        ("$3.50, \u00a32 and \u20ac 1,000", "three dollars fifty cents two pounds and one thousand euros"),
        ("at 3:30 p.m. or 12:00 or 7:05", "at three thirty p m or twelve o'clock or seven oh five"),
        ("3.14 and 0.5", "three point one four and zero point five"),
        ("50% and 2.5 %", "fifty percent and two point five percent"),
        ("\uff13 x\u00b2", "three x two"),  # full-width and superscript digits
    ],
)
def test_numbers_are_spelled_out(raw, expected):
    assert normalize_text(raw) == expected


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("Mr. Smith and Mrs. Smith met Dr. Watson.", "mister smith and missus smith met doctor watson"),
        ("Mr Smith and Dr Watson", "mister smith and doctor watson"),  # British style, no period
        ("St. Paul's is not in Baker St.", "saint paul's is not in baker street"),
        ("St Albans", "saint albans"),
        ("Capt. Hook, Col. Mustard, Gen. Grant, Prof. X", "captain hook colonel mustard general grant professor x"),
        ("MR. SMITH", "mister smith"),  # upper case with a period
        ("MR SMITH SAID NO", "mr smith said no"),  # upper case without one: words (speechocean762 style)
        ("No. 5 said no. No.", "number five said no no"),
        ("apples, pears, etc. vs. e.g. figs, i.e. fruit", "apples pears et cetera versus for example figs that is "
         "fruit"),
        ("the dr. said", "the dr said"),  # lower-case "dr." is ambiguous: left as letters
    ],
)
def test_abbreviations_are_expanded(raw, expected):
    assert normalize_text(raw) == expected


def test_normalize_text_is_idempotent():
    rng = random.Random(0)
    alphabet = string.ascii_letters + string.punctuation + string.digits + " \t\n'\u2019\u00e9\u00df-$%"
    for _ in range(200):
        once = normalize_text("".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40))))
        assert normalize_text(once) == once


def test_blank_is_id_zero_and_space_has_an_id():
    tokenizer = CharTokenizer()
    assert tokenizer.blank_id == 0 and tokenizer.vocab[0] == BLANK
    assert tokenizer.vocab[tokenizer.space_id] == SPACE
    assert len(tokenizer) == len(DEFAULT_VOCAB) == 29
    assert 0 not in tokenizer.encode("every letter of the alphabet abcdefghijklmnopqrstuvwxyz'")


def test_encode_decode_round_trip_of_normalized_text():
    tokenizer = CharTokenizer()
    rng = random.Random(1)
    words = ["the", "don't", "zebra", "quick", "jump", "o'clock", "a", "xylophone"]
    for _ in range(100):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(1, 8)))
        ids = tokenizer.encode(text)
        assert len(ids) == len(text)
        assert tokenizer.decode(ids) == text
    # Raw text round-trips to its normalized form.
    assert tokenizer.decode(tokenizer.encode("Well-KNOWN caf\u00e9!")) == "well known cafe"


def test_decode_drops_blanks():
    tokenizer = CharTokenizer()
    ids = tokenizer.encode("hi")
    assert tokenizer.decode([0, ids[0], 0, 0, ids[1], 0]) == "hi"


def test_custom_vocabulary_must_start_with_blank_and_contain_space():
    with pytest.raises(ValueError, match="blank"):
        CharTokenizer(["a", BLANK, SPACE])
    with pytest.raises(ValueError, match="space"):
        CharTokenizer([BLANK, "a", "b"])
    tokenizer = CharTokenizer([BLANK, SPACE, "a", "b"])
    assert tokenizer.encode("a cab") == [2, 1, 2, 3]  # 'c' is not in this vocabulary
