"""`atlas eval`: grade a run directory with the official harness, behind the tamper guard.

runs/<run_id>/eval/
  preds.graded.jsonl       what the harness graded (the run's preds.jsonl after the tamper guard)
  <run_id>/                the official logs of the first grading
  <run_id>.grading-K/      the official logs of grading K (`--repeat`)
The run's own preds.jsonl and instances/<id>/patch.diff stay as the agent wrote them.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker

from atlas_agent.errors import AtlasError
from atlas_agent.fsutil import write_atomic, write_json
from atlas_agent.grading.cascade_report import cascade_facts
from atlas_agent.grading.guard import guarded_predictions, screen_predictions
from atlas_agent.grading.harness import grade
from atlas_agent.grading.progress import SILENT, GradingProgress, image_reporter, verdict
from atlas_agent.grading.record import record_gradings
from atlas_agent.grading.report import RunReport, build_report
from atlas_agent.grading.report_md import render_markdown
from atlas_agent.grading.tamper import Screening, TamperMode
from atlas_agent.rundir import RunConfig, RunDir
from atlas_agent.runtime.task_images import prepare_images
from atlas_agent.tasks import Task, load_tasks, select_tasks
from atlas_agent.tasks.loaders import task_repo_dir

GRADED_PREDICTIONS = "preds.graded.jsonl"


def read_predictions(path: Path) -> dict[str, dict[str, Any]]:
    if not path.is_file():
        raise AtlasError(f"{path} does not exist: run `atlas run` first, or point at a run directory")
    predictions: dict[str, dict[str, Any]] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            pred = json.loads(line)
            predictions[pred["instance_id"]] = pred
        except (ValueError, KeyError, TypeError) as exc:
            raise AtlasError(f"{path} line {number} is not a prediction ({exc}): fix or delete that line") from exc
    return predictions


def grading_id(run_id: str, number: int) -> str:
    """The harness run id of grading `number` (1-based): the run id itself for the first."""
    return run_id if number == 1 else f"{run_id}.grading-{number}"


def evaluate_run(
    run_path: Path,
    client: docker.DockerClient,
    *,
    workers: int = 1,
    timeout: int = 1800,
    reuse: bool = False,
    tamper: TamperMode = "strip",
    repeat: int = 1,
    progress: GradingProgress = SILENT,
    notice: Callable[[str], None] | None = None,
) -> RunReport:
    """Grade `repeat` times (fresh unless `reuse`); write report.json and report.md, and each graded
    instance's verdict into its trajectory.

    `progress` hears of each phase and verdict as it comes; `notice` one-line warnings (stderr by default).
    """
    if repeat < 1:
        raise AtlasError(f"--repeat {repeat}: grade at least once")
    run_dir = RunDir(run_path)
    config = run_dir.config()
    tasks = select_tasks(load_tasks(config.dataset, config.split), config.selection)
    rows = {task.instance_id: task.harness_row() for task in tasks}
    predictions = {iid: pred for iid, pred in read_predictions(run_path / "preds.jsonl").items() if iid in rows}
    if not predictions:
        raise nothing_to_grade(run_dir, tasks)
    screenings, graded, refused = _screened(client, tasks, predictions, config, tamper, progress)
    log_dir = run_path / "eval"
    if not reuse and log_dir.exists():
        # the harness skips every instance it finds a report for: a fresh grading starts from nothing
        shutil.rmtree(log_dir)
    write_atomic(log_dir / GRADED_PREDICTIONS, "".join(json.dumps(pred) + "\n" for pred in graded.values()))
    gradings = [
        grade(
            client,
            rows,
            graded,
            log_dir=log_dir,
            run_id=grading_id(config.run_id, number),
            workers=workers,
            timeout=timeout,
            on_graded=_grading_reporter(progress, log_dir, config.run_id, graded, number, repeat),
        )
        for number in range(1, repeat + 1)
    ]
    report = build_report(
        run_id=config.run_id,
        model=config.model,
        dataset=config.dataset,
        gradings=gradings,
        facts=_facts(run_dir, tasks),
        tamper_mode=tamper,
        tampering={iid: screening.edits for iid, screening in screenings.items()},
        refused=refused,
    )
    write_json(run_path / "report.json", report)
    write_atomic(run_path / "report.md", render_markdown(report))
    model_names = {iid: str(pred.get("model_name_or_path", "")) for iid, pred in predictions.items()}
    record_gradings(run_dir, report, log_dir, model_names, notice or _warn)
    return report


def _screened(
    client: docker.DockerClient,
    tasks: list[Task],
    predictions: dict[str, dict[str, Any]],
    config: RunConfig,
    tamper: TamperMode,
    progress: GradingProgress,
) -> tuple[dict[str, Screening], dict[str, dict[str, Any]], list[str]]:
    """The task images ready, the patches screened for test-infrastructure edits: the screenings, the
    predictions to grade and the instances refused."""
    progress.phase("task images", len(tasks))
    prepare_images(client, tasks, task_repo_dir(config.dataset), on_image=image_reporter(progress))
    progress.phase("screening the patches for test-infrastructure edits")
    screenings = screen_predictions(client, tasks, predictions, config.run_id)
    return screenings, *guarded_predictions(predictions, screenings, tamper)


def _warn(line: str) -> None:
    print(f"warning: {line}", file=sys.stderr)


class NothingToGrade(AtlasError):
    """The run has no prediction: none of its instances finished."""


def nothing_to_grade(run_dir: RunDir, tasks: list[Task]) -> NothingToGrade:
    """What the run's instances did instead of finishing, in one line."""
    states = [status.state if (status := run_dir.status(task.instance_id)) else "never ran" for task in tasks]
    errored, done, never = states.count("error"), states.count("done"), states.count("never ran")
    if done:
        return NothingToGrade(
            f"nothing to grade: {run_dir.root / 'preds.jsonl'} is empty though {done} instance(s) finished: "
            f"rerun `atlas run` with --run-id {run_dir.run_id} to write it again"
        )
    parts = [f"{errored} instance(s) errored" if errored else "", f"{never} never ran" if never else ""]
    return NothingToGrade(
        f"nothing to grade: {', '.join(part for part in parts if part) or 'the run selects no instance'}; "
        f"rerun `atlas run` with --run-id {run_dir.run_id} to retry them"
    )


