"""History processing: what of the conversation the model sees on each turn.

The last `keep_last` tool observations stay whole; older ones are replaced by a one-line marker.
Then the prompt is fitted into the model's window: the oldest exchanges are dropped (the system
prompt and the task statement always stay), and only if the recent observations alone are too big
are they elided too, so a long run on a 32k-context model never sends a prompt it cannot read.
"""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from atlas_agent.vocabulary import Message

# Conservative: code and logs run at 3-4 characters per token in common BPE vocabularies.
CHARS_PER_TOKEN = 3.0
MESSAGE_OVERHEAD_TOKENS = 8


class HistoryConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["last_n_observations"] = "last_n_observations"
    keep_last: int = Field(5, ge=1, description="tool observations kept whole")
    context_window: int = Field(32768, ge=1024, description="the model's context in tokens")
    reserve_output_tokens: int = Field(4096, ge=0, description="room left for the reply")

    @property
    def prompt_budget(self) -> int:
        return self.context_window - self.reserve_output_tokens

    def process(self, messages: list[Message]) -> list[Message]:
        """What the model is sent this turn (the strategy this config's `type` names)."""
        return process_history(messages, self)


def estimate_tokens(messages: list[Message]) -> int:
    chars = 0
    for message in messages:
        chars += len(message.content)
        for call in message.tool_calls:
            chars += len(call.name) + len(json.dumps(call.arguments, ensure_ascii=False))
    return int(chars / CHARS_PER_TOKEN) + MESSAGE_OVERHEAD_TOKENS * len(messages)


def elided(message: Message) -> Message:
    marker = f"[output elided: {len(message.content)} characters; rerun the command if you need it]"
    return message.model_copy(update={"content": marker})


def process_history(messages: list[Message], config: HistoryConfig) -> list[Message]:
    """The messages to send: recent observations whole, older ones elided, fitted to the window."""
    tool_positions = [i for i, message in enumerate(messages) if message.role == "tool"]
    keep = config.keep_last
    while True:
        # old exchanges go before recent observations are elided
        shown = _drop_oldest_exchanges(_elide_older(messages, tool_positions, keep), config.prompt_budget)
        if estimate_tokens(shown) <= config.prompt_budget or keep == 0:
            return shown
        keep -= 1


def _elide_older(messages: list[Message], tool_positions: list[int], keep: int) -> list[Message]:
    old = set(tool_positions[: max(0, len(tool_positions) - keep)])
    return [elided(message) if i in old else message for i, message in enumerate(messages)]


def _drop_oldest_exchanges(messages: list[Message], budget: int) -> list[Message]:
    """Drop whole exchanges after the opening (system + task) until the prompt, note included, fits."""
    head, rest = messages[:2], messages[2:]
    if estimate_tokens(messages) <= budget:
        return messages
    dropped = 0
    while rest:
        cut = _next_exchange_end(rest)
        dropped += cut
        rest = rest[cut:]
        note = Message(role="user", content=f"[{dropped} earlier messages were dropped to fit the context window]")
        if estimate_tokens([*head, note, *rest]) <= budget:
            break
    return [*head, note, *rest]


def _next_exchange_end(rest: list[Message]) -> int:
    """An assistant turn and the tool results that answer it go together (APIs reject orphans)."""
    end = 1
    while end < len(rest) and rest[end].role == "tool":
        end += 1
    return end
