"""The tamper guard around grading: screen every prediction, then strip, refuse or keep.

Screening is pure (`tamper.screen_patch`); the one piece of I/O is reading the base text of a
configuration file the patch edits, straight from the task image (a created, never started,
network-less container), so pytest sections are found exactly where the hunks fall.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterable, Mapping
from typing import Any

import docker
from docker.errors import NotFound

from atlas_agent.grading.tamper import Screening, TamperMode, base_files_needed, rules_for, screen_patch
from atlas_agent.runtime.orphans import owner_labels
from atlas_agent.tasks import Task
from atlas_agent.tools.test_command import TASK_ROOT


def screen_predictions(
    client: docker.DockerClient, tasks: Iterable[Task], predictions: Mapping[str, Mapping[str, Any]], run_id: str
) -> dict[str, Screening]:
    """The screening of every prediction that edits test infrastructure, by instance id."""
    found: dict[str, Screening] = {}
    for task in tasks:
        patch = (predictions.get(task.instance_id) or {}).get("model_patch") or ""
        if not patch:
            continue
        needed = base_files_needed(patch)
        base = read_base_files(client, task.image, needed, run_id) if needed else {}
        screening = screen_patch(patch, rules_for(task.test_patch, task.eval_script), base)
        if screening.edits:
            found[task.instance_id] = screening
    return found


def guarded_predictions(
    predictions: Mapping[str, Mapping[str, Any]], screenings: Mapping[str, Screening], mode: TamperMode
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """The predictions to grade under `mode`, and the instances refused."""
    graded = {iid: dict(pred) for iid, pred in predictions.items()}
    if mode == "off":
        return graded, []
    if mode == "refuse":
        refused = sorted(iid for iid in screenings if iid in graded)
        return {iid: pred for iid, pred in graded.items() if iid not in screenings}, refused
    for iid, screening in screenings.items():
        if iid in graded:
            graded[iid]["model_patch"] = screening.patch
    return graded, []


def read_base_files(client: docker.DockerClient, image: str, paths: Iterable[str], run_id: str) -> dict[str, str]:
    """The text of each of `paths` in the image's repository; files it lacks are left out."""
    container = client.containers.create(
        image,
        command=["true"],
        network_mode="none",
        labels={**owner_labels(run_id), "atlas.role": "grading"},
    )
    texts: dict[str, str] = {}
    try:
        for path in paths:
            try:
                chunks, _ = container.get_archive(f"{TASK_ROOT}/{path}")
            except NotFound:
                continue
            text = _single_file(b"".join(chunks))
            if text is not None:
                texts[path] = text
    finally:
        container.remove(force=True)
    return texts


def _single_file(archive: bytes) -> str | None:
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        member = next((m for m in tar.getmembers() if m.isfile()), None)
        handle = tar.extractfile(member) if member is not None else None
        return handle.read().decode("utf-8", "replace") if handle is not None else None
