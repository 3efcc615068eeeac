"""What the GPU runtime tests share: a greedy completion read to its end, and a chat prompt with a bash tool."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from atlas_agent.models.engine import Finish
from atlas_agent.vocabulary import Message, ToolSpec

BASH = ToolSpec(
    name="bash",
    description="Run a shell command and return its output.",
    parameters={"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]},
)
TOOL_CALL = '<tool_call>\n{"name": "bash", "arguments": {"command": "ls"}}\n</tool_call>'
SOURCE = Path(__file__).resolve().parent.parent / "atlas_agent" / "runner.py"  # a long real file to quote


def complete(runtime: Any, prompt: str, max_tokens: int) -> tuple[str, Finish]:
    """A greedy reply's text and its Finish, through the runtime's streaming `generate`."""
    stream = runtime.generate(prompt, max_tokens=max_tokens, temperature=None, stop=[])
    pieces: list[str] = []
    while True:
        try:
            pieces.append(next(stream))
        except StopIteration as done:
            return "".join(pieces), done.value


def chat(runtime: Any, *contents: str) -> str:
    """The prompt for a conversation of alternating user and assistant `contents`, with the bash tool."""
    turns = [Message(role="user" if i % 2 == 0 else "assistant", content=c) for i, c in enumerate(contents)]
    return runtime.chat.render([Message(role="system", content="You fix bugs."), *turns], [BASH])


def instruct_model_dir(variable: str, what: str) -> Path:
    """The real instruct model the environment `variable` names, else the test is skipped."""
    value = os.environ.get(variable)
    if not value:
        pytest.skip(f"set {variable} to {what} instruct model directory for the tool-call test")
    return Path(value)


def tool_call_request() -> list[Message]:
    """A conversation asking for exactly TOOL_CALL."""
    return [
        Message(role="system", content="You are a coding agent. Always answer with exactly one tool call."),
        Message(role="user", content=f"List the files. Answer with exactly this and nothing else:\n{TOOL_CALL}"),
    ]
