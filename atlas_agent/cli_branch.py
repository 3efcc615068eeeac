"""The tasks `atlas run` runs: those its options select, or with `--from RUN/INSTANCE@STEP` the one
instance of the recorded step a new run branches from, read and checked before anything starts (each way
a step cannot be branched from is one line)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from atlas_agent.agent.branch import BranchReplay
    from atlas_agent.rundir import RunConfig
    from atlas_agent.scaffolds.config import ScaffoldConfig
    from atlas_agent.tasks import Selection, Task

FromStep = Annotated[
    str | None,
    typer.Option(
        "--from",
        help="Branch from a recorded step: RUN/INSTANCE@STEP (RUN a run directory or id, STEP numbered as "
        "`atlas show RUN INSTANCE` numbers them). Its tool calls up to STEP run again in a fresh container, "
        "then --model goes on; the run has that one instance.",
    ),
]
# --dataset, --split, --instances, --filter, --slice, --shuffle as given
TaskOptions = tuple[str, str, str | None, str | None, str | None, int | None]
# the scaffolds whose episodes are one conversation, which a branch replays and continues
LOOP_SCAFFOLDS = ("tools", "bash-only")
# what `atlas run` uses when --dataset and --split are not given
DEFAULT_DATASET, DEFAULT_SPLIT = "atlas-mini", "test"


@dataclass(frozen=True)
class TasksToRun:
    """What `atlas run` runs: the tasks its options select, or the one instance of the step it branches from."""

    dataset: str
    split: str
    selection: Selection
    tasks: list[Task]
    replay: BranchReplay | None = None

    def config_fields(self) -> dict[str, Any]:
        """What run.yaml records of them: the dataset, split, selection and parent."""
        parent = self.replay.point if self.replay else None
        return {"dataset": self.dataset, "split": self.split, "selection": self.selection, "parent": parent}


def tasks_to_run(
    from_: str | None, runs_dir: Path, scaffold: tuple[str, ScaffoldConfig], options: TaskOptions
) -> TasksToRun:
    """The selected tasks; with --from, the branched instance of the parent's dataset, once the parent
    and the chosen scaffold are found fit."""
    from atlas_agent.tasks import Selection, load_tasks, select_tasks
    from atlas_agent.tasks.selection import parse_instances

    dataset, split, instances, filter_, slice_, shuffle = options
    if from_ is not None:
        branch = open_branch(from_, runs_dir)
        branch.check_scaffold(*scaffold)
        chosen = {"--instances": instances, "--filter": filter_, "--slice": slice_, "--shuffle": shuffle}
        return branch.tasks(dataset, split, chosen)
    selection = Selection(instances=parse_instances(instances), filter=filter_, slice=slice_, shuffle=shuffle)
    return TasksToRun(dataset, split, selection, select_tasks(load_tasks(dataset, split), selection))


@dataclass(frozen=True)
class Branch:
    spec: str
    parent: RunConfig
    replay: BranchReplay

    def tasks(self, dataset: str, split: str, chosen: Mapping[str, object]) -> TasksToRun:
        """The parent's dataset and split, and its one instance; `chosen` (option: value) may name no other."""
        from atlas_agent.errors import AtlasError
        from atlas_agent.tasks import Selection, load_tasks, select_tasks

        parent = self.parent
        for option, value in chosen.items():
            if value is not None:
                raise AtlasError(f"--from runs its one instance: drop {option}")
        for option, value, default, theirs in (
            ("--dataset", dataset, DEFAULT_DATASET, parent.dataset),
            ("--split", split, DEFAULT_SPLIT, parent.split),
        ):
            if value not in (default, theirs):
                raise AtlasError(f"--from {self.spec}: its run used {option} {theirs}: drop {option} {value}")
        selection = Selection(instances=[self.replay.point.instance_id])
        tasks = select_tasks(load_tasks(parent.dataset, parent.split), selection)
        return TasksToRun(parent.dataset, parent.split, selection, tasks, self.replay)

    def check_scaffold(self, name: str, scaffold: ScaffoldConfig) -> None:
        """The chosen scaffold must be a loop offering every tool the replayed steps call."""
        from atlas_agent.agent.settings import LoopSettings
        from atlas_agent.errors import AtlasError

        if not isinstance(scaffold, LoopSettings):
            raise AtlasError(
                f"--from {self.spec}: scaffold {name} is {scaffold.type}: a branch goes on in one conversation, "
                f"so choose a {' or '.join(LOOP_SCAFFOLDS)} scaffold"
            )
        self.replay.check_tools(scaffold.tools, name)


def open_branch(spec: str, runs_dir: Path) -> Branch:
    """The recorded episode `spec` names, checked: a loop scaffold's, with STEP among its steps and
    not the one that submitted."""
    from atlas_agent.agent.branch import BranchReplay
    from atlas_agent.errors import AtlasError
    from atlas_agent.rundir import RunDir
    from atlas_agent.trajectory import BranchPoint, Trajectory
    from atlas_agent.vocabulary import StopReason

    run, instance_id, step = parse_spec(spec)
    root = run_root(spec, run, runs_dir)
    parent = RunDir(root).config()
    if parent.scaffold.type not in LOOP_SCAFFOLDS:
        raise AtlasError(
            f"--from {spec}: run {root.name} used scaffold {parent.scaffold_name} ({parent.scaffold.type}): only "
            f"an episode of a {' or '.join(LOOP_SCAFFOLDS)} scaffold is one conversation that can be branched"
        )
    path = root / "instances" / instance_id / "trajectory.json"
    if not path.is_file():
        recorded = sorted(p.parent.name for p in (root / "instances").glob("*/trajectory.json"))
        listed = ", ".join(recorded[:5]) + (" ..." if len(recorded) > 5 else "") if recorded else "none"
        raise AtlasError(f"--from {spec}: run {root.name} has no trajectory of {instance_id} (it has: {listed})")
    trajectory = Trajectory.load(path)
    steps = trajectory.steps
    if step > len(steps):
        raise AtlasError(
            f"--from {spec}: {instance_id} has {len(steps)} step(s) in run {root.name}: STEP is 1 to {len(steps)}"
        )
    if step == len(steps) and trajectory.stop_reason == StopReason.SUBMITTED:
        raise AtlasError(f"--from {spec}: step {step} is where the episode submitted: branch at an earlier step")
    point = BranchPoint(run_id=root.name, instance_id=instance_id, step=step)
    return Branch(spec=spec, parent=parent, replay=BranchReplay(point, steps[:step]))


def parse_spec(spec: str) -> tuple[str, str, int]:
    """`RUN/INSTANCE@STEP` into its parts; RUN may itself be a path."""
    from atlas_agent.errors import AtlasError

    run, _, rest = spec.rpartition("/")
    instance_id, _, step = rest.rpartition("@")
    if not run or not instance_id or not step.isdigit() or int(step) < 1:
        raise AtlasError(f"--from {spec}: expected RUN/INSTANCE@STEP with STEP from 1, e.g. runs/demo/atlas__tally-1@3")
    return run, instance_id, int(step)


def run_root(spec: str, run: str, runs_dir: Path) -> Path:
    """RUN as a run directory, else as a run id under `runs_dir`."""
    from atlas_agent.errors import AtlasError

    for candidate in (Path(run), runs_dir / run):
        if (candidate / "run.yaml").is_file():
            return candidate
    raise AtlasError(f"--from {spec}: no run {run}: name a run directory or a run id under {runs_dir}")
