"""Tools the agent can call. `default_tools` is the minimal bash + submit set."""

from __future__ import annotations

from atlas_agent.tools.base import Observation, Tool, ToolArgumentError, Workspace
from atlas_agent.tools.bash import BashTool
from atlas_agent.tools.submit import SubmitTool

__all__ = ["BashTool", "Observation", "SubmitTool", "Tool", "ToolArgumentError", "Workspace", "default_tools"]


def default_tools(command_timeout: float = 120.0) -> list[Tool]:
    return [BashTool(timeout=command_timeout), SubmitTool()]
