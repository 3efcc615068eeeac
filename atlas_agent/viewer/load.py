"""A run directory read into view models. Nothing here fails on a damaged or half-written run: a file
that cannot be read becomes a `Damage` the viewer shows, and what the other files say still counts."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from atlas_agent.errors import AtlasError
from atlas_agent.grading.report import InstanceReport, RunReport
from atlas_agent.rundir import InstanceStatus
from atlas_agent.trajectory import GradedTests, Trajectory
from atlas_agent.viewer.models import (
    Damage,
    GradingResult,
    InstanceView,
    Outcome,
    PatchStats,
    RunView,
)
from atlas_agent.viewer.text import clipped_line

PROBLEM_CHARS = 160
# SWE-bench instance ids are `<owner>__<repo>-<number>`: the repository when no report names it
INSTANCE_ID = re.compile(r"^(?P<owner>.+?)__(?P<name>.+)-\d+$")
# the grading's verdicts that are outcomes as they stand (refused and incomplete ones are not graded)
GRADED: dict[str, Outcome] = {"resolved": "resolved", "unresolved": "unresolved", "error": "error",
                              "empty_patch": "empty_patch"}  # fmt: skip
# what report.json and status.json say of an instance that the view shows as they say it (where both
# do, status.json; the report's stop reason, steps and usage stand in for a damaged one)
GRADING_FIELDS = {"difficulty", "failure_kind", "failure_reason", "tampering", "tamper_action", "flaky", "verdicts"}
REPORTED_FIELDS = GRADING_FIELDS | {"stop_reason", "steps", "usage"}
STATUS_FIELDS = {"stop_reason", "stop_detail", "error", "steps", "usage", "duration_s"}


class RunFacts(BaseModel):
    """What run.yaml says of the run, read leniently: a run of another Atlas version still shows."""

    run_id: str = ""
    model: str = ""
    dataset: str = ""
    scaffold_name: str = ""


def problem(exc: BaseException) -> str:
    """An exception's first line, short enough for a table cell."""
    return clipped_line(str(exc), PROBLEM_CHARS) or type(exc).__name__


def resolve_run_path(run: Path) -> Path:
    """`run` itself, or `runs/<run>` when `run` is a bare run id; one line saying why when neither is a run."""
    for candidate in (run, Path("runs") / run):
        if (candidate / "run.yaml").is_file() or (candidate / "instances").is_dir():
            return candidate
    if run.is_dir():
        raise AtlasError(f"{run} is not a run directory: it has neither run.yaml nor instances/")
    raise AtlasError(f"{run} does not exist: name a run directory (runs/ID) or a run id under ./runs")


def read_facts(root: Path, damaged: list[Damage]) -> RunFacts:
    path = root / "run.yaml"
    if not path.is_file():
        damaged.append(Damage(file="run.yaml", problem="missing"))
        return RunFacts(run_id=root.name)
    try:
        config = yaml.safe_load(path.read_text())["config"]
        facts = RunFacts.model_validate({key: config[key] for key in RunFacts.model_fields if key in config})
    except (OSError, yaml.YAMLError, ValidationError, KeyError, TypeError) as exc:
        damaged.append(Damage(file="run.yaml", problem=problem(exc)))
        return RunFacts(run_id=root.name)
    return facts if facts.run_id else facts.model_copy(update={"run_id": root.name})


def read_report(root: Path, damaged: list[Damage]) -> RunReport | None:
    """report.json of `atlas eval`; None before the run is graded."""
    path = root / "report.json"
    if not path.is_file():
        return None
    try:
        return RunReport.model_validate_json(path.read_bytes())
    except (OSError, ValueError) as exc:
        damaged.append(Damage(file="report.json", problem=problem(exc)))
        return None


def read_gradings(root: Path, run_id: str, damaged: list[Damage]) -> dict[str, GradingResult]:
    """The official per-instance reports of the first grading: eval/<run_id>/<model>/<id>/report.json."""
    results: dict[str, GradingResult] = {}
    for path in sorted((root / "eval" / run_id).glob("*/*/report.json")):
        log_dir = path.parent.relative_to(root).as_posix()
        try:
            results[path.parent.name] = grading_result(json.loads(path.read_text())[path.parent.name], log_dir)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            damaged.append(Damage(file=f"{log_dir}/report.json", problem=problem(exc)))
    return results


def grading_result(official: dict[str, Any], log_dir: str) -> GradingResult:
    tests = official.get("tests_status") or {}

    def group(name: str) -> GradedTests:
        found = tests.get(name) or {}
        return GradedTests(passed=list(found.get("success", [])), failed=list(found.get("failure", [])))

    return GradingResult(
        resolved=bool(official["resolved"]),
        patch_applied=bool(official.get("patch_successfully_applied")),
        fail_to_pass=group("FAIL_TO_PASS"),
        pass_to_pass=group("PASS_TO_PASS"),
        log_dir=log_dir,
    )


