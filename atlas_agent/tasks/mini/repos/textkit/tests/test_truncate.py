import pytest

from textkit import truncate


def test_short_text_is_unchanged():
    assert truncate("short", 10) == "short"


def test_cuts_at_word_boundary():
    assert truncate("The quick brown fox", 12) == "The quick…"


def test_cut_exactly_before_a_space_keeps_the_word():
    assert truncate("The quick brown fox", 10) == "The quick…"


def test_break_words():
    assert truncate("The quick brown fox", 12, break_words=True) == "The quick b…"


def test_custom_placeholder():
    assert truncate("The quick brown fox", 14, placeholder="...") == "The quick..."


def test_long_first_word_is_cut():
    assert truncate("Pneumonoultramicroscopic", 8) == "Pneumon…"


def test_wide_characters_count_double():
    assert truncate("東京タワーの夜景", 7) == "東京タ…"


def test_width_too_small():
    with pytest.raises(ValueError):
        truncate("abc", 2, placeholder="...")
