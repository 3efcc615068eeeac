"""The model protocol: one call turns a conversation into the next assistant turn."""

from __future__ import annotations

from typing import Any, Literal, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from atlas_agent.errors import AtlasError


class ModelError(AtlasError):
    """The backend could not produce a turn (dead server, exhausted script, refused request)."""


class ContextOverflow(ModelError):
    """The prompt does not fit the model's context window (never retried: it would fail again)."""


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


class Turn(BaseModel):
    """One assistant reply: free text, the tool calls it makes, and what it cost."""

    text: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    latency_s: float = 0.0
    stop_reason: str = ""
    retries: list[RetryRecord] = Field(default_factory=list)
    provider_blocks: list[dict[str, Any]] = Field(default_factory=list)
    # why a reply that tried to call a tool yielded none (a text call that could not be parsed):
    # shown to the model in place of the generic "no tool call" observation
    format_error: str | None = None


_Base = TypeVar("_Base", bound="Sampling")


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


class Model(Protocol):
    """A conversation partner for one task instance."""

    @property
    def sampling(self) -> Sampling:
        """What this conversation samples with, as sent to the backend (None: the backend's default)."""
        ...

    def complete(self, messages: list[Message], tools: list[ToolSpec]) -> Turn: ...


class ModelProvider(Protocol):
    """Creates a fresh model per instance, so per-instance state (scripts, caches) never leaks.

    `variant` names one of several independent conversations about the same instance (a best-of-k
    attempt, a pipeline stage); `sampling` is that conversation's own, over the run's `-M` values.
    """

    @property
    def name(self) -> str: ...

    def for_instance(self, instance_id: str, *, variant: str = "", sampling: Sampling | None = None) -> Model: ...
