"""asr.text: normalization rules and the character tokenizer."""

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
        ("3 apples & 2 pears", "apples pears"),  # digits and symbols are dropped
        ("...!?", ""),
        ("", ""),
    ],
)
def test_normalize_text(raw, expected):
    assert normalize_text(raw) == expected


def test_normalize_text_is_idempotent():
    rng = random.Random(0)
    alphabet = string.ascii_letters + string.punctuation + " \t\n'\u2019\u00e9-"
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
