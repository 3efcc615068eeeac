"""Shortening text to fit a number of columns."""

from __future__ import annotations

from textkit.width import char_width, display_width


def truncate(text: str, width: int, placeholder: str = "…", *, break_words: bool = False) -> str:
    """Shorten `text` to at most `width` columns, ending with `placeholder`.

    Text that already fits is returned unchanged. Unless `break_words` is set,
    the cut happens at the last space that leaves room for the placeholder, so
    no word is split in half; a first word too long to fit is cut anyway.
    """
    if width < display_width(placeholder):
        raise ValueError("width is too small to hold the placeholder")
    if display_width(text) <= width:
        return text

    room = width - display_width(placeholder)
    head = _take_columns(text, room)
    if not break_words:
        # the cut falls inside a word unless the next character is a space
        cut_mid_word = not text[len(head) : len(head) + 1].isspace()
        if cut_mid_word and " " in head:
            head = head[: head.rfind(" ")]
    return head.rstrip() + placeholder


def _take_columns(text: str, columns: int) -> str:
    """The longest prefix of `text` that fits in `columns`."""
    used = 0
    for index, char in enumerate(text):
        used += char_width(char)
        if used > columns:
            return text[:index]
    return text
