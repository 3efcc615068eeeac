"""An episode in SWE-agent's `.traj` format, which its inspectors (`sweagent inspect`, the terminal one,
and `sweagent inspector`, the web one) open: `trajectory` (one entry per step: thought, action,
observation, response, execution time, state, query, extra info), `history` (the conversation, each
message with its `message_type` and `agent`), `info` (exit status, submission, model stats),
`replay_config` and `environment`. Written as `<instance_id>/<instance_id>.traj`, the layout of
SWE-agent's batch runs; the inspectors take the instance id from the file's name.
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
    failed,
    openai_tool_calls,
    parts,
    prompt_tokens,
    stop_reason,
)
from atlas_agent.trajectory import Step

AGENT = "main"  # the name SWE-agent gives its one agent
# SWE-agent's exit statuses for the ways Atlas's episodes end; an episode that ends otherwise with a
# patch is "submitted (<status>)", as SWE-agent submits what it has when a limit stops it
EXIT_STATUSES = {
    "submitted": "submitted",
    "step_limit": "exit_cost",  # SWE-agent's call limit ends the episode as a cost limit does
    "cost_limit": "exit_cost",
    "token_limit": "exit_cost",
    "time_limit": "exit_total_execution_time",
    "context_overflow": "exit_context",
    "format_errors": "exit_format",
}
HistoryItem = dict[str, Any]


def sweagent_trajectory(run: RunSource, episode: Episode) -> dict[str, Any]:
    trajectory = episode.trajectory
    history: list[HistoryItem] = []
    steps: list[dict[str, Any]] = []
    for part in parts(trajectory):
        history += _part_opening(part)
        for step in part.steps:
            history += _step_history(step)
            steps.append(_trajectory_step(step, part.label))
    usage = trajectory.usage
    return {
        "trajectory": steps,
        "history": history,
        "info": {
            "exit_status": exit_status(episode),
            "submission": episode.patch,
            "model_stats": {
                "instance_cost": usage.cost_usd,
                "tokens_sent": prompt_tokens(usage),
                "tokens_received": usage.output_tokens,
                "api_calls": trajectory.step_count,
            },
            "atlas": atlas_info(episode),
        },
        # SWE-agent keeps its own run configuration here, to replay the run; an Atlas run has none of that kind
        "replay_config": None,
        "environment": run.config.runtime.type,
    }


def exit_status(episode: Episode) -> str | None:
    """SWE-agent's exit status; None while unfinished, as SWE-agent leaves it until the episode ends."""
    reason = stop_reason(episode)
    if reason is None:
        return "exit_error" if failed(episode) else None
    status = EXIT_STATUSES.get(reason) or ("exit_error" if failed(episode) else f"exit_{reason}")
    if status != "submitted" and episode.patch.strip():
        return f"submitted ({status})"
    return status


def _message(role: str, content: str, message_type: str, **more: Any) -> HistoryItem:
    return {"role": role, "content": content, "agent": AGENT, "message_type": message_type, **more}


def _part_opening(part: Part) -> list[HistoryItem]:
    opening = []
    if part.label:
        opening.append(_message("user", f"[Atlas: {part.label}]", "observation"))
    if part.system_prompt:
        opening.append(_message("system", part.system_prompt, "observation"))
    if part.instance_prompt:
        opening.append(_message("user", part.instance_prompt, "observation"))
    return opening


def _step_history(step: Step) -> list[HistoryItem]:
    calls = openai_tool_calls(step)
    history = [
        _message(
            "assistant",
            _response(step),
            "action",
            thought=step.thought,
            action=_action(step),
            tool_calls=calls or None,
        )
    ]
    history += [
        _message("tool", result.observation.output, "observation", tool_call_ids=[result.tool_call_id])
        for result in step.results
    ]
    history += [_message("user", text, "observation") for text in (step.error, step.nudge) if text]
    return history


def _trajectory_step(step: Step, part: str) -> dict[str, Any]:
    return {
        "action": _action(step),
        "observation": _observation(step),
        "response": _response(step),
        "thought": step.thought,
        "execution_time": step.tool_latency_s,
        "state": {},
        # SWE-agent keeps the whole prompt of every step; Atlas keeps its summary (extra_info.model_input)
        "query": [],
        "extra_info": {"atlas_part": part, **step.model_dump(mode="json", include=STEP_FACTS)},
    }


def _action(step: Step) -> str:
    return "\n".join(action_text(call) for call in step.tool_calls)


def _observation(step: Step) -> str:
    outputs = [result.observation.output for result in step.results]
    return "\n".join([*outputs, *(text for text in (step.error, step.nudge) if text)])


def _response(step: Step) -> str:
    """The model's whole reply as text: its thought, then each call it made."""
    return "\n\n".join(text for text in (step.thought, *(action_text(call) for call in step.tool_calls)) if text)
