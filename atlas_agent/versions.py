"""Versions recorded with every run, so a result can be traced to the code that made it."""

from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version

TRACKED = ("atlas-agent", "swebench", "docker", "anthropic", "pydantic")


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in TRACKED:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found
