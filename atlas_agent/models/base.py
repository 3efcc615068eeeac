"""The model protocol: one call turns a conversation into the next assistant turn."""

from __future__ import annotations

from typing import Any, Protocol

from pydantic import BaseModel, Field

from atlas_agent.vocabulary import Message, RetryRecord, Sampling, ToolCall, ToolSpec, Usage


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

    @property
    def context_window(self) -> int | None:
        """Tokens the model can read, where the backend knows it (local engines do); None otherwise."""
        ...

    def for_instance(self, instance_id: str, *, variant: str = "", sampling: Sampling | None = None) -> Model: ...

    def check(self) -> None:
        """A quick look (seconds, not the outage budget) that the model answers and takes this client's
        credentials, before a run starts: a ModelError line saying what to fix when it does not. A busy
        or overloaded model passes; in-process models have nothing to reach."""
        ...
