"""run_tests: run the task's tests, or some of them, with the task's own runner, and summarise the
outcome as the official log parser reads it."""

from __future__ import annotations

import time
from collections import Counter

from pydantic import BaseModel, Field

from atlas_agent.runtime.workspace import Workspace
from atlas_agent.tools.base import Tool, ToolSettings
from atlas_agent.tools.output import bound, observe
from atlas_agent.tools.test_command import TargetError
from atlas_agent.tools.test_runner import TestRun, TestRunner
from atlas_agent.vocabulary import Observation

MAX_NAMES = 30
OUTPUT_CHARS = 8_000
_PYTEST_SUMMARY = "short test summary info"
_ORDER = ("FAILED", "ERROR", "PASSED", "SKIPPED", "XFAIL")
_LABELS = {"FAILED": "failed", "ERROR": "errors", "PASSED": "passed", "SKIPPED": "skipped", "XFAIL": "xfailed"}


class RunTestsArgs(BaseModel):
    target: str | None = Field(
        default=None,
        description="Tests to run with the task's test runner, separated by spaces: files or node ids "
        "(tests/test_x.py, tests/test_x.py::test_y) for pytest, test labels (app.tests.SomeTests.test_y) "
        "for a Django-style runtests.py. Omit it to run the task's tests.",
    )


class RunTestsTool(Tool):
    name = "run_tests"
    description = (
        "Run tests with the task's own test runner: some tests, or without a target the task's tests. Reports "
        "which tests passed and failed (read as the grader reads them) and the end of the runner's output."
    )
    Args = RunTestsArgs

    def __init__(self, runner: TestRunner | None = None, timeout: float = 300.0) -> None:
        self.runner = runner or TestRunner()
        self.timeout = timeout

    @classmethod
    def create(cls, settings: ToolSettings) -> RunTestsTool:
        return cls(settings.tests, timeout=settings.command_timeout)

    def run(self, args: RunTestsArgs, workspace: Workspace) -> Observation:
        started = time.monotonic()
        try:
            command = self.command(args.target)
        except TargetError as exc:
            return observe(f"Cannot run that target: {exc}.", started)
        outcome = self.runner.run(workspace, command, self.timeout)
        text = f"$ {command}\n{summarize(outcome, self.runner.parser)}"
        if outcome.timed_out:
            text += f"\n[the tests timed out after {self.timeout:g} s and were killed]"
        return observe(text, started, exit_code=outcome.exit_code, timed_out=outcome.timed_out)

    def command(self, target: str | None) -> str:
        if target is None or not target.strip():
            return self.runner.command.render()
        return self.runner.command.with_target(target)


def summarize(outcome: TestRun, parser_name: str | None) -> str:
    """Statuses as the official parser read them, then the end of the output, bounded."""
    head = f"exit code {outcome.exit_code}"
    parts = []
    if outcome.statuses is None:
        reason = f"no official log parser named {parser_name}" if parser_name else "no official log parser for it"
        head += f": this runner's output is not read test by test ({reason}); judge by the exit code and output"
    else:
        counts = Counter(outcome.statuses.values())
        found = ", ".join(f"{counts[s]} {_LABELS[s]}" for s in _ORDER if counts[s])
        head += f": {found or 'no test results found'} (read by {outcome.parser}, as grading reads it)"
        for status in _ORDER[:3]:
            names = outcome.named(status)
            if names:
                more = f", ... and {len(names) - MAX_NAMES} more" if len(names) > MAX_NAMES else ""
                parts.append(f"{_LABELS[status]} ({len(names)}): {', '.join(names[:MAX_NAMES])}{more}")
    lines = outcome.log.splitlines()
    # pytest's short summary only repeats the lists above; the tracebacks before it are what is left to show
    cut = next((i for i, line in enumerate(lines) if _PYTEST_SUMMARY in line), None) if outcome.statuses else None
    shown, _ = bound("\n".join(lines[:cut]), OUTPUT_CHARS, tail_share=0.75)
    return "\n".join([head, *parts, f"--- output ---\n{shown}"])
