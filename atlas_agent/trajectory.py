"""The trajectory schema: every step of an agent run, written after each step."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, Field

from atlas_agent.fsutil import write_json
from atlas_agent.models.base import ToolCall, Usage
from atlas_agent.tools.base import Observation


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
    error: str | None = None


class Trajectory(BaseModel):
    instance_id: str
    model: str
    started_at: str = Field(default_factory=now_iso)
    system_prompt: str = ""
    instance_prompt: str = ""
    steps: list[Step] = Field(default_factory=list)
    stop_reason: str | None = None
    stop_detail: str = ""
    finished_at: str | None = None

    @property
    def usage(self) -> Usage:
        total = Usage()
        for step in self.steps:
            total = total + step.usage
        return total

    def save(self, path: Path) -> None:
        write_json(path, self)

    @classmethod
    def load(cls, path: Path) -> Trajectory:
        return cls.model_validate_json(path.read_text())