def _grading_reporter(
    progress: GradingProgress, log_dir: Path, run_id: str, graded: dict[str, dict[str, Any]], number: int, repeat: int
) -> Callable[[str], None]:
    """Announces grading `number` and returns the harness's `on_graded` for it: each instance's verdict,
    a failure's cause with it."""
    which = f"grading {number} of {repeat}" if repeat > 1 else ""
    progress.phase(which or "grading", sum(1 for pred in graded.values() if pred.get("model_patch")))
    grading_run = grading_id(run_id, number)

    def report(instance_id: str) -> None:
        model_name = str(graded[instance_id].get("model_name_or_path", ""))
        outcome, cause = verdict(log_dir, grading_run, model_name, instance_id)
        line = f"{instance_id}: {outcome}" + (f" ({cause})" if cause else "") + (f" [{which}]" if which else "")
        progress.finished(instance_id, line, failed=outcome == "error")

    return report


def _facts(run_dir: RunDir, tasks: list[Task]) -> dict[str, dict[str, Any]]:
    """What the dataset and the run know of each instance, for the report."""
    facts: dict[str, dict[str, Any]] = {}
    for task in tasks:
        difficulty = (task.model_extra or {}).get("difficulty")
        fact: dict[str, Any] = {"repo": task.repo, "difficulty": str(difficulty) if difficulty else None}
        status = run_dir.status(task.instance_id)
        if status is not None:
            fact.update(stop_reason=status.stop_reason, steps=status.steps, usage=status.usage)
            fact.update(cascade_facts(run_dir.instance(task.instance_id)))
        facts[task.instance_id] = fact
    return facts
