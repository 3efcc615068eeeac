"""The agent loop: ask the model, run its tool calls, record the step, stop for a recorded reason."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from jinja2 import Environment, StrictUndefined

from atlas_agent.agent.history import estimate_tokens
from atlas_agent.agent.settings import Limits, LoopSettings
from atlas_agent.errors import AtlasError, ContextOverflow, ModelError
from atlas_agent.models.base import Model, Turn
from atlas_agent.runtime.workspace import Workspace
from atlas_agent.tools.base import Tool, ToolArgumentError
from atlas_agent.trajectory import ModelInput, Step, ToolResult, Trajectory, now_iso
from atlas_agent.vocabulary import Message, Observation, StopReason, ToolCall

MAX_FORMAT_ERRORS = 3
_TEMPLATES = Environment(undefined=StrictUndefined, keep_trailing_newline=True, autoescape=False)


def render(template: str, **values: Any) -> str:
    return _TEMPLATES.from_string(template).render(**values)


class AgentStop(Exception):
    def __init__(self, reason: StopReason, detail: str = "") -> None:
        super().__init__(detail or reason.value)
        self.reason = reason
        self.detail = detail


def limit_exceeded(limits: Limits, trajectory: Trajectory, elapsed_s: float) -> tuple[StopReason, str] | None:
    """Which limit a run has reached, if any; shared by the loop and the pipeline scaffolds."""
    usage, steps = trajectory.usage, trajectory.step_count
    # cached prompt tokens are still prompt tokens (Claude reports them apart from input_tokens)
    tokens = usage.input_tokens + usage.output_tokens + usage.cache_read_tokens + usage.cache_write_tokens
    if steps >= limits.max_steps:
        return StopReason.STEP_LIMIT, f"{limits.max_steps} steps"
    if limits.max_cost_usd is not None and usage.cost_usd >= limits.max_cost_usd:
        return StopReason.COST_LIMIT, f"${usage.cost_usd:.4f} spent of ${limits.max_cost_usd:g}"
    if limits.max_tokens is not None and tokens >= limits.max_tokens:
        return StopReason.TOKEN_LIMIT, f"{tokens} tokens used of {limits.max_tokens}"
    if elapsed_s > limits.max_wall_s:
        return StopReason.TIME_LIMIT, f"{limits.max_wall_s:g} s"
    return None


def record_turn(step: Step, turn: Turn, prompt: list[Message], conversation: list[Message]) -> None:
    """What the model was sent (`prompt`, processed from `conversation`) and what it replied, into `step`;
    shared by the loop and the pipeline stages."""
    usage = turn.usage
    step.model_input = ModelInput(
        messages=len(prompt),
        history_messages=len(conversation),
        # history processing hands back the very messages it keeps as they were
        trimmed=len(prompt) != len(conversation) or any(a is not b for a, b in zip(prompt, conversation, strict=True)),
        estimated_tokens=estimate_tokens(prompt),
        input_tokens=usage.input_tokens + usage.cache_read_tokens + usage.cache_write_tokens,
    )
    step.thought, step.tool_calls, step.provider_blocks = turn.text, turn.tool_calls, turn.provider_blocks
    step.usage, step.model_latency_s, step.model_retries = usage, turn.latency_s, turn.retries
    step.finish_reason = turn.stop_reason


class StuckDetector:
    """Counts consecutive identical (action, result) pairs."""

    def __init__(self) -> None:
        self._last: str | None = None
        self.repeats = 0

    def observe(self, call: ToolCall, observation: Observation) -> int:
        key = json.dumps([call.name, call.arguments, observation.output, observation.exit_code], sort_keys=True)
        self.repeats = self.repeats + 1 if key == self._last else 1
        self._last = key
        return self.repeats


class Agent:
    """Drives one model over one workspace until it submits or a limit stops it."""

    def __init__(
        self,
        model: Model,
        tools: list[Tool],
        settings: LoopSettings,
        on_step: Callable[[Trajectory], None] | None = None,
    ) -> None:
        self.model = model
        self.tools = {tool.name: tool for tool in tools}
        self.specs = [tool.spec() for tool in tools]
        self.settings = settings
        self.on_step = on_step or (lambda _trajectory: None)
        self.stuck = StuckDetector()
        self._stuck_detail: str | None = None

    def run(self, workspace: Workspace, trajectory: Trajectory, task_values: dict[str, Any]) -> Trajectory:
        prompts = self.settings.prompts
        values = {"task": task_values, "tools": list(self.tools)}
        trajectory.system_prompt = render(prompts.system, **values)
        trajectory.instance_prompt = render(prompts.instance, **values)
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
                if self._stuck_detail:
                    raise AgentStop(StopReason.STUCK, self._stuck_detail)
                if submitted:
                    raise AgentStop(StopReason.SUBMITTED)
                if format_errors >= MAX_FORMAT_ERRORS:
                    raise AgentStop(StopReason.FORMAT_ERRORS, f"{format_errors} replies in a row without a tool call")
        except AgentStop as stop:
            trajectory.stop_reason = stop.reason
            trajectory.stop_detail = stop.detail
        trajectory.finished_at = now_iso()
        self.on_step(trajectory)
        return trajectory

    def _check_limits(self, trajectory: Trajectory, started: float) -> None:
        exceeded = limit_exceeded(self.settings.limits, trajectory, time.monotonic() - started)
        if exceeded is not None:
            raise AgentStop(*exceeded)

    def _step(self, workspace: Workspace, messages: list[Message], index: int) -> tuple[Step, bool]:
        step = Step(index=index, started_at=now_iso())
        prompt = self.settings.history.process(messages)
        try:
            turn = self.model.complete(prompt, self.specs)
        except ContextOverflow as exc:
            raise AgentStop(StopReason.CONTEXT_OVERFLOW, str(exc)) from exc
        except ModelError as exc:
            raise AgentStop(StopReason.MODEL_ERROR, str(exc)) from exc
        record_turn(step, turn, prompt, messages)
        messages.append(
            Message(
                role="assistant", content=turn.text, tool_calls=turn.tool_calls, provider_blocks=turn.provider_blocks
            )
        )
        if not turn.tool_calls:
            step.error = turn.format_error or render(self.settings.prompts.no_tool_call, tools=list(self.tools))
            messages.append(Message(role="user", content=step.error))
            step.finished_at = now_iso()
            return step, False
        submitted = False
        for call in turn.tool_calls:
            started = time.monotonic()
            observation, ends = self._call_tool(call, workspace)
            step.tool_latency_s = round(step.tool_latency_s + time.monotonic() - started, 4)
            step.results.append(ToolResult(tool_call_id=call.id, tool=call.name, observation=observation))
            messages.append(Message(role="tool", content=observation.output, tool_call_id=call.id))
            submitted = submitted or ends
            self._watch_for_loops(call, observation, messages, step)
        step.finished_at = now_iso()
        return step, submitted

    def _watch_for_loops(self, call: ToolCall, observation: Observation, messages: list[Message], step: Step) -> None:
        repeats = self.stuck.observe(call, observation)
        if repeats >= self.settings.stuck.stop_after:
            self._stuck_detail = f"the same action and result {repeats} times in a row"
        elif repeats >= self.settings.stuck.nudge_after:
            step.nudge = render(self.settings.prompts.stuck_nudge, repeats=repeats)
            messages.append(Message(role="user", content=step.nudge))

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
