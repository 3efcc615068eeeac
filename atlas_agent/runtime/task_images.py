"""Make sure every selected task has its image: build it from a task repo, or pull the official one."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Literal, Protocol

import docker
import yaml

from atlas_agent.runtime.image_usage import record_use
from atlas_agent.runtime.images import build_task_image, ensure_image_present, image_exists

ImageAction = Literal["built", "present", "pulled"]


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


def task_repo_label(task_repo: Path) -> str:
    """The dataset a task repo holds, as its `sweb.yaml` names it; else the directory's name."""
    try:
        datasets = yaml.safe_load((task_repo / "sweb.yaml").read_text()).get("datasets") or []
    except (OSError, AttributeError, yaml.YAMLError):
        datasets = []
    return str(datasets[0]) if datasets else task_repo.name


def ensure_task_image(
    client: docker.DockerClient, task: ImageTask, task_repo: Path | None, *, force: bool = False
) -> ImageAction:
    """Build the task's image when its task repo describes it, else pull the official one if missing;
    a build or pull is recorded as the image's last use."""
    dockerfile = task_dockerfile(task_repo, task.instance_id)
    if dockerfile is not None and task_repo is not None:
        # an image built from other inputs (an older suite or layout) is rebuilt, not reused
        built = build_task_image(client, dockerfile.parent, task_repo / "repos", task.image, task.repo, force=force)
        action: ImageAction = "built" if built else "present"
    elif not force and image_exists(client, task.image):
        action = "present"
    else:
        ensure_image_present(client, task.image)
        action = "pulled"
    if action != "present":
        dataset = task_repo_label(task_repo) if task_repo is not None else None
        record_use(task.image, action, instance_id=task.instance_id, dataset=dataset)
    return action


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
        report(task.instance_id, ensure_task_image(client, task, task_repo, force=force))
