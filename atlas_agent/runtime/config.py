"""Where an episode's workspaces live. Each runtime is a config chosen by `type:` that prepares a
run (images, or sources) and opens workspaces: a new runtime is one class and one union member."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import docker
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator

from atlas_agent.errors import AtlasError
from atlas_agent.runtime.container import ContainerLimits, TaskContainer
from atlas_agent.runtime.docker_client import await_engine, connect
from atlas_agent.runtime.image_budget import BudgetedContainer, ImageBudget
from atlas_agent.runtime.local_workspace import LocalWorkspace, check_sources, checkout_source
from atlas_agent.runtime.orphans import list_containers, remove_containers, remove_stopped
from atlas_agent.runtime.sizes import SizeError, parse_size
from atlas_agent.runtime.task_images import ImageTask, prepare_images

# One worker at a time waits for a lost engine: the others find it back when they get the lock.
_ENGINE_WAIT = threading.Lock()


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
    # Bytes of disk task images may take (see image_budget): images are then made as instances start.
    # A setting of the command, like `workers`, not of the run: left out of run.yaml (exclude), so
    # a resume never compares it and may ask for another budget.
    image_budget: int | None = Field(default=None, ge=0, exclude=True)
    _client: docker.DockerClient | None = PrivateAttr(default=None)
    _budget: ImageBudget | None = PrivateAttr(default=None)

    @field_validator("image_budget", mode="before")
    @classmethod
    def _readable_size(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return parse_size(value, "image_budget")
            except SizeError as exc:
                raise ValueError(str(exc)) from None
        return value

    def prepare(self, tasks: Iterable[ImageTask], task_repo: Path | None, notice: Callable[[str], None]) -> None:
        """Builds the images a task repo describes, pulls missing official ones; under an image budget
        only the images they build on, the rest as their instances start."""
        if self.image_budget is None:
            prepare_images(self.client, tasks, task_repo)
            return
        self._budget = ImageBudget(self.client, self.image_budget, tasks, task_repo, notice)
        self._budget.start()

    def open_workspace(self, request: WorkspaceRequest) -> TaskContainer:
        options: dict[str, Any] = {
            "run_id": request.run_id,
            "instance_id": request.instance_id,
            "limits": self.limits,
            "eval_script": request.eval_script,
        }
        if self.image_budget is None:
            return TaskContainer(self.client, request.image, **options)
        if self._budget is None:  # not prepared: the images come from the request's task repo
            self._budget = ImageBudget(self.client, self.image_budget, (), request.task_repo, lambda _line: None)
        return BudgetedContainer(self._budget, request, self.client, **options)  # the request names its task

    def remove_orphans(self, run_id: str) -> int:
        """The run's containers whose process is gone (a killed earlier process of this run)."""
        return remove_containers(self.client, list_containers(self.client, run_id=run_id, only_orphans=True))

    def reachable(self) -> bool:
        try:
            self.client.ping()
        except Exception:
            return False
        return True

    def recover(self, run_id: str, notice: Callable[[str], None]) -> None:
        """Waits (bounded) for the engine to answer again, then removes the run's containers it stopped;
        one worker waits and reports, the others wait for it. DockerUnavailable if it stays away."""

        def remove_what_it_stopped() -> None:
            if removed := remove_stopped(self.client, run_id):
                notice(f"removed {removed} container(s) of this run that the engine stopped")

        with _ENGINE_WAIT:
            await_engine(self.client, notice, settle=remove_what_it_stopped)

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

    def remove_orphans(self, run_id: str) -> int:
        """Local workspaces are temporary directories: nothing outlives the process to remove."""
        return 0

    def reachable(self) -> bool:
        return True

    def recover(self, run_id: str, notice: Callable[[str], None]) -> None:
        """This machine cannot go away the way an engine can."""

    def open_workspace(self, request: WorkspaceRequest) -> LocalWorkspace:
        source = checkout_source(request.task_repo, request.repo)
        return LocalWorkspace(
            source, run_id=request.run_id, instance_id=request.instance_id, eval_script=request.eval_script
        )


RuntimeConfig = Annotated[DockerRuntime | LocalRuntime, Field(discriminator="type")]


def runtime_config(kind: str, image_budget: str | None = None) -> DockerRuntime | LocalRuntime:
    """The runtime `--runtime` and `--image-budget` ask for; a size that cannot be read is one line."""
    if kind == "local":
        if image_budget is not None:
            raise AtlasError("--image-budget applies to --runtime docker: the local runtime uses no images")
        return LocalRuntime()
    return DockerRuntime(image_budget=None if image_budget is None else parse_size(image_budget, "--image-budget"))
