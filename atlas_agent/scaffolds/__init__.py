"""Scaffold strategies, chosen in YAML by `type:`; a config's `build()` turns it into a runnable one."""

from __future__ import annotations

from atlas_agent.scaffolds.base import Scaffold, SolveContext
from atlas_agent.scaffolds.config import ScaffoldConfig

__all__ = ["Scaffold", "ScaffoldConfig", "SolveContext"]
