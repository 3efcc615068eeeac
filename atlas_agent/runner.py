"""Many instances: workers, resume and cost limits over the run directory (`rundir`)."""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from pathlib import Path

from atlas_agent.errors import AtlasError, DockerUnavailable
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
from atlas_agent.trajectory import Trajectory, now_iso
from atlas_agent.vocabulary import StopReason

ProgressHook = Callable[[InstanceStatus], None]
# Episodes that ended because the model backend or the container failed, not because of the agent:
# the instance is an error, retried when the run resumes.
RETRYABLE_STOPS = frozenset({StopReason.MODEL_ERROR, StopReason.RUNTIME_ERROR})


class Runner:
    def __init__(
        self,
        config: RunConfig,
        provider: ModelProvider,
        runs_dir: Path,
    ) -> None:
        self.config = config
        self.provider = provider
        self.run_dir = RunDir.of_run(runs_dir, config.run_id)

    def pending(self, tasks: list[Task]) -> list[Task]:
        """Tasks without a finished status: errors are retried, done ones are kept."""
        return [
            task
            for task in tasks
            if (status := self.run_dir.status(task.instance_id)) is None or status.state != "done"
        ]

    def run(self, tasks: list[Task], on_done: ProgressHook | None = None) -> list[InstanceStatus]:
        self.run_dir.write_config(self.config)
        report = on_done or (lambda _status: None)
        results: list[InstanceStatus] = []
        with ThreadPoolExecutor(max_workers=max(1, self.config.workers)) as pool:
            futures = [pool.submit(self._run_within_budget, task) for task in self.pending(tasks)]
            try:
                for future in as_completed(futures):
                    status = future.result()
                    if status is not None:
                        results.append(status)
                        report(status)
            except BaseException:
                # Ctrl-C: stop queued instances, and remove live containers so busy workers fail
                # their current command at once instead of holding up the exit.
                for future in futures:
                    future.cancel()
                cleanup.remove_all()
                raise
            finally:
                self.run_dir.write_predictions(self.provider.name)
        return results

    def spent_usd(self) -> float:
        """What every instance on disk has cost so far, this session and earlier ones."""
        folders = (self.run_dir.root / "instances").glob("*")
        return sum(status.usage.cost_usd for f in folders if (status := self.run_dir.status(f.name)) is not None)

    def _run_within_budget(self, task: Task) -> InstanceStatus | None:
        """None when the run's cost limit was reached before this instance started: it stays pending."""
        limit = self.config.max_cost_usd
        if limit is not None and self.spent_usd() >= limit:
            return None
        return self.run_instance(task)

    def run_instance(self, task: Task) -> InstanceStatus:
        folder = self.run_dir.instance(task.instance_id)
        trajectory = Trajectory(instance_id=task.instance_id, model=self.provider.name)
        started, started_at = time.monotonic(), now_iso()
        error: str | None = None
        patch = ""
        try:
            patch = self._solve(task, trajectory, folder)
        except DockerUnavailable:
            raise
        except AtlasError as exc:
            error = str(exc)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            write_atomic(folder / "error.log", traceback.format_exc())
        trajectory.save(folder / "trajectory.json")
        write_atomic(folder / "patch.diff", patch)
        if error is None and trajectory.stop_reason in RETRYABLE_STOPS:
            error = f"{trajectory.stop_reason}: {trajectory.stop_detail}"
        status = InstanceStatus(
            instance_id=task.instance_id,
            state="error" if error else "done",
            stop_reason=trajectory.stop_reason,
            stop_detail=trajectory.stop_detail,
            steps=trajectory.step_count,
            usage=trajectory.usage,
            patch_lines=patch.count("\n"),
            duration_s=round(time.monotonic() - started, 3),
            started_at=started_at,
            finished_at=now_iso(),
            error=error,
        )
        write_json(folder / "status.json", status)
        self.run_dir.write_predictions(self.provider.name)
        return status

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

        context = SolveContext(
            task=task,
            provider=self.provider,
            trajectory=trajectory,
            open_workspace=open_workspace,
            save=lambda: trajectory.save(folder / "trajectory.json"),
        )
        return self.config.scaffold.build().solve(context)
