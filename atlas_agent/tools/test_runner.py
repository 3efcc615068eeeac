"""Running a task's tests with its own runner and reading the result with the official log parser
that grading uses, so "these tests pass" means during an episode what it means when graded."""

from __future__ import annotations

import secrets
import shlex
from collections.abc import Callable

from pydantic import BaseModel

from atlas_agent.runtime.workspace import Workspace
from atlas_agent.tasks.task import Task
from atlas_agent.tools.shell_scripts import in_subshell, split_status
from atlas_agent.tools.test_command import (
    DEFAULT_PARSERS,
    TestCommand,
    parse_test_command,
)

# The log kept for the parser: the end of a runaway run's output, not all of it.
MAX_LOG_BYTES = 4_000_000

LogParser = Callable[[str, object], dict[str, str]]


class TestRun(BaseModel):
    """One run of the tests: the command, its whole log (bounded), and what the parser read."""

    __test__ = False

    command: str
    log: str
    exit_code: int
    timed_out: bool = False
    parser: str | None = None
    # test name → PASSED / FAILED / ERROR / SKIPPED / XFAIL; None where no official parser reads this runner
    statuses: dict[str, str] | None = None

    def named(self, *wanted: str) -> list[str]:
        return [name for name, status in (self.statuses or {}).items() if status in wanted]


class TestRunner:
    """The task's test command and the parser its row names (or the one its runner implies)."""

    __test__ = False

    def __init__(self, test_command: str | None = None, log_parser: str | None = None) -> None:
        self.command: TestCommand = parse_test_command(test_command)
        self.parser = log_parser or DEFAULT_PARSERS.get(self.command.kind)

    @classmethod
    def for_task(cls, task: Task) -> TestRunner:
        return cls(task.test_command, task.log_parser)

    def run(self, workspace: Workspace, command: str, timeout: float) -> TestRun:
        """Runs `command` (the task's, or `self.command` retargeted) at the repository root with its
        output in a file, so the parser reads all of it, not only what the shell's output cap keeps."""
        log_path = f"/tmp/.atlas-tests-{secrets.token_hex(6)}.log"
        script = f"set -o pipefail\n{{\n{command}\n}} 2>&1 | tail -c {MAX_LOG_BYTES} >{shlex.quote(log_path)}"
        try:
            result = workspace.run(in_subshell(workspace, script), timeout=timeout)
            try:
                log = workspace.read_file(log_path).decode("utf-8", "replace")
            except FileNotFoundError:
                log = ""
        finally:
            workspace.run(f"rm -f -- {shlex.quote(log_path)}", timeout=30)
        shell_output, status = split_status(result.output)
        if shell_output.strip():  # what the wrapper itself printed (a timeout note, say)
            log += shell_output
        parser = official_parser(self.parser)
        return TestRun(
            command=command,
            log=log,
            exit_code=result.exit_code if result.timed_out else status,
            timed_out=result.timed_out,
            parser=self.parser if parser else None,
            statuses=_parse(parser, log) if parser else None,
        )


def official_parser(name: str | None) -> LogParser | None:
    """A parser from the official harness's registry; imported on first use (the harness is heavy)."""
    if not name:
        return None
    from swebench.harness.log_parsers import PARSER_REGISTRY

    parser: LogParser | None = PARSER_REGISTRY.get(name)
    return parser


def _parse(parser: LogParser, log: str) -> dict[str, str]:
    # Python parsers read only the log; the test spec they are also handed serves other languages.
    try:
        return dict(parser(log, None))
    except (AttributeError, TypeError):
        return {}
