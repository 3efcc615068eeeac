"""After grading: each graded instance's verdict, test results and tamper / flake flags, written into its
trajectory (its `grading` section), so the trajectory alone tells what the episode achieved.

A trajectory that cannot be read is left exactly as it is: the caller is told, and report.json still
has the verdict.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from atlas_agent.grading.harness import instance_log_dir, instance_reports
from atlas_agent.grading.report import InstanceReport, RunReport
from atlas_agent.rundir import RunDir
from atlas_agent.trajectory import GradedTests, Grading, TamperEdit, Trajectory, UnreadableTrajectory, now_iso

# report outcomes that are no verdict: the harness never saw a prediction for the instance
UNGRADED = frozenset({"incomplete"})


def record_gradings(
    run_dir: RunDir,
    report: RunReport,
    log_dir: Path,
    model_names: Mapping[str, str],
    notice: Callable[[str], None],
) -> None:
    """Writes the grading section of every graded instance's trajectory.

    `log_dir`: the run's eval/ folder; `model_names`: the `model_name_or_path` each instance was graded
    under (the harness keeps its logs by it)."""
    graded_at = now_iso()
    for item in report.instances:
        if item.outcome in UNGRADED:
            continue
        path = run_dir.instance(item.instance_id) / "trajectory.json"
        try:
            trajectory = Trajectory.load(path)
        except UnreadableTrajectory as exc:
            notice(f"{exc}: its grading was not written into it (report.json has it)")
            continue
        model_name = model_names.get(item.instance_id, "")
        official = instance_reports(log_dir, report.run_id, model_name, [item.instance_id])[item.instance_id]
        logs = instance_log_dir(log_dir, report.run_id, model_name, item.instance_id)
        where = logs.relative_to(run_dir.root).as_posix() if official is not None else None
        trajectory.grading = grading_of(item, official, graded_at, where)
        trajectory.save(path)


def grading_of(item: InstanceReport, official: dict[str, Any] | None, graded_at: str, log_dir: str | None) -> Grading:
    """The grading section from the run report's line and the harness's own report of the instance
    (None where the harness never ran its tests: an empty or refused patch)."""
    tests = (official or {}).get("tests_status") or {}
    applied = official.get("patch_successfully_applied") if official is not None else None
    return Grading(
        graded_at=graded_at,
        outcome=item.outcome,  # every outcome but "incomplete" (UNGRADED)
        resolved=item.outcome == "resolved",
        patch_applied=applied if isinstance(applied, bool) else None,
        fail_to_pass=_tests(tests.get("FAIL_TO_PASS")),
        pass_to_pass=_tests(tests.get("PASS_TO_PASS")),
        tampering=[TamperEdit.model_validate(edit.model_dump()) for edit in item.tampering],
        tamper_action=item.tamper_action,
        verdicts=list(item.verdicts),
        flaky=item.flaky,
        failure_reason=item.failure_reason,
        log_dir=log_dir,
    )


def _tests(group: Any) -> GradedTests:
    found = group if isinstance(group, dict) else {}
    return GradedTests(passed=list(found.get("success") or []), failed=list(found.get("failure") or []))
