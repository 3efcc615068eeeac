"""`atlas validate`: every task's gold patch must resolve it and its empty patch must not.

A task is broken when the gold patch does not resolve it (which FAIL_TO_PASS / PASS_TO_PASS
tests fail with it, or why it was never graded), or when FAIL_TO_PASS tests already pass on the
untouched base (the empty patch). The rows say which.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import docker
from pydantic import BaseModel

from atlas_agent.grading.harness import grade, instance_log_dir, instance_reports
from atlas_agent.grading.progress import LOG_CAUSES, SILENT, GradingProgress, image_reporter, verdict
from atlas_agent.runtime.task_images import prepare_images
from atlas_agent.tasks import Task
from atlas_agent.tasks.loaders import MINI_SUITE_NAME, resolve_hf_name, source_label

FAIL_TO_PASS, PASS_TO_PASS = "FAIL_TO_PASS", "PASS_TO_PASS"
SHOWN_TESTS = 5


class ValidationRow(BaseModel):
    instance_id: str
    gold_resolved: bool | None
    empty_resolved: bool | None
    # tests failing with the gold patch, by list (FAIL_TO_PASS, PASS_TO_PASS)
    gold_failing: dict[str, list[str]] = {}
    # FAIL_TO_PASS tests that pass with no patch at all
    empty_passing: list[str] = []
    # why the gold grading produced no test results, when it did not
    gold_problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.gold_resolved is True and self.empty_resolved is False and not self.empty_passing

    @property
    def why(self) -> str:
        """What is wrong with the task, in one line ("" when nothing is)."""
        parts = []
        if self.gold_problem:
            parts.append(f"gold patch: {self.gold_problem}")
        for kind in (FAIL_TO_PASS, PASS_TO_PASS):
            if self.gold_failing.get(kind):
                parts.append(f"{kind} failing with the gold patch: {_names(self.gold_failing[kind])}")
        if self.empty_passing:
            parts.append(f"FAIL_TO_PASS passing without a fix: {_names(self.empty_passing)}")
        elif self.empty_resolved is None:
            parts.append("empty patch: not graded")
        elif self.empty_resolved:
            parts.append("the empty patch resolves it")
        return "; ".join(parts)


def validation_dir(runs_dir: Path, source: str) -> Path:
    """`validate-<name>-<digest>`: two datasets of the same file name never share one."""
    path = Path(source).expanduser()
    if source.lower() == MINI_SUITE_NAME:
        identity = MINI_SUITE_NAME
    elif path.exists():
        identity = str(path.resolve())
    else:
        identity = resolve_hf_name(source)
    digest = hashlib.sha256(identity.encode()).hexdigest()[:8]
    return runs_dir / f"validate-{source_label(source)}-{digest}"


def validate_tasks(
    client: docker.DockerClient,
    tasks: list[Task],
    task_repo: Path | None,
    log_dir: Path,
    *,
    workers: int = 1,
    timeout: int = 1800,
    progress: GradingProgress = SILENT,
) -> list[ValidationRow]:
    """Grade every task's gold patch and its empty patch (tests run on the untouched base); `progress`
    hears of each verdict as it comes, a gold patch that does not resolve or an empty one that does
    as a failure."""
    progress.phase("task images", len(tasks))
    prepare_images(client, tasks, task_repo, on_image=image_reporter(progress))
    if log_dir.exists():
        shutil.rmtree(log_dir)
    rows = {task.instance_id: task.harness_row() for task in tasks}
    ids = list(rows)
    reports: dict[str, dict[str, dict[str, Any] | None]] = {}
    for label, skip_patch in (("gold", False), ("empty", True)):
        preds = {
            task.instance_id: {
                "instance_id": task.instance_id,
                "model_name_or_path": label,
                "model_patch": "" if skip_patch else task.patch,
            }
            for task in tasks
        }
        progress.phase(f"grading the {label} patches", len(preds))
        grade(
            client, rows, preds, log_dir=log_dir, run_id=label, workers=workers, timeout=timeout, skip_patch=skip_patch,
            on_graded=_reporter(progress, log_dir, label),
        )  # fmt: skip
        reports[label] = instance_reports(log_dir, label, label, ids)
    return [validation_row(iid, reports["gold"][iid], reports["empty"][iid], _log_text(log_dir, iid)) for iid in ids]


def validation_row(
    instance_id: str, gold: dict[str, Any] | None, empty: dict[str, Any] | None, gold_log: str
) -> ValidationRow:
    """One task's verdict from the harness's per-instance reports of both gradings."""
    gold_status = (gold or {}).get("tests_status") or {}
    empty_status = (empty or {}).get("tests_status") or {}
    return ValidationRow(
        instance_id=instance_id,
        gold_resolved=None if gold is None else bool(gold.get("resolved")),
        empty_resolved=None if empty is None else bool(empty.get("resolved")),
        gold_failing={
            kind: list(gold_status[kind]["failure"]) for kind in (FAIL_TO_PASS, PASS_TO_PASS) if kind in gold_status
        },
        empty_passing=list(empty_status.get(FAIL_TO_PASS, {}).get("success", [])),
        gold_problem=_gold_problem(gold, gold_log),
    )


def _gold_problem(gold: dict[str, Any] | None, log: str) -> str | None:
    if gold is None:
        cause = next((cause for marker, cause in LOG_CAUSES if marker in log), None)
        return cause or "not graded (see its run_instance.log)"
    if not gold.get("patch_successfully_applied"):
        reason = gold.get("infra_failure_reason")
        return "no test results in the log" + (f" ({reason})" if reason else "")
    return None


def _reporter(progress: GradingProgress, log_dir: Path, label: str) -> Callable[[str], None]:
    """The harness's `on_graded` for one of the two gradings: the verdict, and whether it is wrong."""
    expected = "resolved" if label == "gold" else "unresolved"

    def graded(instance_id: str) -> None:
        outcome, cause = verdict(log_dir, label, label, instance_id)
        line = f"{instance_id}: {label} patch {outcome}" + (f" ({cause})" if cause else "")
        progress.finished(instance_id, line, failed=outcome != expected)

    return graded


def _log_text(log_dir: Path, instance_id: str) -> str:
    path = instance_log_dir(log_dir, "gold", "gold", instance_id) / "run_instance.log"
    return path.read_text(errors="replace") if path.is_file() else ""


def _names(tests: Sequence[str]) -> str:
    shown = ", ".join(tests[:SHOWN_TESTS])
    return shown + (f" (+{len(tests) - SHOWN_TESTS} more)" if len(tests) > SHOWN_TESTS else "")
