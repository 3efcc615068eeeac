"""Atomic file writes: a killed process never leaves a half-written file behind."""

from __future__ import annotations

import errno
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from atlas_agent.errors import DiskFull

# What a name must not hold to stay one entry of its folder: separators, NUL; nor be "." or "..".
_NOT_IN_A_NAME = re.compile(r"[/\\\x00]")


def path_component(value: str, what: str) -> str:
    """`value`, when it names exactly one entry inside a folder; ValueError when it could point anywhere else
    (dataset ids and run ids become folder names: `../../x` must not write outside the run)."""
    if value in ("", ".", "..") or _NOT_IN_A_NAME.search(value):
        raise ValueError(
            f"{what} {value!r} is not a plain name: it must not be empty, '.', '..' or hold '/', '\\' or NUL"
        )
    return value


def write_atomic(path: Path, text: str) -> None:
    """Writes `path` whole or not at all; DiskFull (one line) when its disk has no room left."""
    try:
        _replace_with(path, text)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFull(
                f"no space left on the disk holding {path.parent} (writing {path.name}): free some space and rerun"
                " the same command; finished instances are kept and unfinished ones run again"
            ) from None
        raise


def _replace_with(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, data: Any) -> None:
    if isinstance(data, BaseModel):
        text = data.model_dump_json(indent=2)
    else:
        text = json.dumps(data, indent=2, ensure_ascii=False)
    write_atomic(path, text + "\n")
