"""`atlas eval` and `atlas validate`: grade a run directory, or a dataset's gold and empty patches."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
from pydantic import BaseModel

from atlas_agent.errors import AtlasError
from atlas_agent.fsutil import write_atomic, write_json
from atlas_agent.grading.harness import grade, instance_outcomes
from atlas_agent.grading.report import RunReport, build_report, render_markdown
from atlas_agent.runner import RunDir
from atlas_agent.runtime.prepare import prepare_images
from atlas_agent.tasks import Task, load_tasks, select_tasks
from atlas_agent.tasks.loaders import task_repo_dir


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


def evaluate_run(
    run_path: Path,
    client: docker.DockerClient,
    *,
    workers: int = 1,
    timeout: int = 1800,
    force: bool = False,
    on_graded: Callable[[str], None] | None = None,
) -> RunReport:
    run_dir = RunDir(run_path)
    config = run_dir.config()
    tasks = select_tasks(load_tasks(config.dataset, config.split), config.selection)
    predictions = read_predictions(run_path / "preds.jsonl")
    prepare_images(client, tasks, task_repo_dir(config.dataset))
    log_dir = run_path / "eval"
    if force and log_dir.exists():
        shutil.rmtree(log_dir)
    official = grade(
        client,
        {task.instance_id: task.harness_row() for task in tasks},
        predictions,
        log_dir=log_dir,
        run_id=config.run_id,
        workers=workers,
        timeout=timeout,
        on_graded=on_graded,
    )
    facts = {}
    for task in tasks:
        status = run_dir.status(task.instance_id)
        if status is not None:
            facts[task.instance_id] = {
                "stop_reason": status.stop_reason,
                "steps": status.steps,
                "usage": status.usage,
            }
    report = build_report(
        run_id=config.run_id, model=config.model, dataset=config.dataset, official=official, agent_facts=facts
    )
    write_json(run_path / "report.json", report)
    write_atomic(run_path / "report.md", render_markdown(report))
    return report


class ValidationRow(BaseModel):
    instance_id: str
    gold_resolved: bool | None
    empty_resolved: bool | None

    @property
    def ok(self) -> bool:
        return self.gold_resolved is True and self.empty_resolved is False


def validate_tasks(
    client: docker.DockerClient,
    tasks: list[Task],
    task_repo: Path | None,
    log_dir: Path,
    *,
    workers: int = 1,
    timeout: int = 1800,
) -> list[ValidationRow]:
    """Grade every task's gold patch and its empty patch (tests run on the untouched base)."""
    prepare_images(client, tasks, task_repo)
    if log_dir.exists():
        shutil.rmtree(log_dir)
    rows = {task.instance_id: task.harness_row() for task in tasks}
    ids = list(rows)
    outcomes: dict[str, dict[str, bool | None]] = {}
    for label, skip_patch in (("gold", False), ("empty", True)):
        preds = {
            task.instance_id: {
                "instance_id": task.instance_id,
                "model_name_or_path": label,
                "model_patch": "" if skip_patch else task.patch,
            }
            for task in tasks
        }
        grade(
            client,
            rows,
            preds,
            log_dir=log_dir,
            run_id=label,
            workers=workers,
            timeout=timeout,
            skip_patch=skip_patch,
        )
        outcomes[label] = instance_outcomes(log_dir, label, label, ids)
    return [
        ValidationRow(instance_id=iid, gold_resolved=outcomes["gold"][iid], empty_resolved=outcomes["empty"][iid])
        for iid in ids
    ]
