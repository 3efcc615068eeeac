"""edit: exact-text replacement, insertion, file creation and undo, in the style of SWE-agent's
editor. Files move through the workspace's file API and all logic runs on the host. A Python file
that an edit would leave with a new syntax error is not written."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, Field

from atlas_agent.runtime.workspace import Workspace
from atlas_agent.tools.lint import excerpt, is_python, new_problem
from atlas_agent.tools.output import plural
from atlas_agent.tools.paths import RepoPath, UsageError, resolve
from atlas_agent.tools.shell_scripts import WorkspaceTool, capture, shell
from atlas_agent.tools.textedit import Change, first_difference, insert_after, line_count, replace_once, snippet

NEW_FILE_MODE = 0o644
BINARY_PROBE = 8192

# One line: what the path is, and for a regular file its mode and the real path that writes go to
# (a symlink stays a symlink).
_PROBE = """\
p={path}
if [ -d "$p" ]; then echo dir
elif [ -f "$p" ]; then printf 'file %s %s\\n' "$(stat -L -c %a -- "$p")" "$(readlink -f -- "$p")"
elif [ -e "$p" ] || [ -L "$p" ]; then echo other
else echo missing
fi"""


class EditArgs(BaseModel):
    command: Literal["str_replace", "insert", "create", "undo"] = Field(
        description="str_replace: replace the one exact occurrence of old_str with new_str. "
        "insert: insert new_str after line insert_line (0 inserts at the top). "
        "create: write a new file with file_text. undo: restore the file as it was before your last edit of it."
    )
    path: str = Field(description="The file, relative to the repository root.")
    old_str: str | None = Field(
        default=None,
        description="str_replace: the exact text to replace, whitespace and indentation included; "
        "it must occur exactly once, so include enough surrounding lines.",
    )
    new_str: str | None = Field(
        default=None, description="str_replace: the replacement (omit to delete old_str). insert: the text to insert."
    )
    insert_line: int | None = Field(default=None, description="insert: the line to insert after (0 = the top).")
    file_text: str | None = Field(default=None, description="create: the content of the new file.")


@dataclass(frozen=True)
class _Target:
    kind: str  # "file", "dir", "other" or "missing"
    mode: int = NEW_FILE_MODE
    real: str = ""  # where a regular file's content really lives


class EditTool(WorkspaceTool):
    name = "edit"
    description = (
        "Edit files: str_replace (exact, unique match), insert after a line, create a new file, or undo your "
        "last edit of a file. The changed lines are shown after each edit. An edit that would leave a Python "
        "file with a syntax error is refused and not applied."
    )
    Args = EditArgs

    def __init__(self, timeout: float = 120.0) -> None:
        super().__init__(timeout)
        # Per file, its content before each edit, oldest first; None: the edit created it.
        self._history: dict[str, list[bytes | None]] = {}

    def execute(self, args: EditArgs, workspace: Workspace) -> str:
        where = resolve(workspace, args.path)
        if args.command == "undo":
            return self._undo(where, workspace)
        target = self._probe(where, workspace)
        if args.command == "create":
            return self._create(where, target, args.file_text, workspace)
        before = self._read_text(where, target, workspace)
        if args.command == "str_replace":
            change = replace_once(before, args.old_str or "", args.new_str or "", where.relative)
        else:
            if args.insert_line is None:
                raise UsageError("insert needs insert_line: the line to insert after (0 = the top).")
            change = insert_after(before, args.insert_line, args.new_str or "")
        self._write(where, target, before.encode(), change.text.encode(), workspace)
        return _report(where.relative, change)

    def _create(self, where: RepoPath, target: _Target, file_text: str | None, workspace: Workspace) -> str:
        if target.kind != "missing":
            raise UsageError(f"{where.relative} already exists: view it and change it with str_replace or insert.")
        if file_text is None:
            raise UsageError("create needs file_text: the content of the new file.")
        self._write(where, _Target("missing", real=where.absolute), None, file_text.encode(), workspace)
        return f"Created {where.relative} ({plural(line_count(file_text), 'line')})."

    def _undo(self, where: RepoPath, workspace: Workspace) -> str:
        history = self._history.get(where.absolute)
        if not history:
            raise UsageError(f"There is no edit of {where.relative} to undo.")
        previous = history.pop()
        if previous is None:
            shell(workspace, f"rm -f -- {shlex.quote(where.absolute)}", self.timeout)
            return f"Undid the creation of {where.relative}: the file is removed."
        target = self._probe(where, workspace)
        current = workspace.read_file(target.real).decode("utf-8", "replace") if target.kind == "file" else ""
        real = target.real if target.kind == "file" else where.absolute
        workspace.write_file(real, previous, mode=target.mode)
        restored = previous.decode("utf-8", "replace")
        line = first_difference(current, restored)
        return _shown(f"Undid the last edit of {where.relative}.", restored, line, line)

    def _probe(self, where: RepoPath, workspace: Workspace) -> _Target:
        data, _ = capture(workspace, _PROBE.format(path=shlex.quote(where.absolute)), self.timeout)
        kind, _, rest = data.decode("utf-8", "replace").strip().partition(" ")
        if kind != "file":
            return _Target(kind)
        mode, _, real = rest.partition(" ")
        return _Target(kind, int(mode, 8), real)

    def _read_text(self, where: RepoPath, target: _Target, workspace: Workspace) -> str:
        if target.kind != "file":
            raise UsageError(
                {
                    "missing": f"{where.relative}: no such file; use command=create to make a new one.",
                    "dir": f"{where.relative} is a directory; give a file.",
                }.get(target.kind, f"{where.relative} is not a regular file.")
            )
        data = workspace.read_file(target.real)
        if b"\0" in data[:BINARY_PROBE]:
            raise UsageError(f"{where.relative} is a binary file; it cannot be edited with this tool.")
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise UsageError(f"{where.relative} is not UTF-8 text; edit it with bash instead.") from None

    def _write(
        self, where: RepoPath, target: _Target, before: bytes | None, after: bytes, workspace: Workspace
    ) -> None:
        """Writes `after` unless it breaks the syntax of a Python file; records `before` for undo."""
        if is_python(where.relative):
            problem = new_problem(before or b"", after)
            if problem is not None:
                raise UsageError(
                    f"The edit was not applied: it would leave a syntax error in {where.relative} at line "
                    f"{problem.line}, column {problem.column}: {problem.message}.\n"
                    f"{excerpt(after.decode('utf-8', 'replace'), problem)}\n"
                    "The file is unchanged; fix the edit and try again."
                )
        workspace.write_file(target.real, after, mode=target.mode)
        self._history.setdefault(where.absolute, []).append(before)


def _report(relative: str, change: Change) -> str:
    return _shown(f"Edited {relative}: {change.summary}.", change.text, change.first, change.last)


def _shown(lead: str, text: str, first: int, last: int) -> str:
    if not text:
        return f"{lead} The file is now empty."
    shown, start, end = snippet(text, first, last)
    return f"{lead} Lines {start}-{end} now read:\n{shown}"
