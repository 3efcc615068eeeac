"""Converting identifiers between snake_case, kebab-case, camelCase and PascalCase."""

from __future__ import annotations

import re

# a word is: an acronym not followed by a lowercase letter ("HTTP" in
# "HTTPServer"), a capitalised or lowercase word, or a run of digits
_WORD = re.compile(
    r"""
    [A-Z]+(?=[A-Z][a-z]|\d|\b|_|$)   # acronym
    | [A-Z]?[a-z]+                   # word, maybe capitalised
    | [A-Z]+                         # remaining capitals
    | \d+                            # number
    """,
    re.VERBOSE,
)


def split_words(text: str) -> list[str]:
    """Split an identifier or phrase into its words, keeping their case.

    >>> split_words("parseHTTPResponse2xx")
    ['parse', 'HTTP', 'Response', '2', 'xx']
    """
    return _WORD.findall(text)


def to_snake(text: str) -> str:
    """``"parseHTTPResponse"`` -> ``"parse_http_response"``."""
    return "_".join(word.lower() for word in split_words(text))


def to_kebab(text: str) -> str:
    """``"parseHTTPResponse"`` -> ``"parse-http-response"``."""
    return "-".join(word.lower() for word in split_words(text))


def to_pascal(text: str, *, keep_acronyms: bool = False) -> str:
    """``"parse_http_response"`` -> ``"ParseHttpResponse"``.

    With `keep_acronyms`, words that are all capitals in the input stay that
    way: ``"parse HTTP response"`` -> ``"ParseHTTPResponse"``.
    """
    return "".join(_capitalise(word, keep_acronyms) for word in split_words(text))


def to_camel(text: str, *, keep_acronyms: bool = False) -> str:
    """``"parse_http_response"`` -> ``"parseHttpResponse"``."""
    words = split_words(text)
    if not words:
        return ""
    first, rest = words[0], words[1:]
    return first.lower() + "".join(_capitalise(word, keep_acronyms) for word in rest)


def _capitalise(word: str, keep_acronyms: bool) -> str:
    if keep_acronyms and len(word) > 1 and word.isupper():
        return word
    return word[:1].upper() + word[1:].lower()
