"""How many columns text occupies in a monospaced terminal or editor."""

from __future__ import annotations

import unicodedata

# categories that never take up a column: controls and invisible formatting
# characters such as the zero-width space and joiners
_ZERO_WIDTH_CATEGORIES = frozenset({"Cc", "Cf"})


def char_width(char: str) -> int:
    """The number of columns one code point occupies: 0, 1 or 2."""
    if len(char) != 1:
        raise ValueError(f"char_width() expects one character, got {len(char)}")
    if unicodedata.category(char) in _ZERO_WIDTH_CATEGORIES:
        return 0
    if unicodedata.east_asian_width(char) in ("W", "F"):
        return 2
    return 1


def display_width(text: str) -> int:
    """The number of columns `text` occupies when printed on one line."""
    return sum(char_width(char) for char in text)
