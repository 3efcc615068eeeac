import pytest

from textkit import slugify


def test_basic_phrase():
    assert slugify("Hello, World!") == "hello-world"


def test_runs_of_punctuation_collapse():
    assert slugify("  a -- b __ c  ") == "a-b-c"


def test_apostrophes_do_not_split_words():
    assert slugify("Don't stop") == "dont-stop"
    assert slugify("Rock \u2019n\u2019 roll") == "rock-n-roll"


def test_custom_separator():
    assert slugify("Release notes 2024", sep="_") == "release_notes_2024"


def test_keep_case():
    assert slugify("Hello World", lowercase=False) == "Hello-World"


def test_max_length_cuts_at_word_boundary():
    assert slugify("the quick brown fox", max_length=12) == "the-quick"
    assert slugify("the quick brown fox", max_length=9) == "the-quick"


def test_max_length_cuts_a_single_long_word():
    assert slugify("supercalifragilistic", max_length=5) == "super"


def test_nothing_left():
    assert slugify("!!!") == ""


def test_rejects_bad_arguments():
    with pytest.raises(ValueError):
        slugify("x", sep="")
    with pytest.raises(ValueError):
        slugify("x", max_length=0)
