"""Bounding what the model sees: every tool's text goes through `bound`, so a huge output costs a
fixed number of tokens and the same input always gives the same observation."""

from __future__ import annotations

import time

from atlas_agent.vocabulary import Observation

MAX_CHARS = 16_000
# A cut lands on a line break when one is this close to the budget's edge, so lines stay whole.
_SNAP = 400


def bound(text: str, max_chars: int = MAX_CHARS, *, tail_share: float = 0.5) -> tuple[str, bool]:
    """`text` if it fits in `max_chars`, else its head and tail around one line
    `[... N characters elided ...]`; and whether anything was elided."""
    if len(text) <= max_chars:
        return text, False
    tail_chars = int(max_chars * tail_share)
    head_end = _snap_back(text, max_chars - tail_chars)
    tail_start = _snap_forward(text, len(text) - tail_chars)
    elided = tail_start - head_end
    head, tail = text[:head_end], text[tail_start:]
    separator = "" if not head or head.endswith("\n") else "\n"
    return f"{head}{separator}[... {elided} characters elided ...]\n{tail}", True


def _snap_back(text: str, end: int) -> int:
    """`end`, moved back to just after a line break if one is near."""
    cut = text.rfind("\n", max(0, end - _SNAP), end)
    return cut + 1 if cut >= 0 else end


def _snap_forward(text: str, start: int) -> int:
    """`start`, moved forward to just after a line break if one is near."""
    cut = text.find("\n", start, start + _SNAP)
    return cut + 1 if cut >= 0 else start


def observe(
    text: str,
    started: float,
    *,
    max_chars: int = MAX_CHARS,
    exit_code: int | None = None,
    timed_out: bool = False,
    truncated: bool = False,
) -> Observation:
    """An observation of `text`, bounded; the complete text is kept in `full_output` when cut."""
    shown, cut = bound(text, max_chars)
    return Observation(
        output=shown,
        full_output=text if cut else None,
        exit_code=exit_code,
        timed_out=timed_out,
        truncated=truncated or cut,
        duration_s=round(time.monotonic() - started, 4),
    )


def numbered(lines: list[str], first: int, *, width: int | None = None) -> str:
    """Lines prefixed with their 1-based numbers, right-aligned, starting at `first`."""
    width = width or len(str(first + len(lines) - 1))
    return "\n".join(f"{number:>{width}}  {line}" for number, line in enumerate(lines, first))


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"
