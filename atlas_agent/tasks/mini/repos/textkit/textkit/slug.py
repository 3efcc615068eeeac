"""URL slugs."""

from __future__ import annotations

import re
import unicodedata

_APOSTROPHES = re.compile(r"['\u2019]")
_NOT_ALNUM = re.compile(r"[^A-Za-z0-9]+")


def slugify(
    text: str,
    sep: str = "-",
    *,
    max_length: int | None = None,
    lowercase: bool = True,
) -> str:
    """Turn `text` into an ASCII slug suitable for a URL or a file name.

    Accented letters lose their accents, anything else that is not a letter or
    digit becomes a separator, and apostrophes are dropped so that "don't"
    stays one word. With `max_length`, the slug is cut at a word boundary
    where possible.
    """
    if not sep:
        raise ValueError("sep must not be empty")
    if max_length is not None and max_length < 1:
        raise ValueError("max_length must be positive")

    normalized = unicodedata.normalize("NFC", text)
    ascii_text = normalized.encode("ascii", "ignore").decode("ascii")
    ascii_text = _APOSTROPHES.sub("", ascii_text)
    if lowercase:
        ascii_text = ascii_text.lower()
    slug = _NOT_ALNUM.sub(sep, ascii_text).strip(sep)

    if max_length is not None and len(slug) > max_length:
        slug = _cut(slug, sep, max_length)
    return slug


def _cut(slug: str, sep: str, max_length: int) -> str:
    """Shorten a slug to at most `max_length`, preferring a word boundary."""
    head = slug[:max_length]
    if slug[max_length:].startswith(sep):
        return head.rstrip(sep)
    boundary = head.rfind(sep)
    if boundary > 0:
        return head[:boundary]
    # one long word: cut it rather than return nothing
    return head
