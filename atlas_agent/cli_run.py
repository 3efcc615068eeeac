"""`atlas run` from its checks to its summary: the model's endpoint checked once, what the run directory
held that is damaged, the instances to redo set aside, the instances as they run (through
`cli_progress`), and a summary that says what happened: how many finished, errored (their causes,
grouped) and were left unstarted by the cost limit."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from rich.console import Console
from rich.markup import escape

from atlas_agent.cli_progress import Progress, one_line
from atlas_agent.rundir import InstanceStatus
from atlas_agent.runner import (
    EventHook,
    InstanceFinished,
    InstanceNotStarted,
    InstanceStarted,
    RunEvent,
    Runner,
    StepDone,
)
from atlas_agent.tasks import Task
from atlas_agent.tasks.loaders import task_repo_dir
from atlas_agent.trajectory import Trajectory, UnreadableTrajectory

# instance ids shown beside a grouped cause before "+N more"
SHOWN_IDS = 3


def run_on_screen(runner: Runner, tasks: list[Task], redone: list[str], console: Console) -> int:
    """Checks the model's endpoint when anything is to run, prepares the runtime, and runs the pending
    tasks and those to redo, on screen; how many of them ended in an error."""
    if redone or runner.pending(tasks):
        runner.provider.check()  # a dead server or a refused key: one line now, not an error per instance
    runtime = runner.config.runtime
    with console.status(f"preparing the {runtime.type} runtime"):
        runtime.prepare(tasks, task_repo_dir(runner.config.dataset), lambda line: console.print(line, style="yellow"))
    warn_of_damage(runner, console)
    redo(runner, redone, console)
    statuses = run_with_progress(runner, tasks, console)
    if statuses:
        report_branch(runner, console)
    return sum(status.state == "error" for status in statuses)


def report_branch(runner: Runner, console: Console) -> None:
    """How a branched run's replay went: its parent, and the replayed steps that observed something else
    than their recorded output (the trajectory's metadata holds the same)."""
    if runner.branch is None:
        return
    path = runner.run_dir.instance(runner.branch.point.instance_id) / "trajectory.json"
    try:
        metadata = Trajectory.load(path).metadata
    except UnreadableTrajectory:
        return  # the instance's own line said what went wrong
    record = metadata.branch if metadata else None
    if record is None:
        return
    line = f"branch of {record.parent}: {record.replayed_steps} of {record.parent.step} step(s) replayed"
    if record.diverged_steps:
        line += f"; {record.diverged_steps} observed other output than recorded, first {record.first_divergence}"
    console.print(escape(line), style="yellow" if record.diverged_steps else None, highlight=False)


def warn_of_damage(runner: Runner, console: Console) -> None:
    """What the run directory holds that is not as the run left it, a line each."""
    run_dir = runner.run_dir
    for path in sorted(run_dir.damaged):
        consequence = "it is written anew" if path == run_dir.root / "run.yaml" else "its instance runs again"
        console.print(f"[yellow]warning[/]: {escape(str(path))} is damaged: {consequence}", highlight=False)
    for line in run_dir.changed_patches():
        console.print(f"[yellow]warning[/]: {escape(line)}", highlight=False)


def redo(runner: Runner, instance_ids: Sequence[str], console: Console) -> None:
    """Sets the instances' files aside (instances/<id>/previous-N/), so that they run again."""
    if not instance_ids:
        return
    moved = runner.run_dir.set_aside(instance_ids, runner.provider.name)
    kept = f"; earlier files of {len(moved)} kept in instances/<id>/previous-<N>/" if moved else ""
    console.print(f"redo: {len(instance_ids)} instance(s) run again{kept}", highlight=False)
    if (runner.run_dir.root / "report.json").is_file():
        console.print("[yellow]note[/]: report.json predates the redo: grade the run again with `atlas eval`")


def run_with_progress(runner: Runner, tasks: list[Task], console: Console) -> list[InstanceStatus]:
    """Runs the pending tasks under a progress display; the statuses of those that ran."""
    pending = runner.pending(tasks)
    done_before = len(tasks) - len(pending)
    console.print(f"run [bold]{runner.config.run_id}[/]: {len(tasks)} tasks, {done_before} already done")
    with Progress(console, f"run {runner.config.run_id}", len(pending)) as progress:
        runner.on_event = progress_events(progress)
        statuses = runner.run(tasks)
    summarize(runner, len(pending), statuses, console)
    return statuses


def progress_events(progress: Progress) -> EventHook:
    """The runner's events, shown."""

    def show(event: RunEvent) -> None:
        if isinstance(event, InstanceStarted):
            progress.started(event.instance_id)
        elif isinstance(event, StepDone):
            progress.stepped(event.instance_id, event.steps, event.last_tool, event.usage)
        elif isinstance(event, InstanceFinished):
            status = event.status
            progress.finished(
                status.instance_id, finished_line(status), failed=status.state == "error", usage=status.usage
            )
        elif isinstance(event, InstanceNotStarted):
            progress.skipped(event.instance_id)

    return show


def finished_line(status: InstanceStatus) -> str:
    """`id: done (submitted, 5 steps, 3.2 s, $0.0100)`; an error with its cause on the same line."""
    cost = f", ${status.usage.cost_usd:.4f}" if status.usage.cost_usd else ""
    reason = f"{status.stop_reason}, " if status.stop_reason else ""
    facts = f"{reason}{status.steps} steps, {status.duration_s:.1f} s{cost}"
    cause = f": {one_line(status.error)}" if status.state == "error" and status.error else ""
    return f"{status.instance_id}: {status.state} ({facts}){cause}"


def summarize(runner: Runner, pending: int, statuses: list[InstanceStatus], console: Console) -> None:
    """What this command did: done, errored (causes grouped), left unstarted by the cost limit."""
    errored = [status for status in statuses if status.state == "error"]
    not_started = pending - len(statuses)
    counts = f"{len(statuses) - len(errored)} done, {len(errored)} errored"
    left = f", {not_started} not started (cost limit)" if not_started else ""
    console.print(f"run [bold]{runner.config.run_id}[/]: {counts}{left} of {pending} to run", highlight=False)
    for cause, ids in grouped_causes(errored).items():
        shown = ", ".join(ids[:SHOWN_IDS]) + (f" +{len(ids) - SHOWN_IDS} more" if len(ids) > SHOWN_IDS else "")
        console.print(f"  [red]{len(ids)} x[/] {escape(cause)} [dim]({escape(shown)})[/]", highlight=False)
    limit = runner.config.max_cost_usd
    if not_started and limit is not None:
        console.print(
            f"[yellow]cost limit[/]: ${runner.spent_usd():.4f} spent of ${limit:g}; {not_started} instance(s) "
            "not started (rerun with the same --run-id and a higher --max-cost to continue)",
            highlight=False,
        )
    console.print(f"predictions: {runner.run_dir.root / 'preds.jsonl'}", highlight=False)
    if errored:
        console.print(
            f"[red]{len(errored)} of {len(statuses)} instance(s) ended in an error[/] (model backend or runtime; "
            "causes above, whole in their status.json): rerun the same command to retry them",
            highlight=False,
        )


def grouped_causes(errored: list[InstanceStatus]) -> dict[str, list[str]]:
    """Instance ids by the one-line cause of their error, the commonest cause first."""
    groups: dict[str, list[str]] = defaultdict(list)
    for status in errored:
        groups[one_line(status.error or f"{status.stop_reason}: no cause recorded")].append(status.instance_id)
    return dict(sorted(groups.items(), key=lambda group: -len(group[1])))
