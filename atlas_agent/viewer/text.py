"""Numbers and texts as both views write them: costs, durations, token counts, patch sizes, and long
texts collapsed to their first and last lines."""

from __future__ import annotations

import json
from typing import Any

from atlas_agent.viewer.models import PatchStats


def cost(usd: float) -> str:
    return f"${usd:.4f}" if usd else "-"


def duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m {rest:02d}s" if minutes < 60 else f"{minutes // 60}h {minutes % 60:02d}m"


def tokens(count: int) -> str:
    if count < 1000:
        return str(count)
    return f"{count / 1000:.1f}k" if count < 1_000_000 else f"{count / 1_000_000:.2f}M"


def patch_size(patch: PatchStats) -> str:
    if patch.empty:
        return "empty"
    files = len(patch.files)
    return f"+{patch.added} -{patch.removed} ({files} file{'s' if files != 1 else ''})"


def collapsed(text: str, head: int = 3, tail: int = 3) -> str:
    """`text`'s first `head` and last `tail` lines, with how many were left out between them."""
    lines = text.rstrip("\n").splitlines()
    if len(lines) <= head + tail + 1:
        return "\n".join(lines)
    hidden = len(lines) - head - tail
    return "\n".join([*lines[:head], f"... {hidden} more lines ...", *lines[len(lines) - tail :]])


def clipped(text: str, limit: int) -> str:
    """`text` cut to about `limit` characters, head and tail, saying how much is left out."""
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n[... {len(text) - 2 * half} characters left out ...]\n{text[len(text) - half :]}"


def clipped_line(line: str, limit: int) -> str:
    first = line.strip().splitlines()[0] if line.strip() else ""
    return first if len(first) <= limit else first[: limit - 3] + "..."


def arguments_text(arguments: dict[str, Any]) -> str:
    """A tool call's arguments as a reader scans them: `$ command` for a shell command, else `key=value ...`."""
    if set(arguments) == {"command"} and isinstance(arguments["command"], str):
        return f"$ {arguments['command'].rstrip()}"
    shown = [f"{key}={value if isinstance(value, str) else json.dumps(value)}" for key, value in arguments.items()]
    return " ".join(shown)
