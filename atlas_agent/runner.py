"""Many instances: workers, resume and cost limits over the run directory (`rundir`).

A run stops on a signal, a full disk or an engine that stays away: queued instances never start,
live containers are removed so that commands in flight fail at once, and instances still busy after
a few seconds' grace are recorded as interrupted. Every unfinished instance runs again on resume.
An episode that the Docker engine's going away cut short is an infrastructure failure, not the
model's: the instance waits for the engine (bounded) and runs again.
"""

from __future__ import annotations

import contextlib
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, as_completed, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from atlas_agent.agent.branch import BranchReplay
from atlas_agent.errors import AtlasError, DiskFull, DockerUnavailable, EngineLost
from atlas_agent.fsutil import write_atomic, write_json
from atlas_agent.models.base import ModelProvider
from atlas_agent.rundir import InstanceStatus, RunConfig, RunDir
from atlas_agent.runtime import cleanup
from atlas_agent.runtime.config import WorkspaceRequest
from atlas_agent.runtime.container import TaskContainer
from atlas_agent.runtime.local_workspace import LocalWorkspace
from atlas_agent.scaffolds import SolveContext
from atlas_agent.tasks import Task
from atlas_agent.tasks.loaders import task_repo_dir
from atlas_agent.trajectory import InstanceMetadata, Step, Trajectory, now_iso
from atlas_agent.versions import versions
from atlas_agent.vocabulary import StopReason, Usage

# Episodes that ended because the model backend, the container or the run's stopping cut them
# short, not because of the agent: the instance is an error, retried when the run resumes.
RETRYABLE_STOPS = frozenset(
    {StopReason.MODEL_ERROR, StopReason.RUNTIME_ERROR, StopReason.INFRA_FAILURE, StopReason.INTERRUPTED}
)
# How long a stopping run waits for its busy workers to record their instances themselves.
STOP_GRACE_S = 5.0
# How often one instance is tried again after the engine went away under it.
INFRA_RETRIES = 3


@dataclass(frozen=True)
class InstanceStarted:
    instance_id: str
    attempt: int = 1  # above 1 when the engine's going away cut an earlier attempt short


@dataclass(frozen=True)
class StepDone:
    """The instance's trajectory was saved after a step: how far it got and what it did last."""

    instance_id: str
    steps: int
    last_tool: str | None
    usage: Usage  # the instance's, so far


@dataclass(frozen=True)
class InstanceFinished:
    status: InstanceStatus


@dataclass(frozen=True)
class InstanceNotStarted:
    """Left pending because the run's cost limit was reached before it started."""

    instance_id: str


RunEvent = InstanceStarted | StepDone | InstanceFinished | InstanceNotStarted
# Called from the worker threads (started, steps) and the run's own thread (finished, not started).
EventHook = Callable[[RunEvent], None]


@dataclass
class _Episode:
    """An instance in flight: what it did so far, should the run stop before it ends."""

    trajectory: Trajectory
    started: float = field(default_factory=time.monotonic)
    started_at: str = field(default_factory=now_iso)


