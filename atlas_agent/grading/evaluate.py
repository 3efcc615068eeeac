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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker

from atlas_agent.errors import AtlasError
from atlas_agent.fsutil import write_atomic, write_json
from atlas_agent.grading.guard import guarded_predictions, screen_predictions
from atlas_agent.grading.harness import grade
from atlas_agent.grading.report import RunReport, build_report
from atlas_agent.grading.report_md import render_markdown
from atlas_agent.grading.tamper import TamperMode
from atlas_agent.rundir import RunDir
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
    on_graded: Callable[[str, int], None] | None = None,
) -> RunReport:
    """Grade `repeat` times (fresh unless `reuse`); write report.json and report.md.

    `on_graded(instance_id, grading_number)` reports progress.
    """
    if repeat < 1:
        raise AtlasError(f"--repeat {repeat}: grade at least once")
    run_dir = RunDir(run_path)
    config = run_dir.config()
    tasks = select_tasks(load_tasks(config.dataset, config.split), config.selection)
    rows = {task.instance_id: task.harness_row() for task in tasks}
    predictions = {iid: pred for iid, pred in read_predictions(run_path / "preds.jsonl").items() if iid in rows}
    prepare_images(client, tasks, task_repo_dir(config.dataset))
    screenings = screen_predictions(client, tasks, predictions, config.run_id)
    graded, refused = guarded_predictions(predictions, screenings, tamper)
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
            on_graded=_numbered(on_graded, number),
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
    return report


def _numbered(hook: Callable[[str, int], None] | None, number: int) -> Callable[[str], None] | None:
    return None if hook is None else (lambda iid: hook(iid, number))


def _facts(run_dir: RunDir, tasks: list[Task]) -> dict[str, dict[str, Any]]:
    """What the dataset and the run know of each instance, for the report."""
    facts: dict[str, dict[str, Any]] = {}
    for task in tasks:
        difficulty = (task.model_extra or {}).get("difficulty")
        fact: dict[str, Any] = {"repo": task.repo, "difficulty": str(difficulty) if difficulty else None}
        status = run_dir.status(task.instance_id)
        if status is not None:
            fact.update(stop_reason=status.stop_reason, steps=status.steps, usage=status.usage)
        facts[task.instance_id] = fact
    return facts
