"""The agent loop (ask the model, run its tool calls, record the step, stop for a recorded reason),
its settings and its history processing."""

from __future__ import annotations

from atlas_agent.agent.loop import Agent, AgentStop, limit_exceeded, record_turn, render

__all__ = ["Agent", "AgentStop", "limit_exceeded", "record_turn", "render"]
