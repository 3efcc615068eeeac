"""One instance in full: its trajectory flattened into numbered steps, its patch and the tail of the
grading's test output."""

from __future__ import annotations

from pathlib import Path

from atlas_agent.models.prefix import REPLAYED
from atlas_agent.trajectory import Step, Trajectory
from atlas_agent.viewer.load import problem, read_patch
from atlas_agent.viewer.models import CallView, Damage, InstanceDetail, InstanceView, ResultView, RunView, StepView

TEST_OUTPUT_TAIL_LINES = 80


def load_detail(run: RunView, instance: InstanceView) -> InstanceDetail:
    root = Path(run.path)
    folder = root / "instances" / instance.instance_id
    damaged: list[Damage] = []
    patch = read_patch(folder, False, damaged)
    trajectory = read_trajectory(folder, instance.state == "done", damaged)
    return InstanceDetail(
        instance_id=instance.instance_id,
        system_prompt=trajectory.system_prompt if trajectory else "",
        instance_prompt=trajectory.instance_prompt if trajectory else "",
        steps=flattened(trajectory) if trajectory else [],
        choice=choice_of(trajectory) if trajectory else None,
        patch=patch,
        test_output_tail=grading_output_tail(root, instance),
        damaged=damaged,
    )


def read_trajectory(folder: Path, done: bool, damaged: list[Damage]) -> Trajectory | None:
    """trajectory.json; a done instance without one is damaged (an errored or unfinished one may have none)."""
    path = folder / "trajectory.json"
    where = f"instances/{folder.name}/trajectory.json"
    if not path.is_file():
        if done:
            damaged.append(Damage(file=where, problem="missing"))
        return None
    try:
        return Trajectory.model_validate_json(path.read_bytes())
    except (OSError, ValueError) as exc:
        damaged.append(Damage(file=where, problem=problem(exc)))
        return None


def flattened(trajectory: Trajectory, part: str = "", first: int = 1) -> list[StepView]:
    """The main loop's steps, then each pipeline stage's, then each attempt's, numbered from `first`."""
    parts = [(part, trajectory.steps)]
    parts += [(joined(part, f"stage {stage.name}"), stage.steps) for stage in trajectory.stages]
    ordered = [(name, step) for name, steps in parts for step in steps]
    views = [step_view(step, name, first + i) for i, (name, step) in enumerate(ordered)]
    for number, attempt in enumerate(trajectory.attempts, start=1):
        views += flattened(attempt, joined(part, f"attempt {number}"), first + len(views))
    return views


def joined(outer: str, inner: str) -> str:
    return f"{outer} / {inner}" if outer else inner


def step_view(step: Step, part: str, number: int) -> StepView:
    return StepView(
        number=number,
        part=part,
        started_at=step.started_at,
        thought=step.thought,
        calls=[CallView(tool=call.name, arguments=call.arguments) for call in step.tool_calls],
        results=[
            ResultView(
                tool=result.tool,
                output=result.observation.full_output or result.observation.output,
                exit_code=result.observation.exit_code,
                timed_out=result.observation.timed_out,
                shortened=result.observation.truncated,
                duration_s=result.observation.duration_s,
            )
            for result in step.results
        ],
        usage=step.usage,
        latency_s=step.model_latency_s,
        retries=len(step.model_retries),
        error=step.error,
        replayed=step.finish_reason == REPLAYED,
        nudge=step.nudge,
    )


def choice_of(trajectory: Trajectory) -> str | None:
    """A multi-candidate scaffold's pick, in words."""
    if trajectory.choice is None:
        return None
    choice = trajectory.choice
    picked = f"candidate {choice.candidate_id}" if choice.candidate_id else "no candidate"
    return f"{picked} of {len(trajectory.candidates)}, by {choice.method}" + (
        f": {choice.reason}" if choice.reason else ""
    )


def grading_output_tail(root: Path, instance: InstanceView) -> str:
    """The last lines of the grading's test_output.txt, where a failing test says why."""
    if instance.grading is None:
        return ""
    try:
        lines = (root / instance.grading.log_dir / "test_output.txt").read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-TEST_OUTPUT_TAIL_LINES:])
