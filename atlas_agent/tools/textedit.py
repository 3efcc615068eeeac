"""The text operations behind the edit tool, pure so they are tested without a container.
Lines are split on "\\n" only, as sed, grep and editors number them."""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from atlas_agent.tools.output import numbered, plural
from atlas_agent.tools.paths import UsageError

CONTEXT = 4
MAX_CANDIDATES = 20


@dataclass(frozen=True)
class Change:
    text: str  # the whole new content
    first: int  # the changed lines in the new content, 1-based, inclusive
    last: int
    summary: str


def line_count(text: str) -> int:
    return text.count("\n") + (1 if text and not text.endswith("\n") else 0)


def line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def replace_once(text: str, old: str, new: str, relative: str) -> Change:
    if not old:
        raise UsageError("str_replace needs old_str: the exact text to replace.")
    if old == new:
        raise UsageError("old_str and new_str are the same: nothing would change.")
    count = text.count(old)
    if count == 0:
        raise UsageError(_no_match(text, old, relative))
    if count > 1:
        raise UsageError(_many_matches(text, old, relative, count))
    offset = text.index(old)
    first = line_of(text, offset)
    last = first + new.count("\n") - (1 if new.endswith("\n") else 0)
    return Change(text[:offset] + new + text[offset + len(old) :], first, max(first, last), "replaced 1 occurrence")


def insert_after(text: str, line: int, new: str) -> Change:
    total = line_count(text)
    if not 0 <= line <= total:
        raise UsageError(f"insert_line must be between 0 (the top) and {total} (the end); got {line}.")
    if not new:
        raise UsageError("insert needs new_str: the text to insert.")
    block = new if new.endswith("\n") else new + "\n"
    if line == total and text and not text.endswith("\n"):
        text += "\n"  # the last line had no newline: the new lines go after it, not onto it
    offset = 0
    for _ in range(line):
        offset = text.index("\n", offset) + 1
    added = block.count("\n")
    summary = f"inserted {plural(added, 'line')} after line {line}"
    return Change(text[:offset] + block + text[offset:], line + 1, line + added, summary)


def first_difference(before: str, after: str) -> int:
    """The 1-based number of the first line that differs."""
    for number, (old, new) in enumerate(zip(before.split("\n"), after.split("\n"), strict=False), 1):
        if old != new:
            return number
    return min(line_count(before), line_count(after)) + 1


def snippet(text: str, first: int, last: int) -> tuple[str, int, int]:
    """The changed lines with some context, numbered; and the range shown."""
    lines = text.split("\n")
    if text.endswith("\n"):
        lines.pop()
    start, end = max(1, first - CONTEXT), min(len(lines), last + CONTEXT)
    return numbered(lines[start - 1 : end], start), start, end


def _many_matches(text: str, old: str, relative: str, count: int) -> str:
    offsets, offset = [], text.find(old)
    while offset >= 0:
        offsets.append(offset)
        offset = text.find(old, offset + len(old))
    numbers = [line_of(text, offset) for offset in offsets]
    lines = text.split("\n")
    shown = "\n".join(f"  line {n}: {lines[n - 1].strip()}" for n in numbers[:MAX_CANDIDATES])
    return (
        f"old_str occurs {count} times in {relative}, at lines {', '.join(map(str, numbers))}. "
        f"No change was made: include more of the surrounding lines in old_str so that it matches once.\n{shown}"
    )


def _no_match(text: str, old: str, relative: str) -> str:
    message = (
        f"old_str does not occur in {relative}; no change was made. It must match exactly, "
        "whitespace and indentation included."
    )
    similar = similar_lines(text, old)
    if similar:
        width = len(str(similar[-1][0]))
        message += "\nLines that look similar:\n" + "\n".join(f"{n:>{width}}  {line}" for n, line in similar)
    return message


def similar_lines(text: str, old: str) -> list[tuple[int, str]]:
    """Lines holding old_str's first non-blank line (stripped), else the lines that start most
    like it: comparing equal lengths, so a typo in a short old_str still finds its long line."""
    probe = next((line.strip() for line in old.split("\n") if line.strip()), "")
    if not probe:
        return []
    lines = text.split("\n")
    hits = [(n, line) for n, line in enumerate(lines, 1) if probe in line]
    if not hits:
        starts = {line.strip()[: len(probe)] for line in lines}
        close = set(difflib.get_close_matches(probe, starts, n=5, cutoff=0.6))
        hits = [(n, line) for n, line in enumerate(lines, 1) if line.strip()[: len(probe)] in close]
    return hits[:MAX_CANDIDATES]
