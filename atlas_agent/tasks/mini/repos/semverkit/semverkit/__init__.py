"""Semantic versions and version ranges."""

from semverkit.range import Comparator, Range, max_satisfying, satisfies
from semverkit.version import InvalidVersion, Version

__all__ = [
    "Comparator",
    "InvalidVersion",
    "Range",
    "Version",
    "max_satisfying",
    "satisfies",
]

__version__ = "0.1.0"
