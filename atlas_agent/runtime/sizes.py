"""Disk sizes as people write them ("60GiB", "500MB", "1B") and as Atlas prints them."""

from __future__ import annotations

import re

from atlas_agent.errors import AtlasError

_SIZE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*([a-z]*)")
# KB, MB, GB, TB are decimal (as disks are sold); KiB… and Docker's single letters K, M, G, T binary
_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}
_UNITS |= {"kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}
_SHOWN_UNITS = ("KiB", "MiB", "GiB", "TiB")


class SizeError(AtlasError):
    """A size that cannot be read."""


def parse_size(text: str, option: str) -> int:
    """Bytes in "60GiB", "60GB", "500 MiB", "1.5G", "1B" or "1024" (bytes); `option` names where it came from."""
    match = _SIZE.fullmatch(text.strip().lower())
    if not match or match.group(2) not in _UNITS:
        raise SizeError(
            f"{option}: cannot read {text!r} as a size: use e.g. 60GiB, 500MB or 1B "
            "(KB, MB, GB, TB are decimal; KiB, MiB, GiB, TiB and K, M, G, T binary)"
        )
    return round(float(match.group(1)) * _UNITS[match.group(2)])


def format_size(size: int) -> str:
    """Binary units, one decimal: "512 B", "52.1 KiB", "60.0 GiB"."""
    if abs(size) < 1024:
        return f"{size} B"
    value, exponent = float(size), 0
    while abs(value) >= 1024 and exponent < len(_SHOWN_UNITS):  # the last unit takes whatever is larger still
        value /= 1024
        exponent += 1
    return f"{value:.1f} {_SHOWN_UNITS[exponent - 1]}"
