"""The trajectory schema: every step of an agent run, written after each step (see docs/trajectories.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
    model_validator,
)

from atlas_agent.errors import AtlasError
from atlas_agent.fsutil import write_json
from atlas_agent.trajectory.branch import BranchRecord
from atlas_agent.trajectory.grading import Grading
from atlas_agent.trajectory.stored import now_iso, stored
from atlas_agent.trajectory.upgrade import SCHEMA_VERSION, upgraded
from atlas_agent.vocabulary import Observation, RetryRecord, Sampling, ShellEnvironment, StopReason, ToolCall, Usage

# the fields of a step that hold what the model wrote
_REPLY_FIELDS = ("thought", "tool_calls", "provider_blocks")


class ToolResult(BaseModel):
    tool_call_id: str
    tool: str
    observation: Observation


class ModelInput(BaseModel):
    """What one model call was sent, in short."""

    messages: int  # messages sent
    history_messages: int  # messages in the conversation before history processing
    trimmed: bool  # history processing elided old observations or dropped old exchanges
    estimated_tokens: int  # Atlas's estimate of the prompt (about 3 characters a token)
    # the prompt as the backend counted it, cached tokens included; 0 where it reports no usage
    input_tokens: int = 0


class Step(BaseModel):
    index: int
    started_at: str
    finished_at: str | None = None
    # None in trajectories written before schema version 2
    model_input: ModelInput | None = None
    thought: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    results: list[ToolResult] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    model_latency_s: float = 0.0
    # wall time running the step's tool calls
    tool_latency_s: float = 0.0
    # why the reply ended, as the backend said ("stop", "length", "tool_use"...; "" where it says nothing)
    finish_reason: str = ""
    model_retries: list[RetryRecord] = Field(default_factory=list)
    # what the backend must see again next turn (thinking blocks), kept for inspection too
    provider_blocks: list[dict[str, Any]] = Field(default_factory=list)
    error: str | None = None
    nudge: str | None = None
    # the full length (characters) of each text the model wrote that is stored cut short, by where it is
    # ("thought", "tool_calls.0.arguments.content"); the model itself was sent all of it
    reply_chars: dict[str, int] = Field(default_factory=dict)

    @model_serializer(mode="wrap")
    def _bounded(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Stored, what the model wrote is bounded (STORED_REPLY_CHARS per text); in memory it stays whole."""
        data: dict[str, Any] = handler(self)
        cut = dict(self.reply_chars)
        for field in _REPLY_FIELDS:
            if field in data:
                data[field] = stored(data[field], field, cut)
        if "reply_chars" in data:
            data["reply_chars"] = cut
        return data


class Candidate(BaseModel):
    """One proposed patch and what was learned about it."""

    id: str
    source: str
    patch: str
    evidence: dict[str, Any] = Field(default_factory=dict)
    rejected: str | None = None


class Choice(BaseModel):
    candidate_id: str | None
    method: str  # "tests", "review", "vote", "only", "none"
    reason: str = ""


class Stage(BaseModel):
    """A pipeline stage (localize, repair, ...): its model calls and what it decided."""

    name: str
    started_at: str = Field(default_factory=lambda: now_iso())
    sampling: Sampling | None = None  # what the stage's model calls were sampled with
    steps: list[Step] = Field(default_factory=list)
    result: dict[str, Any] = Field(default_factory=dict)


class InstanceMetadata(BaseModel):
    """Which task, run, model and scaffold an episode belongs to, and the Atlas that ran it."""

    run_id: str
    dataset: str
    repo: str
    base_commit: str
    model_spec: str  # the --model spec the run was given
    scaffold: str  # the scaffold the run named (a shipped name or a file)
    scaffold_type: str  # its strategy (`type:`)
    atlas_version: str
    # an episode branched from another's step (`atlas run --from`): the parent and the replay
    branch: BranchRecord | None = None


class Trajectory(BaseModel):
    schema_version: int = SCHEMA_VERSION
    instance_id: str
    model: str
    # None in trajectories written before schema version 2, and in a multi-attempt scaffold's attempts
    metadata: InstanceMetadata | None = None
    started_at: str = Field(default_factory=now_iso)
    # what the episode's model was sampled with; None where the scaffold runs no single conversation
    sampling: Sampling | None = None
    # how the task's shell was set up (start-up files, eval-script activation) and the Python it got
    environment: ShellEnvironment | None = None
    system_prompt: str = ""
    instance_prompt: str = ""
    steps: list[Step] = Field(default_factory=list)
    stop_reason: StopReason | None = None
    stop_detail: str = ""
    finished_at: str | None = None
    # multi-attempt and pipeline scaffolds: sub-runs, stages, candidates and the final choice
    attempts: list[Trajectory] = Field(default_factory=list)
    stages: list[Stage] = Field(default_factory=list)
    candidates: list[Candidate] = Field(default_factory=list)
    choice: Choice | None = None
    # the verdict of `atlas eval`, once the run is graded
    grading: Grading | None = None

    @model_validator(mode="before")
    @classmethod
    def _current_schema(cls, data: Any) -> Any:
        """A trajectory of an earlier schema version is read as the current one (upgrade.py)."""
        return upgraded(data) if isinstance(data, dict) else data

    @property
    def usage(self) -> Usage:
        total = Usage()
        for step in [*self.steps, *(step for stage in self.stages for step in stage.steps)]:
            total = total + step.usage
        for attempt in self.attempts:
            total = total + attempt.usage
        return total

    @property
    def step_count(self) -> int:
        """Model turns in this run, its pipeline stages and its attempts."""
        own = len(self.steps) + sum(len(stage.steps) for stage in self.stages)
        return own + sum(attempt.step_count for attempt in self.attempts)

    def save(self, path: Path) -> None:
        write_json(path, self)

    @classmethod
    def load(cls, path: Path) -> Trajectory:
        """The trajectory stored at `path`, upgraded in memory when an earlier Atlas wrote it;
        UnreadableTrajectory (one line: the file and why) when it cannot be read as one."""
        try:
            return cls.model_validate_json(path.read_bytes())
        except OSError as exc:
            raise UnreadableTrajectory(f"{path}: {exc.strerror or exc}") from None
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(part) for part in error["loc"])
            raise UnreadableTrajectory(f"{path}: {where + ': ' if where else ''}{error['msg']}") from None


class UnreadableTrajectory(AtlasError):
    """A trajectory file that is missing, damaged, not a trajectory, or of a newer schema version."""
