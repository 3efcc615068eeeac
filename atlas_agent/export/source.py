"""What an export reads of a run directory: its configuration, its grading, and per instance the
trajectory, patch and status; and the facts of a trajectory both foreign formats are written from."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from atlas_agent.errors import AtlasError
from atlas_agent.grading.report import RunReport
from atlas_agent.rundir import InstanceStatus, RunConfig, RunDir
from atlas_agent.trajectory import Step, Trajectory, UnreadableTrajectory
from atlas_agent.versions import versions
from atlas_agent.vocabulary import ToolCall, Usage

# what each exported step carries of Atlas's own record, beside what the foreign format has fields for
STEP_FACTS = {
    "index", "started_at", "finished_at", "model_input", "model_latency_s", "tool_latency_s", "finish_reason",
    "model_retries", "usage", "error", "nudge",
}  # fmt: skip


@dataclass
class Episode:
    """One instance as the run directory holds it."""

    trajectory: Trajectory
    patch: str
    status: InstanceStatus | None  # None while unfinished

    @property
    def instance_id(self) -> str:
        return self.trajectory.instance_id


@dataclass
class RunSource:
    root: Path
    config: RunConfig
    # the official harness's report of the first grading (None before `atlas eval`)
    official: dict[str, Any] | None
    episodes: list[Episode] = field(default_factory=list)


@dataclass(frozen=True)
class Part:
    """A stretch of one conversation: the episode itself, a pipeline stage, or an attempt."""

    label: str  # "" for the episode's own conversation
    system_prompt: str
    instance_prompt: str
    steps: list[Step]


def run_root(run: Path) -> Path:
    """`run` itself, or `runs/<run>` when `run` is a bare run id."""
    for candidate in (run, Path("runs") / run):
        if (candidate / "run.yaml").is_file():
            return candidate
    raise AtlasError(f"{run} is not a run directory (it has no run.yaml): name runs/ID or a run id under ./runs")


def read_run(run: Path, notice: Callable[[str], None]) -> RunSource:
    """The run's instances that have a trajectory, in id order; one that cannot be read is left out
    and `notice` says why."""
    root = run_root(run)
    run_dir = RunDir(root)
    source = RunSource(root=root, config=run_dir.config(), official=_official(root, notice))
    for folder in sorted(path for path in (root / "instances").glob("*") if path.is_dir()):
        try:
            trajectory = Trajectory.load(folder / "trajectory.json")
        except UnreadableTrajectory as exc:
            notice(f"{exc}: {folder.name} is left out of the export")
            continue
        patch = (folder / "patch.diff").read_text() if (folder / "patch.diff").is_file() else ""
        source.episodes.append(Episode(trajectory, patch, run_dir.status(folder.name)))
    return source


def _official(root: Path, notice: Callable[[str], None]) -> dict[str, Any] | None:
    path = root / "report.json"
    if not path.is_file():
        return None
    try:
        return RunReport.model_validate_json(path.read_bytes()).official
    except (OSError, ValueError) as exc:
        notice(f"{path} cannot be read ({type(exc).__name__}): the export carries no grading results")
        return None


def parts(trajectory: Trajectory, label: str = "") -> list[Part]:
    """Every conversation of an episode: its own, then its stages and attempts in the order they began."""
    later = [
        (stage.started_at, [Part(_joined(label, f"stage {stage.name}"), "", "", stage.steps)])
        for stage in trajectory.stages
    ]
    later += [
        (attempt.started_at, parts(attempt, _joined(label, f"attempt {number}")))
        for number, attempt in enumerate(trajectory.attempts, start=1)
    ]
    found = [Part(label, trajectory.system_prompt, trajectory.instance_prompt, trajectory.steps)]
    found += [part for _, group in sorted(later, key=lambda item: item[0]) for part in group]
    return [part for part in found if part.steps or part.system_prompt or part.instance_prompt]


def _joined(outer: str, inner: str) -> str:
    return f"{outer} / {inner}" if outer else inner


def action_text(call: ToolCall) -> str:
    """A tool call as one action: a bash call is its command, any other tool its name and arguments."""
    command = call.arguments.get("command")
    if call.name == "bash" and isinstance(command, str):
        return command
    return f"{call.name} {json.dumps(call.arguments, ensure_ascii=False)}" if call.arguments else call.name


def openai_tool_calls(step: Step) -> list[dict[str, Any]]:
    """The step's tool calls as the OpenAI chat format writes them (arguments as a JSON string), the
    form both foreign formats keep."""
    return [
        {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": json.dumps(call.arguments)}}
        for call in step.tool_calls
    ]


def stop_reason(episode: Episode) -> str | None:
    """Why the episode ended: its trajectory's reason, else its status's; None while unfinished."""
    if episode.trajectory.stop_reason is not None:
        return episode.trajectory.stop_reason.value
    return episode.status.stop_reason if episode.status is not None else None


def failed(episode: Episode) -> bool:
    """The episode ended in an error (the backend, the runtime or Atlas itself), not by the agent's doing."""
    return episode.status is not None and episode.status.state == "error"


def prompt_tokens(usage: Usage) -> int:
    """Tokens sent, cached ones included (Claude reports them apart from input_tokens)."""
    return usage.input_tokens + usage.cache_read_tokens + usage.cache_write_tokens


def epoch_seconds(timestamp: str | None) -> float | None:
    return datetime.fromisoformat(timestamp).timestamp() if timestamp else None


def atlas_info(episode: Episode) -> dict[str, Any]:
    """What only Atlas records, carried in either format's `info`: where the episode came from, why it
    stopped, and its grading once known."""
    trajectory = episode.trajectory
    return {
        "version": versions()["atlas-agent"],
        "schema_version": trajectory.schema_version,
        "metadata": trajectory.metadata.model_dump(mode="json") if trajectory.metadata else None,
        "stop_reason": stop_reason(episode),
        "stop_detail": trajectory.stop_detail,
        "error": episode.status.error if episode.status else None,
        "grading": trajectory.grading.model_dump(mode="json") if trajectory.grading else None,
    }