class Runner:
    def __init__(
        self,
        config: RunConfig,
        provider: ModelProvider,
        runs_dir: Path,
        notice: Callable[[str], None] | None = None,
        on_event: EventHook | None = None,
        branch: BranchReplay | None = None,
    ) -> None:
        """`notice`: one-line reports of what the run does about trouble (a lost engine, leftovers);
        `on_event`: what each instance is doing, for a progress display; `branch` (`config.parent`'s
        recorded steps): the episode replays them before the model goes on."""
        self.config = config
        self.branch = branch
        self.provider = branch.provider_over(provider) if branch else provider
        self.run_dir = RunDir.of_run(runs_dir, config.run_id)
        self.notice = notice or (lambda _line: None)
        self.on_event = on_event or (lambda _event: None)
        self._in_flight: dict[str, _Episode] = {}

    def pending(self, tasks: list[Task]) -> list[Task]:
        """Tasks without a finished status: errors are retried, done ones are kept."""
        return [task for task in tasks if not self.run_dir.finished(task.instance_id)]

    def run(self, tasks: list[Task]) -> list[InstanceStatus]:
        """The statuses of the pending tasks that ran; those the cost limit left unstarted have none."""
        self.run_dir.write_config(self.config)
        if removed := self.config.runtime.remove_orphans(self.config.run_id):
            self.notice(f"removed {removed} container(s) that a killed earlier process of this run left behind")
        results: list[InstanceStatus] = []
        pool = ThreadPoolExecutor(max_workers=max(1, self.config.workers))
        futures = {pool.submit(self._run_within_budget, task): task.instance_id for task in self.pending(tasks)}
        try:
            for future in as_completed(futures):
                status = future.result()
                if status is not None:
                    results.append(status)
                self.on_event(InstanceNotStarted(futures[future]) if status is None else InstanceFinished(status))
        except BaseException as exc:
            self._stop(list(futures), _stop_cause(exc))
            raise
        finally:
            # Workers still busy are not waited for: a stopping run ends within seconds.
            pool.shutdown(wait=False, cancel_futures=True)
            with contextlib.suppress(DiskFull):  # rebuilt from the instance folders on resume
                self.run_dir.write_predictions(self.provider.name)
        return results

    def spent_usd(self) -> float:
        """What every instance on disk has cost so far, this session and earlier ones."""
        folders = (self.run_dir.root / "instances").glob("*")
        return sum(status.usage.cost_usd for f in folders if (status := self.run_dir.status(f.name)) is not None)

    def _stop(self, futures: list[Future[InstanceStatus | None]], cause: str) -> None:
        """Nothing new starts; busy workers fail at their next command; who is still busy after the
        grace is recorded as interrupted, with the steps its trajectory already holds."""
        cleanup.request_stop(cause)
        for future in futures:
            future.cancel()
        cleanup.remove_all()
        wait([future for future in futures if not future.done()], timeout=STOP_GRACE_S)
        for instance_id, episode in list(self._in_flight.items()):
            # Only the status: its worker may still be changing the trajectory, saved after every step.
            status = self._status(instance_id, episode, "", interrupted_error(episode))
            with contextlib.suppress(OSError, AtlasError):  # best effort: unrecorded, it reruns anyway
                write_json(self.run_dir.instance(instance_id) / "status.json", status)

    def _run_within_budget(self, task: Task) -> InstanceStatus | None:
        """None when the run's cost limit was reached, or the run is stopping, before this instance
        started: it stays pending."""
        limit = self.config.max_cost_usd
        if cleanup.stop_reason() or (limit is not None and self.spent_usd() >= limit):
            return None
        return self.run_instance(task)

    def run_instance(self, task: Task) -> InstanceStatus:
        """One episode; again, after waiting for the engine, while the engine's going away cut it short."""
        attempt = 1
        while True:
            status, engine_lost = self._attempt(task, attempt)
            lost = engine_lost or not self.config.runtime.reachable()
            if status.state == "done" or cleanup.stop_reason() or not lost:
                return status
            status = status.model_copy(
                update={
                    "stop_reason": StopReason.INFRA_FAILURE,
                    "error": f"infrastructure: the Docker engine went away during attempt {attempt} ({status.error})",
                }
            )
            write_json(self.run_dir.instance(task.instance_id) / "status.json", status)
            if attempt > INFRA_RETRIES:
                return status
            self.notice(f"{task.instance_id}: the Docker engine went away mid-episode; it runs again once it is back")
            self.config.runtime.recover(self.config.run_id, self.notice)
            attempt += 1

    def _attempt(self, task: Task, attempt: int) -> tuple[InstanceStatus, bool]:
        """The episode's status, and whether it saw the engine go away."""
        folder = self.run_dir.instance(task.instance_id)
        episode = _Episode(
            Trajectory(instance_id=task.instance_id, model=self.provider.name, metadata=self._metadata(task))
        )
        self._in_flight[task.instance_id] = episode
        self.on_event(InstanceStarted(task.instance_id, attempt))
        error: str | None = None
        patch = ""
        engine_lost = False
        try:
            try:
                patch = self._solve(task, episode.trajectory, folder)
            except (DockerUnavailable, DiskFull):
                raise
            except AtlasError as exc:
                error, engine_lost = str(exc), isinstance(exc, EngineLost)
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
                write_atomic(folder / "error.log", traceback.format_exc())
            trajectory = episode.trajectory
            if error is None and trajectory.stop_reason in RETRYABLE_STOPS:
                error = f"{trajectory.stop_reason}: {trajectory.stop_detail}"
            if error is not None and cleanup.stop_reason():
                error = interrupted_error(episode)  # its container was removed under it: say why
            return self._record(task.instance_id, episode, patch, error), engine_lost
        finally:
            self._in_flight.pop(task.instance_id, None)

    def _metadata(self, task: Task) -> InstanceMetadata:
        config = self.config
        return InstanceMetadata(
            run_id=config.run_id,
            dataset=config.dataset,
            repo=task.repo,
            base_commit=task.base_commit,
            model_spec=config.model,
            scaffold=config.scaffold_name,
            scaffold_type=config.scaffold.type,
            atlas_version=versions()["atlas-agent"],
        )

    def _record(self, instance_id: str, episode: _Episode, patch: str, error: str | None) -> InstanceStatus:
        """Writes the instance's trajectory, patch and (last) status."""
        folder = self.run_dir.instance(instance_id)
        self._mark_branch(episode.trajectory)
        episode.trajectory.save(folder / "trajectory.json")
        write_atomic(folder / "patch.diff", patch)
        status = self._status(instance_id, episode, patch, error)
        write_json(folder / "status.json", status)
        self.run_dir.write_predictions(self.provider.name)
        return status

    def _mark_branch(self, trajectory: Trajectory) -> None:
        """A branched episode's metadata names its parent and says how its replay went so far."""
        if self.branch is not None and trajectory.metadata is not None:
            trajectory.metadata.branch = self.branch.record(trajectory)

    def _status(self, instance_id: str, episode: _Episode, patch: str, error: str | None) -> InstanceStatus:
        trajectory = episode.trajectory
        return InstanceStatus(
            instance_id=instance_id,
            state="error" if error else "done",
            stop_reason=StopReason.INTERRUPTED if error and cleanup.stop_reason() else trajectory.stop_reason,
            stop_detail=trajectory.stop_detail,
            steps=trajectory.step_count,
            usage=trajectory.usage,
            patch_lines=patch.count("\n"),
            duration_s=round(time.monotonic() - episode.started, 3),
            started_at=episode.started_at,
            finished_at=now_iso(),
            error=error,
        )

    def _solve(self, task: Task, trajectory: Trajectory, folder: Path) -> str:
        def request(label: str) -> WorkspaceRequest:
            return WorkspaceRequest(
                run_id=self.config.run_id,
                instance_id=task.instance_id if label == "main" else f"{task.instance_id}.{label}",
                image=task.image,
                repo=task.repo,
                eval_script=task.eval_script,
                task_repo=task_repo_dir(self.config.dataset),
            )

        @contextmanager
        def open_workspace(label: str) -> Iterator[TaskContainer | LocalWorkspace]:
            with self.config.runtime.open_workspace(request(label)) as workspace:
                # every workspace of a task is set up alike: the first one's record stands for all
                if trajectory.environment is None:
                    trajectory.environment = workspace.environment
                yield workspace

        def save() -> None:
            self._mark_branch(trajectory)
            trajectory.save(folder / "trajectory.json")
            step = StepDone(task.instance_id, trajectory.step_count, last_tool(trajectory), trajectory.usage)
            self.on_event(step)

        context = SolveContext(
            task=task,
            provider=self.provider,
            trajectory=trajectory,
            open_workspace=open_workspace,
            save=save,
        )
        return self.config.scaffold.build().solve(context)


def last_tool(trajectory: Trajectory) -> str | None:
    """The tool of the latest step that called one, in the episode or any of its stages and attempts."""
    latest = max((step for step in _all_steps(trajectory) if step.tool_calls), key=lambda s: s.started_at, default=None)
    return latest.tool_calls[-1].name if latest else None


def _all_steps(trajectory: Trajectory) -> Iterator[Step]:
    yield from trajectory.steps
    for stage in trajectory.stages:
        yield from stage.steps
    for attempt in trajectory.attempts:
        yield from _all_steps(attempt)


def interrupted_error(episode: _Episode) -> str:
    return (
        f"interrupted ({cleanup.stop_reason() or 'stopped'}) after {episode.trajectory.step_count} step(s):"
        " it runs again when the run is resumed"
    )


def _stop_cause(exc: BaseException) -> str:
    """What stopped the run, in a word or two (a signal handler may already have said)."""
    if isinstance(exc, KeyboardInterrupt):
        return "Ctrl-C"
    if isinstance(exc, DiskFull):
        return "disk full"
    if isinstance(exc, DockerUnavailable):
        return "Docker engine unavailable"
    return type(exc).__name__
