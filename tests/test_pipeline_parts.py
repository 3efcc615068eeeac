"""Pure parts of the scaffolds: history processing and structured answers."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from atlas_agent.agent.history import HistoryConfig, estimate_tokens, process_history
from atlas_agent.errors import ModelError
from atlas_agent.models.base import Turn
from atlas_agent.scaffolds.structured import ask
from atlas_agent.trajectory import Stage
from atlas_agent.vocabulary import Message, ToolCall, ToolSpec


def conversation(steps: int, output_chars: int) -> list[Message]:
    messages = [Message(role="system", content="sys"), Message(role="user", content="task")]
    for i in range(steps):
        call = ToolCall(id=f"c{i}", name="bash", arguments={"command": f"cat file{i}"})
        messages.append(Message(role="assistant", content=f"step {i}", tool_calls=[call]))
        messages.append(Message(role="tool", content="x" * output_chars, tool_call_id=f"c{i}"))
    return messages


def test_recent_observations_stay_whole_and_older_ones_are_elided() -> None:
    shown = process_history(conversation(8, 100), HistoryConfig(keep_last=3))
    tool_outputs = [m.content for m in shown if m.role == "tool"]
    assert tool_outputs[-3:] == ["x" * 100] * 3
    assert all(text.startswith("[output elided: 100 characters") for text in tool_outputs[:-3])
    assert len(shown) == 18, "eliding never drops a message"


def test_oversized_history_drops_whole_exchanges_but_keeps_system_and_task() -> None:
    config = HistoryConfig(keep_last=2, context_window=2048, reserve_output_tokens=512)
    shown = process_history(conversation(400, 10), config)
    assert estimate_tokens(shown) <= config.prompt_budget
    assert [m.content for m in shown[:2]] == ["sys", "task"]
    assert "earlier messages were dropped" in shown[2].content
    assert shown[3].role == "assistant", "no tool result is left without its call"
    assert shown[-1].content == "x" * 10


class Pick(BaseModel):
    choice: int


class Scripted:
    def __init__(self, *turns: Turn) -> None:
        self.turns = list(turns)
        self.seen: list[list[Message]] = []

    def complete(self, messages: list[Message], tools: list[ToolSpec]) -> Turn:
        assert [tool.name for tool in tools] == ["pick"]
        self.seen.append(messages)
        return self.turns.pop(0)


def call(**arguments: object) -> Turn:
    return Turn(tool_calls=[ToolCall(id="1", name="pick", arguments=dict(arguments))])


def test_structured_answer_retries_with_the_error_shown() -> None:
    model = Scripted(Turn(text="I pick 2"), call(choice="two"), call(choice=2))
    stage = Stage(name="choose")
    answer = ask(model, [Message(role="user", content="pick")], name="pick", description="d", schema=Pick, stage=stage)
    assert answer == Pick(choice=2)
    assert len(stage.steps) == 3
    assert "did not call it" in (stage.steps[0].error or "")
    assert "choice" in (stage.steps[1].error or "")
    assert "invalid" in model.seen[2][-1].content


def test_structured_answer_gives_up_after_three_replies() -> None:
    model = Scripted(Turn(text="a"), Turn(text="b"), Turn(text="c"))
    with pytest.raises(ModelError, match="no valid `pick` answer after 3 replies"):
        ask(
            model,
            [Message(role="user", content="pick")],
            name="pick",
            description="d",
            schema=Pick,
            stage=Stage(name="s"),
        )
