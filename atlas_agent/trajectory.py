"""The trajectory schema: every step of an agent run, written after each step."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, SerializerFunctionWrapHandler, model_serializer

from atlas_agent.fsutil import write_json
from atlas_agent.vocabulary import Observation, RetryRecord, Sampling, ShellEnvironment, StopReason, ToolCall, Usage

# What is stored of each text a model wrote (its reply, each string in its tool calls and passed-back
# blocks): a runaway reply of megabytes would otherwise be rewritten whole after every step. The
# conversation the model sees keeps it whole; the trajectory keeps head and tail and the full length.
STORED_REPLY_CHARS = 65_536
# the fields of a step that hold what the model wrote
_REPLY_FIELDS = ("thought", "tool_calls", "provider_blocks")


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def stored_text(text: str, limit: int = STORED_REPLY_CHARS) -> str:
    """`text` when it fits `limit`, else its head and tail around a marker saying how much is left out;
    never longer than `limit`, so storing it again changes nothing."""
    if len(text) <= limit:
        return text
    marker = f"\n[... {{}} of {len(text)} characters not stored ...]\n"
    kept = limit - len(marker.format(len(text)))
    head, tail = text[: kept - kept // 2], text[len(text) - kept // 2 :]
    return head + marker.format(len(text) - kept) + tail


def _stored(value: Any, where: str, cut: dict[str, int]) -> Any:
    """`value` with every string cut to what is stored; the full length of each one cut goes to `cut`."""
    if isinstance(value, str):
        if len(value) > STORED_REPLY_CHARS:
            cut[where] = len(value)
        return stored_text(value)
    if isinstance(value, dict):
        return {key: _stored(item, f"{where}.{key}", cut) for key, item in value.items()}
    if isinstance(value, list):
        return [_stored(item, f"{where}.{i}", cut) for i, item in enumerate(value)]
    return value


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
                data[field] = _stored(data[field], field, cut)
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
