"""Escaping text for Markdown."""

from __future__ import annotations

import re

# every character CommonMark allows to be backslash-escaped that can change
# how a line renders
_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~])")


def escape_markdown(text: str) -> str:
    """Escape `text` so that Markdown renders it literally."""
    return _SPECIAL.sub(r"\\\1", text)
