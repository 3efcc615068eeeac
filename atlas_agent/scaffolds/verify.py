"""Test evidence for a candidate patch: apply it to a clean checkout and run the repository's tests.

The tests run with the task's own runner and are read with the official log parser its row names,
so "passed" here means what it means when the harness grades.
"""

from __future__ import annotations

import secrets
import shlex

from pydantic import BaseModel, Field

from atlas_agent.runtime.workspace import Workspace
from atlas_agent.tools.test_runner import TestRunner

# The harness's own order: strict first, then more forgiving. {patch} is a quoted path.
APPLY = (
    "git apply --verbose {patch} || git apply --verbose --3way {patch}"
    " || patch --batch --forward --fuzz=5 -p1 -i {patch}"
)


class PatchEvidence(BaseModel):
    applied: bool
    command: str = ""
    exit_code: int | None = None
    timed_out: bool = False
    passed: list[str] = Field(default_factory=list)
    failed: list[str] = Field(default_factory=list)
    output_tail: str = ""

    @property
    def score(self) -> tuple[int, int, int]:
        """Higher is better: applies, then no failures, then fewer failures."""
        return (int(self.applied), int(self.applied and not self.failed and not self.timed_out), -len(self.failed))


def reset_checkout(workspace: Workspace) -> None:
    """Back to the base commit: tracked files restored, untracked ones removed."""
    workspace.run(f"cd {shlex.quote(workspace.workdir)} && git checkout -q -- . && git clean -fdq", timeout=120)


def verify_patch(
    workspace: Workspace,
    patch: str,
    tests: TestRunner,
    timeout: float,
    *,
    extra_files: dict[str, str] | None = None,
    extra_targets: list[str] | None = None,
) -> PatchEvidence:
    """Apply `patch` (and write `extra_files`, e.g. a reproduction test), then run the task's tests
    (and `extra_targets` beside them).

    `workspace` must hold an untouched checkout: a fresh container, or one after reset_checkout().
    """
    if patch.strip():
        # a name of its own: workspaces of the local runtime share the host's /tmp
        path = f"/tmp/.atlas-candidate-{secrets.token_hex(6)}.patch"
        workspace.write_file(path, patch)
        apply = APPLY.format(patch=shlex.quote(path))
        script = f"(cd {shlex.quote(workspace.workdir)} && ({apply})); status=$?; rm -f {shlex.quote(path)}"
        applied = workspace.run(f"{script}; (exit $status)", timeout=120)
        if applied.exit_code != 0:
            return PatchEvidence(applied=False, output_tail=applied.output[-2000:])
    for path, content in (extra_files or {}).items():
        workspace.write_file(f"{workspace.workdir}/{path}", content)
    command = tests.command.render()
    if extra_targets:
        command = tests.command.render(tests.command.targets + extra_targets)
    outcome = tests.run(workspace, command, timeout)
    return PatchEvidence(
        applied=True,
        command=command,
        exit_code=outcome.exit_code,
        timed_out=outcome.timed_out,
        passed=sorted(outcome.named("PASSED", "XFAIL")),
        failed=sorted(outcome.named("FAILED", "ERROR")),
        output_tail=outcome.log[-2000:],
    )
