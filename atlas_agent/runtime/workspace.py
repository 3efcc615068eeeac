"""What the layers above act on: a shell with file access (tools need no more), and a task's
checkout that can also report its diff (what scaffolds hand back). A task container and a local
checkout are both."""

from __future__ import annotations

from typing import Protocol

from atlas_agent.vocabulary import CommandResult


class Workspace(Protocol):
    """A shell and file access at a repository root (`workdir`)."""

    workdir: str

    def run(self, command: str, timeout: float = 120.0) -> CommandResult: ...

    def read_file(self, path: str) -> bytes: ...

    def write_file(self, path: str, data: bytes | str, mode: int = 0o644) -> None: ...


class TaskWorkspace(Workspace, Protocol):
    """A task's checkout at its base commit: a task container, or a local checkout."""

    def diff(self, base_commit: str) -> str: ...
