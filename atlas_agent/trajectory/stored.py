"""What the trajectory stores of long texts a model wrote, and its timestamps."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

# What is stored of each text a model wrote (its reply, each string in its tool calls and passed-back
# blocks): a runaway reply of megabytes would otherwise be rewritten whole after every step. The
# conversation the model sees keeps it whole; the trajectory keeps head and tail and the full length.
STORED_REPLY_CHARS = 65_536


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def stored_text(text: str, limit: int = STORED_REPLY_CHARS) -> str:
    """`text` when it fits `limit`, else its head and tail around a marker saying how much is left out;
    never longer than `limit`, so storing it again changes nothing."""
    if len(text) <= limit:
        return text
    marker = f"\n[... {{}} of {len(text)} characters not stored ...]\n"
    kept = limit - len(marker.format(len(text)))
    head, tail = text[: kept - kept // 2], text[len(text) - kept // 2 :]
    return head + marker.format(len(text) - kept) + tail


def stored(value: Any, where: str, cut: dict[str, int]) -> Any:
    """`value` with every string cut to what is stored; the full length of each one cut goes to `cut`."""
    if isinstance(value, str):
        if len(value) > STORED_REPLY_CHARS:
            cut[where] = len(value)
        return stored_text(value)
    if isinstance(value, dict):
        return {key: stored(item, f"{where}.{key}", cut) for key, item in value.items()}
    if isinstance(value, list):
        return [stored(item, f"{where}.{i}", cut) for i, item in enumerate(value)]
    return value
