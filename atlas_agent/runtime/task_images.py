"""Make sure every selected task has its image: build it from a task repo, or pull the official one."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Protocol

import docker

from atlas_agent.runtime.images import build_task_image, ensure_image_present, image_exists


class ImageTask(Protocol):
    @property
    def instance_id(self) -> str: ...
    @property
    def repo(self) -> str: ...
    @property
    def image(self) -> str: ...


def task_dockerfile(task_repo: Path | None, instance_id: str) -> Path | None:
    if task_repo is None:
        return None
    path = task_repo / "tasks" / instance_id / "Dockerfile"
    return path if path.is_file() else None


def prepare_images(
    client: docker.DockerClient,
    tasks: Iterable[ImageTask],
    task_repo: Path | None,
    *,
    force: bool = False,
    on_image: Callable[[str, str], None] | None = None,
) -> None:
    """Build task images that a task repo describes; pull official ones that are missing.

    `on_image(instance_id, action)` reports progress: "built", "present" or "pulled".
    """
    report = on_image or (lambda _id, _action: None)
    for task in tasks:
        dockerfile = task_dockerfile(task_repo, task.instance_id)
        if dockerfile is not None and task_repo is not None:
            # an image built from other inputs (an older suite or layout) is rebuilt, not reused
            built = build_task_image(client, dockerfile.parent, task_repo / "repos", task.image, task.repo, force=force)
            report(task.instance_id, "built" if built else "present")
        elif not force and image_exists(client, task.image):
            report(task.instance_id, "present")
        else:
            ensure_image_present(client, task.image)
            report(task.instance_id, "pulled")
