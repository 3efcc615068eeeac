"""What the repository tools share: running scripts in the workspace without disturbing the
model's shell session, and turning the model's mistakes into observations."""

from __future__ import annotations

import re
import secrets
import shlex
import time
from abc import abstractmethod
from typing import Any, Self

from atlas_agent.runtime.workspace import Workspace
from atlas_agent.tools.base import Tool, ToolSettings
from atlas_agent.tools.output import observe
from atlas_agent.tools.paths import UsageError
from atlas_agent.vocabulary import CommandResult, Observation

# The model's session may have `set -e`, `set -x` or another cwd: none of it may change what a
# tool's script does or prints, and the subshell keeps the tool's `cd` out of the session.
_NO_ROOT = 97
_PRELUDE = f"set +euxo pipefail\ncd -- {{workdir}} || exit {_NO_ROOT}\n"
_STATUS = "__atlas_tool_status "
# Traces of the session's `set -x` may follow the status line: it is found wherever it is.
_STATUS_LINE = re.compile(rf"\n{_STATUS}(\d+)\n")


# Shell code that writes the NUL-terminated paths of the files under "$p" that git does not ignore
# (in a directory that is no git checkout: every file outside .git directories). Tracked files
# that were deleted from the working tree are listed too. It leaves `git` set to the git command.
FILES_UNDER = """\
git=(git -c safe.directory='*' -c core.quotepath=false)
if "${git[@]}" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  "${git[@]}" ls-files -z --cached --others --exclude-standard -- "$p"
else
  find "$p" -name .git -prune -o ! -type d -print0
fi"""


class WorkspaceTool(Tool):
    """A tool whose `execute` returns the text to show, or raises UsageError for a mistake of the
    model's; runtime failures (the container is gone) propagate."""

    def __init__(self, timeout: float = 120.0) -> None:
        self.timeout = timeout

    @classmethod
    def create(cls, settings: ToolSettings) -> Self:
        return cls(timeout=settings.command_timeout)

    def run(self, args: Any, workspace: Workspace) -> Observation:
        started = time.monotonic()
        try:
            text = self.execute(args, workspace)
        except UsageError as exc:
            text = str(exc)
        return observe(text, started)

    @abstractmethod
    def execute(self, args: Any, workspace: Workspace) -> str:
        """Carry out one call; the returned text is bounded before the model sees it."""


def in_subshell(workspace: Workspace, script: str) -> str:
    """`script` wrapped to run in a subshell at the repository root. A failure is reported as a
    last line of output, not as the command's status: under the session's `set -e` a failing
    command would end the session's shell."""
    prelude = _PRELUDE.format(workdir=shlex.quote(workspace.workdir))
    return f"(\n{prelude}{script}\n) || printf '\\n{_STATUS}%d\\n' \"$?\""


def split_status(output: str) -> tuple[str, int]:
    """The output of an `in_subshell` script without its status line, and that status."""
    found = list(_STATUS_LINE.finditer(output))
    if not found:
        return output, 0
    last = found[-1]  # the script's own output may hold an earlier one
    return output[: last.start()] + output[last.end() :], int(last[1])


def shell(workspace: Workspace, script: str, timeout: float) -> CommandResult:
    """Runs `script` in a subshell at the repository root; a timeout is the model's to handle."""
    result = workspace.run(in_subshell(workspace, script), timeout=timeout)
    output, status = split_status(result.output)
    result = result.model_copy(update={"output": output, "exit_code": status})
    if result.timed_out:
        raise UsageError(f"The command timed out after {timeout:g} s: narrow the path or the pattern.")
    if status == _NO_ROOT:
        raise UsageError(f"The repository root {workspace.workdir} cannot be entered: was it removed?")
    return result


def capture(workspace: Workspace, script: str, timeout: float) -> tuple[bytes, CommandResult]:
    """Like `shell`, but the script's stdout is read back from a temporary file: a long listing
    is not cut at the shell's output cap. stderr stays in the result's output."""
    temp = f"/tmp/.atlas-tool-{secrets.token_hex(6)}"
    try:
        result = shell(workspace, f"{{\n{script}\n}} >{temp}", timeout)
        try:
            data = workspace.read_file(temp)
        except FileNotFoundError:  # the script exited before its redirection was set up
            data = b""
    finally:
        workspace.run(f"rm -f -- {temp}", timeout=30)
    return data, result


def nul_split(data: bytes) -> list[str]:
    """NUL-terminated names, decoded."""
    return [name.decode("utf-8", "replace") for name in data.split(b"\0")[:-1]]
