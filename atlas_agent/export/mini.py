"""An episode in mini-swe-agent's trajectory format (`trajectory_format: mini-swe-agent-1.1`, its v2
format), which its inspector (`mini-extra inspector`) opens: a JSON object whose `messages` is the
conversation in the OpenAI chat format, each message with an `extra` of metadata, and whose `info`
holds the exit status, the submission, model stats and configuration. Written as
`<instance_id>/<instance_id>.traj.json`, the name mini-swe-agent's batch runs use and its inspector
looks for.
"""

from __future__ import annotations

from typing import Any

from atlas_agent.export.source import (
    STEP_FACTS,
    Episode,
    Part,
    RunSource,
    action_text,
    atlas_info,
    epoch_seconds,
    failed,
    openai_tool_calls,
    parts,
    prompt_tokens,
    stop_reason,
)
from atlas_agent.trajectory import Step

TRAJECTORY_FORMAT = "mini-swe-agent-1.1"
# mini-swe-agent names an exit by the exception that ended the agent; Atlas's stop reasons it has a name for
EXIT_STATUSES = {
    "submitted": "Submitted",
    "step_limit": "LimitsExceeded",
    "cost_limit": "LimitsExceeded",
    "token_limit": "LimitsExceeded",
    "time_limit": "TimeExceeded",
    "format_errors": "FormatError",
    "context_overflow": "ContextWindowExceeded",
}
Message = dict[str, Any]


def mini_trajectory(run: RunSource, episode: Episode) -> dict[str, Any]:
    trajectory = episode.trajectory
    messages = [message for part in parts(trajectory) for message in _part_messages(part)]
    status = exit_status(episode)
    if status:  # an episode still running has not exited
        messages.append(
            {"role": "exit", "content": episode.patch, "extra": {"exit_status": status, "submission": episode.patch}}
        )
    return {
        "info": {
            "model_stats": {"instance_cost": trajectory.usage.cost_usd, "api_calls": trajectory.step_count},
            "config": _config(run),
            "exit_status": status,
            "submission": episode.patch,
            "atlas": atlas_info(episode),
        },
        "messages": messages,
        "trajectory_format": TRAJECTORY_FORMAT,
        "instance_id": episode.instance_id,
    }


def exit_status(episode: Episode) -> str:
    """mini-swe-agent's exit status: the exception name it would have ended with ("" while unfinished)."""
    reason = stop_reason(episode)
    if reason is None:
        return "Error" if failed(episode) else ""
    return EXIT_STATUSES.get(reason) or "".join(word.capitalize() for word in reason.split("_"))


def _part_messages(part: Part) -> list[Message]:
    messages: list[Message] = []
    if part.label:
        # a stage or an attempt starts: said the way mini-swe-agent says anything outside the model's turns
        messages.append({"role": "user", "content": f"[Atlas: {part.label}]", "extra": {"atlas_part": part.label}})
    if part.system_prompt:
        messages.append({"role": "system", "content": part.system_prompt})
    if part.instance_prompt:
        messages.append({"role": "user", "content": part.instance_prompt})
    for step in part.steps:
        messages += _step_messages(step)
    return messages


def _step_messages(step: Step) -> list[Message]:
    """The model's turn, then what answered it: each tool call's observation, a format error, a nudge."""
    messages = [_assistant(step)]
    results = {result.tool_call_id: result for result in step.results}
    for call in step.tool_calls:
        result = results.get(call.id)
        if result is None:
            continue  # a pipeline stage's answer: the call is the answer, nothing ran
        observation = result.observation
        messages.append(
            {
                "role": "tool",
                "tool_call_id": call.id,
                "content": observation.output,
                "extra": {
                    "raw_output": observation.full_output or observation.output,
                    "returncode": observation.exit_code,
                    "timestamp": epoch_seconds(step.finished_at),
                    "duration_s": observation.duration_s,
                    "timed_out": observation.timed_out,
                },
            }
        )
    if step.error:
        messages.append({"role": "user", "content": step.error, "extra": {"interrupt_type": "FormatError"}})
    if step.nudge:
        messages.append({"role": "user", "content": step.nudge, "extra": {"atlas_nudge": True}})
    return messages


def _assistant(step: Step) -> Message:
    usage = step.usage
    calls = openai_tool_calls(step)
    return {
        "role": "assistant",
        "content": step.thought,
        **({"tool_calls": calls} if calls else {}),
        "extra": {
            "actions": [{"command": action_text(call), "tool_call_id": call.id} for call in step.tool_calls],
            "cost": usage.cost_usd,
            "usage": {"prompt_tokens": prompt_tokens(usage), "completion_tokens": usage.output_tokens},
            "timestamp": epoch_seconds(step.started_at),
            "atlas_step": step.model_dump(mode="json", include=STEP_FACTS),
        },
    }


def _config(run: RunSource) -> dict[str, Any]:
    config = run.config
    return {
        "agent": config.scaffold.model_dump(mode="json"),
        "agent_type": f"atlas:{config.scaffold.type}",
        "model": {"model_name": config.model, "model_kwargs": config.model_options.model_dump(mode="json")},
        "model_type": "atlas",
        "environment": config.runtime.model_dump(mode="json"),
        "environment_type": f"atlas:{config.runtime.type}",
    }
