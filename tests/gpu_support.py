"""What the GPU runtime tests share: a greedy completion read to its end, and a chat prompt with a bash tool."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from atlas_agent.models.engine import Finish
from atlas_agent.vocabulary import Message, ToolSpec

BASH = ToolSpec(
    name="bash",
    description="Run a shell command and return its output.",
    parameters={"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]},
)
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
