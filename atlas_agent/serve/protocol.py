"""The OpenAI Chat Completions wire format: requests in, replies, stream chunks and errors out.

Requests are validated loosely where clients differ (unknown fields are ignored, content may be a
list of text parts) and strictly where a mistake would silently change the prompt.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from atlas_agent.models.engine import Finish
from atlas_agent.models.toolcall_parser import ArgumentsError, decode_arguments, parse_tool_calls


class ApiError(Exception):
    """An error reply in OpenAI's shape."""

    def __init__(self, status: int, message: str, kind: str = "invalid_request_error", code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.kind, self.code = status, kind, code

    def payload(self) -> dict[str, Any]:
        return {"error": {"message": str(self), "type": self.kind, "param": None, "code": self.code}}


class _Loose(BaseModel):
    model_config = ConfigDict(extra="ignore")


class FunctionCall(_Loose):
    name: str
    arguments: str | dict[str, Any] | None = None


class WireToolCall(_Loose):
    id: str = ""
    type: Literal["function"] = "function"
    function: FunctionCall


class ContentPart(_Loose):
    type: str
    text: str = ""


class ChatMessage(_Loose):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    tool_calls: list[WireToolCall] | None = None
    tool_call_id: str | None = None
    name: str | None = None


class FunctionSpec(BaseModel):
    model_config = ConfigDict(extra="allow")  # e.g. `strict`: handed to the chat template as sent

    name: str = Field(min_length=1)
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=dict)


class ToolDef(_Loose):
    type: Literal["function"]
    function: FunctionSpec


class NamedToolChoice(_Loose):
    type: Literal["function"]
    function: FunctionCall


class StreamOptions(_Loose):
    include_usage: bool = False


class ChatRequest(_Loose):
    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    tools: list[ToolDef] | None = None
    # "required" and a named function are accepted but not enforced: that needs constrained decoding
    tool_choice: Literal["auto", "none", "required"] | NamedToolChoice | None = None
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: Literal[1] = 1

    @property
    def tools_offered(self) -> bool:
        return bool(self.tools) and self.tool_choice != "none"

    def wire_tools(self) -> list[dict[str, Any]] | None:
        return [tool.model_dump() for tool in self.tools or []] if self.tools_offered else None

    def tool_names(self) -> set[str]:
        return {tool.function.name for tool in self.tools or []}

    def stop_strings(self) -> list[str]:
        return [self.stop] if isinstance(self.stop, str) else list(self.stop or [])

    def prompt_messages(self) -> list[dict[str, Any]]:
        """Messages as the engine's chat template expects them (see `Engine.render_prompt`)."""
        return [_prompt_message(i, message) for i, message in enumerate(self.messages)]


def parse_request(body: Any) -> ChatRequest:
    try:
        return ChatRequest.model_validate(body)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"]) or "body"
        raise ApiError(400, f"{where}: {error['msg']}") from None


def _prompt_message(index: int, message: ChatMessage) -> dict[str, Any]:
    content = message.content
    if isinstance(content, list):
        if kinds := sorted({part.type for part in content} - {"text"}):
            raise ApiError(400, f"messages.{index}.content: only text parts can be served, not {', '.join(kinds)}")
        content = "".join(part.text for part in content)
    text = content or ""
    # "developer" is the newer name for "system"; chat templates only know the old one
    rendered: dict[str, Any] = {"role": "system" if message.role == "developer" else message.role, "content": text}
    if message.tool_calls:
        calls = []
        for call in message.tool_calls:
            try:
                arguments = decode_arguments(call.function.arguments)
            except ArgumentsError as exc:
                raise ApiError(400, f"messages.{index}.tool_calls ({call.function.name}): {exc}") from None
            calls.append(
                {"id": call.id, "type": "function", "function": {"name": call.function.name, "arguments": arguments}}
            )
        rendered["tool_calls"] = calls
    if message.tool_call_id is not None:
        rendered["tool_call_id"] = message.tool_call_id
    if message.name is not None:
        rendered["name"] = message.name
    return rendered


def context_exceeded(window: int, prompt_tokens: int, max_tokens: int) -> ApiError:
    """vLLM's wording and OpenAI's code: clients recognise either as a prompt that will never fit."""
    return ApiError(
        400,
        f"This model's maximum context length is {window} tokens. However, you requested "
        f"{prompt_tokens + max_tokens} tokens ({prompt_tokens} in the messages, {max_tokens} in the completion). "
        "Please reduce the length of the messages or completion.",
        code="context_length_exceeded",
    )


@dataclass(frozen=True)
class Reply:
    """A finished completion as the client sees it: prose, native tool calls, finish reason."""

    content: str
    tool_calls: list[dict[str, Any]]
    finish_reason: str


def make_reply(text: str, finish: Finish, tool_names: set[str] | None) -> Reply:
    """Tool calls the model wrote as text become native ones. A call that cannot be read leaves
    the text whole, so the client's own parser tells the model what to fix."""
    if tool_names is not None:
        parsed = parse_tool_calls(text, tool_names, id_prefix=f"call_{secrets.token_hex(6)}_")
        if parsed.calls and not parsed.error:
            calls = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
                }
                for call in parsed.calls
            ]
            return Reply(parsed.text, calls, "tool_calls")
    return Reply(text, [], finish.reason)


def usage(prompt_tokens: int, finish: Finish) -> dict[str, Any]:
    counts: dict[str, Any] = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": finish.completion_tokens,
        "total_tokens": prompt_tokens + finish.completion_tokens,
    }
    if finish.cached_tokens is not None:
        counts["prompt_tokens_details"] = {"cached_tokens": min(finish.cached_tokens, prompt_tokens)}
    return counts


class Envelope:
    """The id, timestamp and model every part of one completion carries."""

    def __init__(self, model: str) -> None:
        self.id = f"chatcmpl-{secrets.token_hex(12)}"
        self.created = int(time.time())
        self.model = model

    def completion(self, reply: Reply, usage: dict[str, Any]) -> dict[str, Any]:
        message = {"role": "assistant", "content": reply.content or None, "tool_calls": reply.tool_calls}
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": reply.finish_reason}
        return self._wrap("chat.completion", [choice]) | {"usage": usage}

    def chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        return self._wrap(
            "chat.completion.chunk", [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]
        )

    def usage_chunk(self, usage: dict[str, Any]) -> dict[str, Any]:
        return self._wrap("chat.completion.chunk", []) | {"usage": usage}

    def _wrap(self, kind: str, choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model, "choices": choices}


def tool_call_deltas(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Complete calls in stream form: each carries its `index` in the reply."""
    return [{"index": i} | call for i, call in enumerate(calls)]


def sse(payload: dict[str, Any] | str) -> str:
    return f"data: {payload if isinstance(payload, str) else json.dumps(payload)}\n\n"
