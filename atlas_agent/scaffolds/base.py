"""What every scaffold strategy gets to work with, and the one method it implements."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from atlas_agent.agent.settings import LoopSettings
from atlas_agent.models.base import ModelProvider
from atlas_agent.runtime.workspace import TaskWorkspace
from atlas_agent.tasks import Task
from atlas_agent.tools.test_runner import TestRunner
from atlas_agent.trajectory import Choice, Trajectory
from atlas_agent.vocabulary import StopReason

# Opens a fresh workspace of the task; the label tells attempts apart in names and logs.
WorkspaceFactory = Callable[[str], AbstractContextManager[TaskWorkspace]]


@dataclass
class SolveContext:
    task: Task
    provider: ModelProvider
    trajectory: Trajectory
    open_workspace: WorkspaceFactory
    save: Callable[[], None]

    def test_runner(self) -> TestRunner:
        """The task's own test command, read with the official parser its row names."""
        return TestRunner.for_task(self.task)

    def task_values(self, workdir: str) -> dict[str, Any]:
        """What prompt templates may use as `task.*`."""
        task = self.task
        return {
            "instance_id": task.instance_id,
            "repo": task.repo,
            "problem_statement": task.problem_statement,
            "hints_text": task.hints_text,
            "base_commit": task.base_commit,
            "workdir": workdir,
        }


def fit_to_model(settings: LoopSettings, provider: ModelProvider) -> LoopSettings:
    """A model that knows its window (local engines do) caps the scaffold's: the prompt never exceeds it."""
    window = provider.context_window
    history = settings.history
    if not isinstance(window, int) or window >= history.context_window:
        return settings
    reserve = min(history.reserve_output_tokens, window // 4)
    fitted = history.model_copy(update={"context_window": window, "reserve_output_tokens": reserve})
    return settings.model_copy(update={"history": fitted})


def submit_choice(ctx: SolveContext, choice: Choice) -> str:
    """Record a multi-candidate scaffold's decision and return the chosen patch ("" for none)."""
    ctx.trajectory.choice = choice
    ctx.trajectory.stop_reason = StopReason.SUBMITTED if choice.candidate_id else StopReason.NO_CANDIDATE
    ctx.trajectory.stop_detail = choice.reason
    ctx.save()
    chosen = next((c for c in ctx.trajectory.candidates if c.id == choice.candidate_id), None)
    return chosen.patch if chosen else ""


class Scaffold(Protocol):
    def solve(self, ctx: SolveContext) -> str:
        """Work the task; return the final patch against the base commit ("" for none)."""
        ...
