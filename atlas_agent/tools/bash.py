"""Run a shell command in the task's persistent shell (cwd and environment carry over)."""

from __future__ import annotations

import time

from pydantic import BaseModel, Field

from atlas_agent.runtime.workspace import Workspace
from atlas_agent.tools.base import Tool, ToolSettings
from atlas_agent.tools.output import observe
from atlas_agent.vocabulary import Observation


class BashArgs(BaseModel):
    command: str = Field(description="The bash command to run in the repository's persistent shell.")


class BashTool(Tool):
    name = "bash"
    description = (
        "Run a bash command in a persistent shell inside the repository checkout. "
        "The working directory and exported variables persist between calls. Output is truncated "
        "when very long; commands are killed after a timeout."
    )
    Args = BashArgs

    def __init__(self, timeout: float = 120.0) -> None:
        self.timeout = timeout

    @classmethod
    def create(cls, settings: ToolSettings) -> BashTool:
        return cls(timeout=settings.command_timeout)

    def run(self, args: BashArgs, workspace: Workspace) -> Observation:
        started = time.monotonic()
        result = workspace.run(args.command, timeout=self.timeout)
        output = result.output
        if result.timed_out:
            output += f"\n[command timed out after {self.timeout:g} s and was killed]"
        return observe(
            output, started, exit_code=result.exit_code, timed_out=result.timed_out, truncated=result.truncated
        )
