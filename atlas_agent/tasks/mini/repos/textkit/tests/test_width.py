import pytest

from textkit import char_width, display_width


def test_ascii():
    assert display_width("hello") == 5


def test_wide_characters_take_two_columns():
    assert char_width("東") == 2
    assert display_width("東京") == 4
    assert display_width("ｈｉ") == 4  # fullwidth Latin


def test_invisible_characters():
    assert char_width("\u200b") == 0  # zero-width space
    assert display_width("a\u200db") == 2  # joiner
    assert char_width("\t") == 0


def test_char_width_wants_one_character():
    with pytest.raises(ValueError):
        char_width("ab")
