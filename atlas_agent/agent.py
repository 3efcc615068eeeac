"""The agent loop: ask the model, run its tool calls, record the step, stop for a recorded reason."""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import StrEnum

from pydantic import BaseModel

from atlas_agent.errors import AtlasError
from atlas_agent.models.base import Message, Model, ModelError, ToolCall
from atlas_agent.tools.base import Observation, Tool, ToolArgumentError, Workspace
from atlas_agent.trajectory import Step, ToolResult, Trajectory, now_iso

SYSTEM_PROMPT = (
    "You are a software engineer fixing an issue in a Python repository checked out at /testbed. "
    "Work with the tools you are given: explore the code, reproduce the problem, edit the source, "
    "run the tests, then call submit. Do not modify the existing tests to make them pass."
)
INSTANCE_PROMPT = "Repository: {repo}\n\n<issue>\n{problem}\n</issue>\n\nFix the issue, then call submit."
NO_TOOL_CALL = "Your reply contained no tool call. Call exactly one of the tools: {names}."
MAX_FORMAT_ERRORS = 3


class StopReason(StrEnum):
    SUBMITTED = "submitted"
    STEP_LIMIT = "step_limit"
    TIME_LIMIT = "time_limit"
    FORMAT_ERRORS = "format_errors"
    MODEL_ERROR = "model_error"
    RUNTIME_ERROR = "runtime_error"


class AgentLimits(BaseModel):
    max_steps: int = 50
    max_wall_s: float = 1800.0


class AgentStop(Exception):
    def __init__(self, reason: StopReason, detail: str = "") -> None:
        super().__init__(detail or reason.value)
        self.reason = reason
        self.detail = detail


class Agent:
    """Drives one model over one workspace until it submits or a limit stops it."""

    def __init__(
        self,
        model: Model,
        tools: list[Tool],
        limits: AgentLimits,
        on_step: Callable[[Trajectory], None] | None = None,
    ) -> None:
        self.model = model
        self.tools = {tool.name: tool for tool in tools}
        self.specs = [tool.spec() for tool in tools]
        self.limits = limits
        self.on_step = on_step or (lambda _trajectory: None)

    def run(self, workspace: Workspace, trajectory: Trajectory, repo: str, problem: str) -> Trajectory:
        trajectory.system_prompt = SYSTEM_PROMPT
        trajectory.instance_prompt = INSTANCE_PROMPT.format(repo=repo, problem=problem)
        messages = [
            Message(role="system", content=trajectory.system_prompt),
            Message(role="user", content=trajectory.instance_prompt),
        ]
        started = time.monotonic()
        format_errors = 0
        try:
            while True:
                self._check_limits(trajectory, started)
                step, submitted = self._step(workspace, messages, len(trajectory.steps))
                trajectory.steps.append(step)
                self.on_step(trajectory)
                format_errors = format_errors + 1 if step.error else 0
                if submitted:
                    raise AgentStop(StopReason.SUBMITTED)
                if format_errors >= MAX_FORMAT_ERRORS:
                    raise AgentStop(StopReason.FORMAT_ERRORS, f"{format_errors} malformed replies in a row")
        except AgentStop as stop:
            trajectory.stop_reason = stop.reason.value
            trajectory.stop_detail = stop.detail
        trajectory.finished_at = now_iso()
        self.on_step(trajectory)
        return trajectory

    def _check_limits(self, trajectory: Trajectory, started: float) -> None:
        if len(trajectory.steps) >= self.limits.max_steps:
            raise AgentStop(StopReason.STEP_LIMIT, f"{self.limits.max_steps} steps")
        if time.monotonic() - started > self.limits.max_wall_s:
            raise AgentStop(StopReason.TIME_LIMIT, f"{self.limits.max_wall_s:g} s")

    def _step(self, workspace: Workspace, messages: list[Message], index: int) -> tuple[Step, bool]:
        step = Step(index=index, started_at=now_iso())
        try:
            turn = self.model.complete(messages, self.specs)
        except ModelError as exc:
            raise AgentStop(StopReason.MODEL_ERROR, str(exc)) from exc
        step.thought, step.tool_calls = turn.text, turn.tool_calls
        step.usage, step.model_latency_s = turn.usage, turn.latency_s
        messages.append(Message(role="assistant", content=turn.text, tool_calls=turn.tool_calls))
        if not turn.tool_calls:
            step.error = NO_TOOL_CALL.format(names=", ".join(self.tools))
            messages.append(Message(role="user", content=step.error))
            return step, False
        submitted = False
        for call in turn.tool_calls:
            observation, ends = self._call_tool(call, workspace)
            step.results.append(ToolResult(tool_call_id=call.id, tool=call.name, observation=observation))
            messages.append(Message(role="tool", content=observation.output, tool_call_id=call.id))
            submitted = submitted or ends
        return step, submitted

    def _call_tool(self, call: ToolCall, workspace: Workspace) -> tuple[Observation, bool]:
        tool = self.tools.get(call.name)
        if tool is None:
            names = ", ".join(self.tools)
            return Observation(output=f"Unknown tool {call.name!r}. Available tools: {names}."), False
        try:
            args = tool.parse(call.arguments)
        except ToolArgumentError as exc:
            return Observation(output=str(exc)), False
        try:
            return tool.run(args, workspace), tool.ends_episode
        except AtlasError as exc:
            raise AgentStop(StopReason.RUNTIME_ERROR, str(exc)) from exc
