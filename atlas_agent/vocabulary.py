"""The words every part of Atlas speaks: messages and tool calls between the agent and a model,
what a command and a tool returned, how a shell was set up, usage, sampling and stop reasons.

A leaf: it imports nothing of Atlas, so any module may use it without pulling in another layer.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

_Base = TypeVar("_Base", bound="Sampling")

# SWE-bench eval scripts run the task's test command between these two lines.
EVAL_START_MARKER = ": '>>>>> Start Test Output'"
EVAL_END_MARKER = ": '>>>>> End Test Output'"


class RetryRecord(BaseModel):
    """One failed call that was retried: which attempt, how long we waited, and why."""

    attempt: int
    wait_s: float
    error: str


class ToolCall(BaseModel):
    id: str
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class ToolSpec(BaseModel):
    """What a model is told about one tool: the JSON schema of its arguments."""

    name: str
    description: str
    parameters: dict[str, Any]


class Usage(BaseModel):
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: float = 0.0
    # local servers are priced in GPU time, not dollars: wall time x GPUs serving the model
    gpu_seconds: float = 0.0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cache_read_tokens=self.cache_read_tokens + other.cache_read_tokens,
            cache_write_tokens=self.cache_write_tokens + other.cache_write_tokens,
            cost_usd=self.cost_usd + other.cost_usd,
            gpu_seconds=self.gpu_seconds + other.gpu_seconds,
        )


class Message(BaseModel):
    role: Literal["system", "user", "assistant", "tool"]
    content: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    tool_call_id: str | None = None
    # backend-specific content that must be sent back verbatim (e.g. Claude's signed thinking blocks)
    provider_blocks: list[dict[str, Any]] = Field(default_factory=list)


class Sampling(BaseModel):
    """How replies are sampled. Set at three levels, the nearest winning: a best-of-k attempt's or a
    pipeline stage's temperature, a scaffold's `sampling:`, the run's `-M`. None leaves a value to the
    level below it, and in the end to the backend's default."""

    model_config = ConfigDict(extra="forbid")

    temperature: float | None = Field(None, ge=0, le=2)
    max_output_tokens: int | None = Field(None, ge=1, description="the reply's token limit (`max_tokens`)")

    def over(self, base: _Base) -> _Base:
        """`base` (a Sampling, or the run's ModelOptions) with these values where they are set."""
        return base.model_copy(update=self.model_dump(exclude_none=True))


class Observation(BaseModel):
    """What a tool call returns: `output` is what the model sees (bounded); `full_output` keeps the
    complete text in the trajectory when `output` had to be shortened."""

    output: str
    full_output: str | None = None
    exit_code: int | None = None
    timed_out: bool = False
    truncated: bool = False
    duration_s: float = 0.0


class CommandResult(BaseModel):
    output: str
    exit_code: int
    timed_out: bool = False
    truncated: bool = False
    total_bytes: int
    duration_s: float


class SetupStep(BaseModel):
    """One start-up file or set-up line, as it ran in the shell."""

    command: str
    exit_code: int
    output: str = ""


class ShellEnvironment(BaseModel):
    """What the shell ran before the agent's first command, and the Python it ended up with.
    Recorded in the trajectory, so a run says which environment its episodes had."""

    steps: list[SetupStep] = Field(default_factory=list)
    python: str = ""  # `command -v python` afterwards
    python_prefix: str = ""  # that interpreter's sys.prefix

    @property
    def failed(self) -> list[SetupStep]:
        return [step for step in self.steps if step.exit_code != 0]


class StopReason(StrEnum):
    """Why an episode ended: the one list every scaffold ends with."""

    SUBMITTED = "submitted"
    NO_CANDIDATE = "no_candidate"  # a multi-candidate scaffold had nothing worth submitting
    STEP_LIMIT = "step_limit"
    COST_LIMIT = "cost_limit"
    TOKEN_LIMIT = "token_limit"
    TIME_LIMIT = "time_limit"
    STUCK = "stuck"
    FORMAT_ERRORS = "format_errors"
    CONTEXT_OVERFLOW = "context_overflow"
    MODEL_ERROR = "model_error"
    RUNTIME_ERROR = "runtime_error"
    INFRA_FAILURE = "infra_failure"  # the Docker engine went away under the episode
    INTERRUPTED = "interrupted"  # a signal or a full disk stopped the run mid-episode
