"""What a local inference backend provides to be served by `atlas serve`.

An engine owns a loaded model: it renders a chat into the model's prompt format, counts tokens,
and generates text. Everything HTTP-shaped (the OpenAI protocol, tool-call parsing, queueing,
metrics) lives in the server, so an engine stays a thin adapter over ExLlamaV2, llama.cpp or a
test double.
"""

from __future__ import annotations

import json
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from atlas_agent.vocabulary import Message, ToolCall, ToolSpec


@dataclass
class SpeculationStats:
    """What speculative decoding did: forward passes that checked drafted tokens, and how many of
    those tokens the model kept (the token it chose after them is not counted)."""

    verify_steps: int = 0
    draft_tokens: int = 0
    accepted_tokens: int = 0

    def add(self, other: SpeculationStats) -> None:
        self.verify_steps += other.verify_steps
        self.draft_tokens += other.draft_tokens
        self.accepted_tokens += other.accepted_tokens


@dataclass(frozen=True)
class Finish:
    """How one generation ended; the return value of `Engine.generate`."""

    reason: Literal["stop", "length"]  # "stop": end of turn or a stop string; "length": max_tokens reached
    completion_tokens: int
    # prompt tokens the engine took from its prefix cache instead of prefilling them; None when it
    # cannot tell. Reported per request so the client's usage shows them as cache reads.
    cached_tokens: int | None = None
    speculation: SpeculationStats | None = None  # None: the engine did not speculate


class Engine(Protocol):
    """A loaded model, served by `atlas serve`.

    Concurrency contract: the server calls `generate` from worker threads, at most `max_concurrency`
    at a time, so a single-stream engine (llama.cpp on CPU) sets 1 and is never re-entered, while a
    batching engine (ExLlamaV2's dynamic generator) sets its batch size and must accept that many
    concurrent calls, typically by enqueueing a job per call and letting one driver thread iterate
    the generator and hand each job its text. `render_prompt` and `count_tokens` may run on another
    thread while a generation is in progress, so they must not touch generation state.
    """

    model_name: str
    context_window: int  # prompt plus completion tokens the model can attend to
    max_concurrency: int

    @property
    def speculation(self) -> str:
        """How it decodes: none, ngram or draft (options.Speculation)."""
        ...

    def count_tokens(self, text: str) -> int:
        """Tokens of `text` as the model will see it (special tokens of the chat template included)."""
        ...

    def render_prompt(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> str:
        """The model's chat template applied to `messages`, ending with the assistant's turn opening.

        `messages` are OpenAI chat messages with `content` as a string and assistant tool calls'
        `function.arguments` decoded to objects (what Hugging Face chat templates expect); `tools`
        are OpenAI tool definitions (`{"type": "function", "function": {...}}`), or None when the
        model must not be offered tools. Raises ValueError for a conversation the template refuses.
        """
        ...

    def generate(
        self, prompt: str, *, max_tokens: int, temperature: float | None, stop: list[str]
    ) -> Generator[str, None, Finish]:
        """Yield the completion of `prompt` in pieces as they are decoded, then return a `Finish`.

        Generation ends at the model's end-of-turn token, at the first of the `stop` strings (which is
        not part of the text), or after `max_tokens` tokens. `temperature` None means the model's
        default sampling. The server closes the generator early when the client goes away; an
        engine frees the request's resources (cache pages, a queued job) in its `finally`.
        """
        ...


def atlas_message(raw: dict[str, Any]) -> Message:
    calls = [
        ToolCall(id=c.get("id", ""), name=c["function"]["name"], arguments=_arguments(c["function"].get("arguments")))
        for c in raw.get("tool_calls") or []
    ]
    return Message(
        role=raw["role"], content=raw.get("content") or "", tool_calls=calls, tool_call_id=raw.get("tool_call_id")
    )


def _arguments(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        decoded = json.loads(value or "{}")
        return decoded if isinstance(decoded, dict) else {}
    return dict(value or {})


def atlas_tool(raw: dict[str, Any]) -> ToolSpec:
    function = raw.get("function", raw)
    return ToolSpec(
        name=function["name"], description=function.get("description", ""), parameters=function.get("parameters", {})
    )


def atlas_messages(messages: list[dict[str, Any]]) -> list[Message]:
    """OpenAI chat messages (as `Engine.render_prompt` receives them) as Atlas messages."""
    return [atlas_message(m) for m in messages]


def atlas_tools(tools: list[dict[str, Any]] | None) -> list[ToolSpec]:
    return [atlas_tool(t) for t in tools or []]
