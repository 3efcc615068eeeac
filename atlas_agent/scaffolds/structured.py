"""Structured answers for pipeline stages: the model is offered one tool whose arguments are the answer.

Tool calling doubles as structured output on every backend (native tool use for Claude, the text
tool-call parser for local models), and the replay model scripts it like any other call. A reply
that does not call the tool, or calls it with arguments that do not fit, is shown its error and
asked again, a bounded number of times.
"""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ValidationError

from atlas_agent.agent import record_turn
from atlas_agent.errors import ModelError
from atlas_agent.models.base import Model
from atlas_agent.trajectory import Stage, Step, now_iso
from atlas_agent.vocabulary import Message, ToolSpec

Answer = TypeVar("Answer", bound=BaseModel)
MAX_ATTEMPTS = 3


def answer_spec(name: str, description: str, schema: type[BaseModel]) -> ToolSpec:
    parameters = schema.model_json_schema()
    parameters.pop("title", None)
    return ToolSpec(name=name, description=description, parameters=parameters)


def ask(
    model: Model,
    messages: list[Message],
    *,
    name: str,
    description: str,
    schema: type[Answer],
    stage: Stage,
) -> Answer:
    """Ask until the model calls `name` with valid arguments; every call is recorded in `stage`."""
    spec = answer_spec(name, description, schema)
    conversation = list(messages)
    problem = ""
    for _ in range(MAX_ATTEMPTS):
        step = Step(index=len(stage.steps), started_at=now_iso())
        turn = model.complete(conversation, [spec])
        record_turn(step, turn, conversation, conversation)  # a stage sends its conversation whole
        step.finished_at = now_iso()
        stage.steps.append(step)
        call = next((c for c in turn.tool_calls if c.name == name), None)
        if call is None:
            problem = f"Reply by calling the tool `{name}`; your reply did not call it."
        else:
            try:
                return schema.model_validate(call.arguments)
            except ValidationError as exc:
                problem = f"The arguments of `{name}` are invalid: {_summary(exc)}. Call it again with valid ones."
        step.error = problem
        conversation += [
            Message(role="assistant", content=turn.text, tool_calls=turn.tool_calls),
            *[Message(role="tool", content=problem, tool_call_id=c.id) for c in turn.tool_calls],
        ]
        if not turn.tool_calls:
            conversation.append(Message(role="user", content=problem))
    raise ModelError(f"no valid `{name}` answer after {MAX_ATTEMPTS} replies: {problem}")


def _summary(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in err['loc']) or 'arguments'}: {err['msg']}" for err in exc.errors())
