"""A patch checked with nothing but what its agent could have checked itself.

The hidden tests (the task's test patch, which grading adds) are never used. What runs, on a clean
checkout with the patch applied, is the task's own test command over the test files that exist
before the hidden tests are added (the repository's existing tests, what `run_tests` offers the
agent too), plus the test files the patch itself adds or changes: a reproduction test the agent
wrote, or tests it extended. The patch fails when a test fails with it that did not fail without it
(a test the patch adds did not exist without it, so it must pass), when it does not apply, or when
the tests time out or stop running because of it. Tests are read with the official parser, as in
best-of-k and agentless.
"""

from __future__ import annotations

import re
import shlex

from pydantic import BaseModel, Field

from atlas_agent.runtime.workspace import Workspace
from atlas_agent.scaffolds.base import WorkspaceFactory
from atlas_agent.scaffolds.verify import PatchEvidence, reset_checkout, verify_patch
from atlas_agent.tools.test_runner import TestRunner

# test modules as pytest, unittest and Django's runner find them: test_x.py, tests.py, x_test.py
TEST_FILE = re.compile(r"(?:^|/)(?:test[^/]*|[^/]*_tests?)\.py$")
# failing test names shown in the one-line summary; the evidence lists all of them
SHOWN_NAMES = 3


class SelfCheck(BaseModel):
    passed: bool
    summary: str  # one line
    own_tests: list[str] = Field(default_factory=list)  # test files the patch adds or changes
    new_failures: list[str] = Field(default_factory=list)  # fail with the patch, did not without it
    evidence: PatchEvidence | None = None  # the tests with the patch
    before: PatchEvidence | None = None  # without it: run only when something failed with it


def patch_test_files(patch: str) -> list[str]:
    """The test files a patch adds or changes (not those it deletes), in the patch's order."""
    files, in_header = [], False
    for line in patch.splitlines():
        if line.startswith("diff --git "):
            in_header = True
        elif line.startswith("@@"):
            in_header = False
        elif in_header and line.startswith("+++ b/"):
            path = line.removeprefix("+++ b/")
            if TEST_FILE.search(path) and path not in files:
                files.append(path)
    return files


def self_check(open_workspace: WorkspaceFactory, patch: str, tests: TestRunner, timeout: float) -> SelfCheck:
    """Run the check in a fresh workspace labelled `verify`."""
    own = patch_test_files(patch)
    with open_workspace("verify") as checkout:
        suite = _existing_suite(checkout, tests)
        retargetable = tests.command.kind != "unknown" and bool(tests.command.targets)
        if retargetable and not suite and not own:
            return SelfCheck(
                passed=True,
                summary="nothing to run: the task's test files exist only once its hidden tests are added, "
                "and the patch adds none",
            )
        present_own = _existing(checkout, own)
        with_patch = _retargeted(tests, [*suite, *own]) if retargetable else tests
        evidence = verify_patch(checkout, patch, with_patch, timeout)
        verdict = _without_comparison(evidence, timeout, own)
        if verdict is not None:
            return verdict
        reset_checkout(checkout)
        before_targets = [*suite, *present_own]
        if retargetable and not before_targets:
            before = PatchEvidence(applied=True)  # without the patch there was no test to run
        else:
            without_patch = _retargeted(tests, before_targets) if retargetable else tests
            before = verify_patch(checkout, "", without_patch, timeout)
    return _compared(evidence, before, own)


def _without_comparison(evidence: PatchEvidence, timeout: float, own: list[str]) -> SelfCheck | None:
    """The verdict where the run with the patch settles it alone; None where a run without is needed."""
    if not evidence.applied:
        return SelfCheck(passed=False, summary="the patch does not apply to a clean checkout", evidence=evidence)
    if evidence.timed_out:
        return SelfCheck(passed=False, summary=f"the tests ran past {timeout:g} s", own_tests=own, evidence=evidence)
    if evidence.failed or (evidence.exit_code not in (0, None) and not evidence.passed):
        return None
    summary = f"{len(evidence.passed)} test(s) pass with the patch"
    if not evidence.passed:  # a runner no official parser reads: its exit status is the verdict
        summary = "the tests exit 0 with the patch"
    if own:
        summary += f", its own test files included ({', '.join(own)})"
    return SelfCheck(passed=True, summary=summary, own_tests=own, evidence=evidence)


def _compared(evidence: PatchEvidence, before: PatchEvidence, own: list[str]) -> SelfCheck:
    """Failures the checkout had without the patch are not the patch's."""
    found = {"own_tests": own, "evidence": evidence, "before": before}
    if not evidence.failed:  # nothing could be read, and the runner exited non-zero
        if before.exit_code not in (0, None) and not before.passed:
            summary = "the tests do not run on a clean checkout, with or without the patch: nothing to judge by"
            return SelfCheck(passed=True, summary=summary, **found)
        summary = f"the tests exit {evidence.exit_code} with the patch and no test result can be read"
        return SelfCheck(passed=False, summary=summary, **found)
    new = [name for name in evidence.failed if name not in set(before.failed)]
    if not new:
        summary = f"{len(evidence.failed)} test(s) fail with and without the patch; none fails because of it"
        return SelfCheck(passed=True, summary=summary, **found)
    shown = ", ".join(new[:SHOWN_NAMES]) + (f" and {len(new) - SHOWN_NAMES} more" if len(new) > SHOWN_NAMES else "")
    return SelfCheck(
        passed=False, summary=f"fails with the patch but not without it: {shown}", new_failures=new, **found
    )


def _existing_suite(checkout: Workspace, tests: TestRunner) -> list[str]:
    """The task's targets that exist before its hidden tests are added: a test file the test patch
    creates is not there, and naming it would stop the whole run. Labels that are no path stay."""
    targets = tests.command.targets
    paths = [target for target in targets if _is_path(target)]
    present = set(_existing(checkout, [target.split("::")[0] for target in paths]))
    return [target for target in targets if not _is_path(target) or target.split("::")[0] in present]


def _is_path(target: str) -> bool:
    path = target.split("::")[0]
    return path.endswith(".py") or "/" in path


def _existing(checkout: Workspace, paths: list[str]) -> list[str]:
    """Those of `paths` (relative to the repository root) that exist in the checkout."""
    if not paths:
        return []
    words = " ".join(shlex.quote(path) for path in paths)
    script = f'cd {shlex.quote(checkout.workdir)} && for p in {words}; do [ -e "$p" ] && echo "$p"; done; true'
    found = set(checkout.run(script, timeout=60).output.splitlines())
    return [path for path in paths if path in found]


def _retargeted(tests: TestRunner, targets: list[str]) -> TestRunner:
    """The task's runner, options and parser on `targets` (paths become Django labels where it needs them)."""
    return TestRunner(tests.command.with_target(shlex.join(targets)), tests.parser)
