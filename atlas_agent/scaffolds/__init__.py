"""Scaffold strategies, chosen in YAML by `type:`; `build_scaffold` turns a config into a runnable one."""

from __future__ import annotations

from atlas_agent.scaffolds.base import Scaffold, SolveContext
from atlas_agent.scaffolds.config import (
    AgentlessScaffoldConfig,
    BashOnlyScaffoldConfig,
    BestOfKScaffoldConfig,
    ScaffoldConfig,
    ToolsScaffoldConfig,
)

__all__ = ["Scaffold", "ScaffoldConfig", "SolveContext", "build_scaffold"]


def build_scaffold(config: ScaffoldConfig) -> Scaffold:
    from atlas_agent.scaffolds.agentless import AgentlessScaffold
    from atlas_agent.scaffolds.best_of_k import BestOfKScaffold
    from atlas_agent.scaffolds.loop import LoopScaffold

    if isinstance(config, ToolsScaffoldConfig | BashOnlyScaffoldConfig):
        return LoopScaffold(config)
    if isinstance(config, BestOfKScaffoldConfig):
        return BestOfKScaffold(config)
    if isinstance(config, AgentlessScaffoldConfig):
        return AgentlessScaffold(config)
    raise TypeError(f"no strategy for scaffold type {config.type!r}")
