"""Where an episode's workspaces live. Each runtime is a config chosen by `type:` that prepares a
run (images, or sources) and opens workspaces: a new runtime is one class and one union member."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import docker
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from atlas_agent.runtime.container import ContainerLimits, TaskContainer
from atlas_agent.runtime.docker_client import connect
from atlas_agent.runtime.local_workspace import LocalWorkspace, check_sources, checkout_source
from atlas_agent.runtime.task_images import ImageTask, prepare_images


@dataclass(frozen=True)
class WorkspaceRequest:
    """One workspace of one task: `instance_id` carries the workspace's label (attempts, checks)."""

    run_id: str
    instance_id: str
    image: str
    repo: str
    eval_script: str | None
    task_repo: Path | None  # the task-repo directory of the dataset, where it ships repository sources


class DockerRuntime(BaseModel):
    """A task container per workspace: no network, bounded memory, CPU and pids."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["docker"] = "docker"
    limits: ContainerLimits = Field(default_factory=ContainerLimits)
    _client: docker.DockerClient | None = PrivateAttr(default=None)

    def prepare(self, tasks: Iterable[ImageTask], task_repo: Path | None, notice: Callable[[str], None]) -> None:
        """Builds the images a task repo describes, pulls missing official ones."""
        prepare_images(self.client, tasks, task_repo)

    def open_workspace(self, request: WorkspaceRequest) -> TaskContainer:
        return TaskContainer(
            self.client,
            request.image,
            run_id=request.run_id,
            instance_id=request.instance_id,
            limits=self.limits,
            eval_script=request.eval_script,
        )

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            self._client = connect()
        return self._client


class LocalRuntime(BaseModel):
    """A checkout on this machine per workspace, for hosts without Docker: no isolation."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["local"] = "local"

    def prepare(self, tasks: Iterable[ImageTask], task_repo: Path | None, notice: Callable[[str], None]) -> None:
        """Every task's repository source must be shipped with the dataset."""
        check_sources(task_repo, (task.repo for task in tasks))
        notice("runtime local: the agent's commands run on this machine as you, without isolation")

    def open_workspace(self, request: WorkspaceRequest) -> LocalWorkspace:
        source = checkout_source(request.task_repo, request.repo)
        return LocalWorkspace(
            source, run_id=request.run_id, instance_id=request.instance_id, eval_script=request.eval_script
        )


RuntimeConfig = Annotated[DockerRuntime | LocalRuntime, Field(discriminator="type")]
