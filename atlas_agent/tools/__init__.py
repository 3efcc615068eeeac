"""Tools the agent can call. `build_tools` makes a fresh set for one episode; `default_tools` is the
minimal bash + submit set."""

from __future__ import annotations

from atlas_agent.tools.base import Tool, ToolArgumentError, ToolSettings
from atlas_agent.tools.bash import BashTool
from atlas_agent.tools.edit import EditTool
from atlas_agent.tools.find_files import FindFilesTool
from atlas_agent.tools.run_tests import RunTestsTool
from atlas_agent.tools.search import SearchTool
from atlas_agent.tools.submit import SubmitTool
from atlas_agent.tools.symbols import SymbolsTool
from atlas_agent.tools.test_runner import TestRunner
from atlas_agent.tools.view import ViewTool

__all__ = [
    "TOOL_CLASSES",
    "BashTool",
    "EditTool",
    "FindFilesTool",
    "RunTestsTool",
    "SearchTool",
    "SubmitTool",
    "SymbolsTool",
    "TestRunner",
    "Tool",
    "ToolArgumentError",
    "ViewTool",
    "build_tools",
    "default_tools",
]

TOOL_CLASSES: dict[str, type[Tool]] = {
    tool.name: tool
    for tool in (BashTool, SubmitTool, FindFilesTool, SearchTool, SymbolsTool, ViewTool, EditTool, RunTestsTool)
}


def build_tools(names: list[str], *, command_timeout: float = 120.0, tests: TestRunner | None = None) -> list[Tool]:
    """Fresh instances, in the order named: tools such as edit keep per-episode state."""
    unknown = [name for name in names if name not in TOOL_CLASSES]
    if unknown:
        raise ValueError(f"unknown tool {unknown[0]}; known: {', '.join(TOOL_CLASSES)}")
    if len(set(names)) != len(names):
        raise ValueError(f"a tool is named twice in {', '.join(names)}")
    settings = ToolSettings(command_timeout=command_timeout, tests=tests)
    return [TOOL_CLASSES[name].create(settings) for name in names]


def default_tools(command_timeout: float = 120.0) -> list[Tool]:
    return build_tools(["bash", "submit"], command_timeout=command_timeout)
