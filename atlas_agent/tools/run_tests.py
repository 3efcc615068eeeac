"""run_tests: run a test file, a node id or the task's own tests with pytest, and summarise the
outcome: counts, which tests passed and failed, and the end of the output."""

from __future__ import annotations

import re
import shlex
import time

from pydantic import BaseModel, Field

from atlas_agent.tools.aci import in_subshell, split_status
from atlas_agent.tools.base import Observation, Tool, Workspace
from atlas_agent.tools.output import bound, observe

PYTEST = "python -m pytest -rA -p no:cacheprovider -q"
MAX_NAMES = 30
OUTPUT_CHARS = 8_000
START_MARKER = ": '>>>>> Start Test Output'"
END_MARKER = ": '>>>>> End Test Output'"

_SUMMARY_HEADER = re.compile(r"^=+ short test summary info =+$")
# A failure's line ends in " - <message>"; a pass's line is the node id alone.
_OUTCOME = re.compile(r"^(?:(PASSED) (.+)|(FAILED|ERROR) (.+?)(?: - .*)?)$")
_COUNTS = re.compile(r"\b(\d+ (passed|failed|errors?|skipped|xfailed|xpassed)|no tests ran)\b.* in [\d.]+s")


def test_command_from_eval_script(eval_script: str) -> str | None:
    """The test command of a SWE-bench eval script: the lines between its start and end markers."""
    lines = [line.strip() for line in eval_script.splitlines()]
    try:
        start = lines.index(START_MARKER) + 1
        end = lines.index(END_MARKER, start)
    except ValueError:
        return None
    return "\n".join(line for line in lines[start:end] if line) or None


test_command_from_eval_script.__test__ = False  # type: ignore[attr-defined]  # not a test, whatever pytest thinks


class RunTestsArgs(BaseModel):
    target: str | None = Field(
        default=None,
        description="A test file or node id, e.g. tests/test_x.py or tests/test_x.py::test_y "
        "(several separated by spaces). Omit it to run the task's tests.",
    )


class RunTestsTool(Tool):
    name = "run_tests"
    description = (
        "Run tests with pytest: a test file or node id, or without a target the task's tests. Reports the counts, "
        "the names of the passed and failed tests, and the end of pytest's output."
    )
    Args = RunTestsArgs

    def __init__(self, test_command: str | None = None, timeout: float = 300.0) -> None:
        self.test_command = test_command or PYTEST
        self.timeout = timeout

    def run(self, args: RunTestsArgs, workspace: Workspace) -> Observation:  # type: ignore[override]
        started = time.monotonic()
        try:
            command = self.command(args.target)
        except ValueError as exc:
            return observe(f"Cannot read the target: {exc}.", started)
        result = workspace.run(in_subshell(workspace, command), timeout=self.timeout)
        output, status = split_status(result.output)
        exit_code = result.exit_code if result.timed_out else status
        text = f"$ {command}\n{summarize(output, exit_code)}"
        if result.timed_out:
            text += f"\n[the tests timed out after {self.timeout:g} s and were killed]"
        return observe(text, started, exit_code=exit_code, timed_out=result.timed_out, truncated=result.truncated)

    def command(self, target: str | None) -> str:
        if target is None or not target.strip():
            return self.test_command
        return f"{PYTEST} {shlex.join(shlex.split(target))}"


def summarize(output: str, exit_code: int) -> str:
    """Counts and test names from pytest's `-rA` summary, then the rest of the output, bounded."""
    lines = output.splitlines()
    header = next((i for i, line in enumerate(lines) if _SUMMARY_HEADER.match(line)), None)
    summary = lines[header + 1 :] if header is not None else lines
    outcomes: dict[str, list[str]] = {"FAILED": [], "ERROR": [], "PASSED": []}
    for line in summary:
        match = _OUTCOME.match(line)
        if match:
            outcomes[match[1] or match[3]].append(match[2] or match[4])
    # pytest's last line, e.g. "==== 2 failed, 16 passed in 0.12s ====" or "(no tests ran in 0.01s)"
    counts = next((line.strip(" =()") for line in reversed(lines) if _COUNTS.search(line)), "no test counts found")
    parts = [f"exit code {exit_code}: {counts}"]
    for outcome, label in (("FAILED", "failed"), ("ERROR", "errors"), ("PASSED", "passed")):
        names = outcomes[outcome]
        if names:
            more = f", ... and {len(names) - MAX_NAMES} more" if len(names) > MAX_NAMES else ""
            parts.append(f"{label} ({len(names)}): {', '.join(names[:MAX_NAMES])}{more}")
    # The summary section only repeats the lists above; the tracebacks before it are what is left to show.
    rest = "\n".join(lines[:header] if header is not None else lines)
    shown, _ = bound(rest, OUTPUT_CHARS, tail_share=0.75)
    parts.append(f"--- output ---\n{shown}")
    return "\n".join(parts)