def read_status(folder: Path, damaged: list[Damage]) -> InstanceStatus | None:
    path = folder / "status.json"
    if not path.is_file():
        return None
    try:
        return InstanceStatus.model_validate_json(path.read_bytes())
    except (OSError, ValueError) as exc:
        damaged.append(Damage(file=f"instances/{folder.name}/status.json", problem=problem(exc)))
        return None


def patch_stats(patch: str) -> PatchStats:
    files = [line.split(" b/", 1)[-1] for line in patch.splitlines() if line.startswith("diff --git ")]
    added = sum(line.startswith("+") and not line.startswith("+++") for line in patch.splitlines())
    removed = sum(line.startswith("-") and not line.startswith("---") for line in patch.splitlines())
    return PatchStats(files=files, added=added, removed=removed)


def read_patch(folder: Path, finished: bool, damaged: list[Damage]) -> str:
    """patch.diff; a finished instance without one is damaged, an unfinished one has none yet."""
    path = folder / "patch.diff"
    try:
        return path.read_text()
    except FileNotFoundError:
        if finished:
            damaged.append(Damage(file=f"instances/{folder.name}/patch.diff", problem="missing"))
    except (OSError, ValueError) as exc:
        damaged.append(Damage(file=f"instances/{folder.name}/patch.diff", problem=problem(exc)))
    return ""


def repo_of(instance_id: str, reported: InstanceReport | None) -> str:
    if reported is not None and reported.repo:
        return reported.repo
    match = INSTANCE_ID.match(instance_id)
    return f"{match['owner']}/{match['name']}" if match else ""


def outcome_of(status: InstanceStatus | None, reported: InstanceReport | None, patch: PatchStats) -> Outcome:
    """The run's own error first (it was never graded), then the grading's verdict; an empty patch
    needs no grading; anything else waits for `atlas eval` (refused and incomplete ones too)."""
    if status is not None and status.state == "error":
        return "error"
    if reported is not None and reported.outcome in GRADED:
        return GRADED[reported.outcome]
    if status is not None and patch.empty:
        return "empty_patch"
    return "not_graded"


def load_run(run: Path) -> RunView:
    """Every instance the run directory or its report knows of, in id order."""
    root = resolve_run_path(run)
    damaged: list[Damage] = []
    facts = read_facts(root, damaged)
    report = read_report(root, damaged)
    gradings = read_gradings(root, facts.run_id, damaged)
    reported = {item.instance_id: item for item in report.instances} if report else {}
    folders = {path.name for path in (root / "instances").glob("*") if path.is_dir()}
    instances = [
        instance_view(root / "instances" / iid, reported.get(iid), gradings.get(iid))
        for iid in sorted(folders | set(reported))
    ]
    return RunView(
        path=str(root),
        run_id=facts.run_id,
        model=facts.model,
        dataset=facts.dataset,
        scaffold=facts.scaffold_name,
        graded=report is not None,
        damaged=damaged,
        instances=instances,
    )


def instance_view(folder: Path, reported: InstanceReport | None, grading: GradingResult | None) -> InstanceView:
    damaged: list[Damage] = []
    status = read_status(folder, damaged)
    patch = patch_stats(read_patch(folder, status is not None and status.state == "done", damaged))
    fields: dict[str, Any] = reported.model_dump(include=REPORTED_FIELDS) if reported else {}
    if status is not None:
        fields |= status.model_dump(include=STATUS_FIELDS)
    elif folder.is_dir():
        fields |= unfinished_progress(folder, damaged)
    return InstanceView.model_validate(
        fields
        | {
            "instance_id": folder.name,
            "repo": repo_of(folder.name, reported),
            "outcome": outcome_of(status, reported, patch),
            "state": status.state if status else "unfinished",
            "patch": patch,
            "grading": grading,
            "damaged": damaged,
        }
    )


def unfinished_progress(folder: Path, damaged: list[Damage]) -> dict[str, Any]:
    """Steps and usage so far of an instance with no status.json, from its trajectory."""
    path = folder / "trajectory.json"
    if not path.is_file():
        return {}
    try:
        trajectory = Trajectory.model_validate_json(path.read_bytes())
    except (OSError, ValueError) as exc:
        damaged.append(Damage(file=f"instances/{folder.name}/trajectory.json", problem=problem(exc)))
        return {}
    return {"steps": trajectory.step_count, "usage": trajectory.usage, "stop_reason": trajectory.stop_reason}


def find_instance(run: RunView, instance_id: str) -> InstanceView:
    for instance in run.instances:
        if instance.instance_id == instance_id:
            return instance
    known = ", ".join(instance.instance_id for instance in run.instances[:5])
    more = f" and {len(run.instances) - 5} more" if len(run.instances) > 5 else ""
    raise AtlasError(f"run {run.run_id} has no instance {instance_id} (it has {known or 'none'}{more})")
