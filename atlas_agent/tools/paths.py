"""Paths the model names: resolved against the repository root and kept inside it, and globs
matched the same way by every tool."""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from functools import lru_cache

from atlas_agent.runtime.workspace import Workspace


class UsageError(Exception):
    """A mistake in the model's call (a missing file, a bad line number, a path outside the
    repository): its message becomes the observation, the episode goes on."""


@dataclass(frozen=True)
class RepoPath:
    absolute: str
    relative: str  # "." for the repository root itself


def resolve(workspace: Workspace, path: str) -> RepoPath:
    """`path`, relative to the repository root or absolute, as long as it stays inside the root."""
    root = posixpath.normpath(workspace.workdir)
    absolute = posixpath.normpath(posixpath.join(root, path.strip() or "."))
    if absolute != root and not absolute.startswith(root.rstrip("/") + "/"):
        raise UsageError(f"{path}: outside the repository ({root}); give a path inside it.")
    return RepoPath(absolute, posixpath.relpath(absolute, root))


@lru_cache(maxsize=64)
def glob_regex(pattern: str) -> re.Pattern[str]:
    """The regex of a glob over relative paths: `**` spans directories, `*` and `?` stay within
    one, `[...]` is a character class; a pattern without "/" matches file names at any depth."""
    pattern = pattern.strip().removeprefix("./")
    if "/" not in pattern:
        pattern = "**/" + pattern
    parts: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            parts.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            parts.append(".*")
            i += 2
        elif pattern[i] in "*?":
            parts.append("[^/]*" if pattern[i] == "*" else "[^/]")
            i += 1
        else:
            part, i = _literal_or_class(pattern, i)
            parts.append(part)
    return re.compile("".join(parts), re.DOTALL)


def _literal_or_class(pattern: str, i: int) -> tuple[str, int]:
    """The regex for the character at `i`, or for the whole `[...]` class starting there."""
    end = pattern.find("]", i + 2) if pattern[i] == "[" else -1
    if end < 0:
        return re.escape(pattern[i]), i + 1
    body = pattern[i + 1 : end].replace("\\", "\\\\")
    if body.startswith("!"):
        body = "^" + body[1:]
    return f"[{body}]", end + 1


def glob_match(pattern: str, relative_path: str) -> bool:
    return glob_regex(pattern).fullmatch(relative_path) is not None
