"""Atlas messages ↔ the Anthropic Messages wire format, with prompt-caching breakpoints.

The conversation is rebuilt from scratch on every call, so every dict here is fresh: marking a
block for caching never touches the caller's messages.
"""

from __future__ import annotations

from typing import Any

from anthropic.types import Message as ApiMessage

from atlas_agent.vocabulary import Message, ToolCall, ToolSpec, Usage

EPHEMERAL = {"type": "ephemeral"}
# The API rejects a request with more than four cache_control blocks.
MAX_CACHE_BREAKPOINTS = 4
# Blocks that must reach the API again exactly as it sent them (their signatures are checked).
PASSED_BACK = frozenset({"thinking", "redacted_thinking"})


def tool_definitions(tools: list[ToolSpec]) -> list[dict[str, Any]]:
    return [{"name": t.name, "description": t.description, "input_schema": t.parameters} for t in tools]


def _text(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def _assistant_blocks(message: Message) -> list[dict[str, Any]]:
    blocks = [dict(block) for block in message.provider_blocks]
    if message.content:  # the API rejects empty text blocks
        blocks.append(_text(message.content))
    blocks += [{"type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments} for c in message.tool_calls]
    return blocks


def _user_blocks(message: Message) -> list[dict[str, Any]]:
    if message.role == "tool" and message.tool_call_id:
        result: dict[str, Any] = {"type": "tool_result", "tool_use_id": message.tool_call_id}
        if message.content:  # an empty result is sent without content rather than as an empty text
            result["content"] = message.content
        return [result]
    return [_text(message.content)] if message.content else []


def conversation(messages: list[Message]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(system blocks, API messages). Consecutive user-side messages (tool results, then any note
    that follows them) become one user turn, so the tool results of one assistant turn arrive
    together and first, as the API requires; messages with nothing to send are left out."""
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "system":
            system += [_text(message.content)] if message.content else []
            continue
        role = "assistant" if message.role == "assistant" else "user"
        blocks = _assistant_blocks(message) if role == "assistant" else _user_blocks(message)
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"] += blocks
        else:
            turns.append({"role": role, "content": blocks})
    return system, turns


def mark_cache_breakpoints(
    tools: list[dict[str, Any]], system: list[dict[str, Any]], turns: list[dict[str, Any]]
) -> None:
    """Cache the tool list and system prompt (identical on every call), then roll breakpoints along
    the latest user turns: the newest writes the prefix the next call will read, the one before it
    reads what the previous call wrote. Together at most the API's four."""
    fixed = [blocks[-1] for blocks in (tools, system) if blocks]
    user_turns = [turn for turn in turns if turn["role"] == "user"]
    rolling = [turn["content"][-1] for turn in user_turns[-(MAX_CACHE_BREAKPOINTS - len(fixed)) :]]
    for block in fixed + rolling:
        block["cache_control"] = dict(EPHEMERAL)


def request_body(messages: list[Message], tools: list[ToolSpec]) -> dict[str, Any]:
    """The `system`, `messages` and `tools` parameters of one Messages call."""
    system, turns = conversation(messages)
    definitions = tool_definitions(tools)
    mark_cache_breakpoints(definitions, system, turns)
    body: dict[str, Any] = {"messages": turns}
    if system:
        body["system"] = system
    if definitions:
        body["tools"] = definitions
    return body


def parse_reply(reply: ApiMessage) -> tuple[str, list[ToolCall], list[dict[str, Any]]]:
    """(visible text, tool calls, blocks to pass back next turn) of one API reply."""
    texts: list[str] = []
    calls: list[ToolCall] = []
    passed_back: list[dict[str, Any]] = []
    for block in reply.content:
        if block.type == "text":
            texts.append(block.text)
        elif block.type == "tool_use":
            arguments = block.input if isinstance(block.input, dict) else {}
            calls.append(ToolCall(id=block.id, name=block.name, arguments=arguments))
        elif block.type in PASSED_BACK:
            # only the fields the API sent, so the block goes back byte-for-byte the same
            passed_back.append(block.to_dict(mode="json"))
    return "\n".join(texts), calls, passed_back


def reply_usage(reply: ApiMessage) -> Usage:
    """Token counts as billed: `input_tokens` is the uncached part of the prompt."""
    usage = reply.usage
    return Usage(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_write_tokens=usage.cache_creation_input_tokens or 0,
        cache_read_tokens=usage.cache_read_input_tokens or 0,
    )
