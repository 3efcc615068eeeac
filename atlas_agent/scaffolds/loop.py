"""`tools` and `bash-only`: one model in one container, a free tool-calling loop until it submits."""

from __future__ import annotations

from atlas_agent.agent import Agent
from atlas_agent.agent.settings import LoopSettings
from atlas_agent.scaffolds.base import SolveContext, fit_to_model
from atlas_agent.tools import build_tools


class LoopScaffold:
    def __init__(self, settings: LoopSettings) -> None:
        self.settings = settings

    def solve(self, ctx: SolveContext) -> str:
        settings = fit_to_model(self.settings, ctx.provider)
        model = ctx.provider.for_instance(ctx.task.instance_id, sampling=settings.sampling)
        ctx.trajectory.sampling = model.sampling
        tools = build_tools(settings.tools, command_timeout=settings.command_timeout, tests=ctx.test_runner())
        with ctx.open_workspace("main") as workspace:
            agent = Agent(model, tools, settings, on_step=lambda _trajectory: ctx.save())
            agent.run(workspace, ctx.trajectory, ctx.task_values(workspace.workdir))
            return workspace.diff(ctx.task.base_commit)
