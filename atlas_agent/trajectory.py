"""The trajectory schema: every step of an agent run, written after each step."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from atlas_agent.fsutil import write_json
from atlas_agent.vocabulary import Observation, RetryRecord, Sampling, ShellEnvironment, StopReason, ToolCall, Usage


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class ToolResult(BaseModel):
    tool_call_id: str
    tool: str
    observation: Observation


class Step(BaseModel):
    index: int
    started_at: str
    thought: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    results: list[ToolResult] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    model_latency_s: float = 0.0
    model_retries: list[RetryRecord] = Field(default_factory=list)
    # what the backend must see again next turn (thinking blocks), kept for inspection too
    provider_blocks: list[dict[str, Any]] = Field(default_factory=list)
    error: str | None = None
    nudge: str | None = None


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


class Trajectory(BaseModel):
    instance_id: str
    model: str
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
        return cls.model_validate_json(path.read_text())
