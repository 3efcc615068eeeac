"""The grading section of a trajectory: what `atlas eval` found once the run was graded."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

# the verdicts of a run report (grading/report.py's Outcome) that come from a grading
GradedOutcome = Literal["resolved", "unresolved", "error", "empty_patch", "refused"]


class GradedTests(BaseModel):
    """One group of the task's tests (FAIL_TO_PASS or PASS_TO_PASS) as the official grading ran them."""

    passed: list[str] = Field(default_factory=list)
    failed: list[str] = Field(default_factory=list)


class TamperEdit(BaseModel):
    """A piece of the patch that touched test infrastructure (a whole file's diff, or one hunk)."""

    path: str
    reason: str
    diff: str


class Grading(BaseModel):
    """The verdict of `atlas eval` on this instance, written into its trajectory after grading."""

    graded_at: str
    outcome: GradedOutcome
    resolved: bool
    # whether the harness applied the patch; None where it never tried (an empty or refused patch)
    patch_applied: bool | None = None
    fail_to_pass: GradedTests = Field(default_factory=GradedTests)
    pass_to_pass: GradedTests = Field(default_factory=GradedTests)
    # what the tamper guard found, and what it did about it (stripped, refused, graded as written)
    tampering: list[TamperEdit] = Field(default_factory=list)
    tamper_action: str | None = None
    # graded more than once (`--repeat`): every grading's verdict, and whether they disagree
    verdicts: list[str] = Field(default_factory=list)
    flaky: bool = False
    # the official classifier's reason for a failed instance, where it gives one
    failure_reason: str | None = None
    # the harness's logs of the first grading (run_instance.log, test_output.txt), relative to the run directory
    log_dir: str | None = None
