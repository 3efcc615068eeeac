"""`best-of-k`: k independent attempts with diverse sampling, each verified by running the repository's
tests on its patch in a fresh container; the best evidence wins and a model review breaks ties."""

from __future__ import annotations

import time

from pydantic import BaseModel, Field

from atlas_agent.agent import Agent, limit_exceeded, render
from atlas_agent.errors import ModelError
from atlas_agent.scaffolds.base import SolveContext, fit_to_model, submit_choice
from atlas_agent.scaffolds.config import BestOfKScaffoldConfig
from atlas_agent.scaffolds.structured import ask
from atlas_agent.scaffolds.verify import PatchEvidence, verify_patch
from atlas_agent.tools import build_tools
from atlas_agent.tools.test_runner import TestRunner
from atlas_agent.trajectory import Candidate, Choice, Stage, Trajectory
from atlas_agent.vocabulary import Message, Sampling


class ReviewAnswer(BaseModel):
    candidate_id: str = Field(description="The id of the best candidate, e.g. attempt-2.")
    reason: str = Field(description="Why it is the best fix for the issue.")


class BestOfKScaffold:
    def __init__(self, config: BestOfKScaffoldConfig) -> None:
        self.config = config

    def solve(self, ctx: SolveContext) -> str:
        tests = ctx.test_runner()
        started, exceeded = time.monotonic(), None
        for number in range(1, self.config.k + 1):
            exceeded = limit_exceeded(self.config.limits, ctx.trajectory, time.monotonic() - started)
            if exceeded is not None:
                break  # choose among the attempts made so far
            candidate = self._attempt(ctx, number, tests)
            ctx.trajectory.candidates.append(candidate)
            ctx.save()
        patch = submit_choice(ctx, self._choose(ctx))
        if exceeded is not None and not patch:
            ctx.trajectory.stop_reason, ctx.trajectory.stop_detail = exceeded
            ctx.save()
        return patch

    def _attempt(self, ctx: SolveContext, number: int, tests: TestRunner) -> Candidate:
        label = f"attempt-{number}"
        settings = fit_to_model(self.config.attempt, ctx.provider)
        model = ctx.provider.for_instance(ctx.task.instance_id, variant=label, sampling=self._sampling(number))
        sub = Trajectory(
            instance_id=ctx.task.instance_id, model=f"{ctx.trajectory.model} ({label})", sampling=model.sampling
        )
        ctx.trajectory.attempts.append(sub)
        tools = build_tools(settings.tools, command_timeout=settings.command_timeout, tests=tests)
        with ctx.open_workspace(label) as workspace:
            Agent(model, tools, settings, on_step=lambda _t: ctx.save()).run(
                workspace, sub, ctx.task_values(workspace.workdir)
            )
            patch = workspace.diff(ctx.task.base_commit)
        candidate = Candidate(id=label, source=f"{label}: {sub.stop_reason}", patch=patch)
        if not patch.strip():
            candidate.rejected = "empty patch"
            return candidate
        with ctx.open_workspace(f"verify-{number}") as checkout:
            evidence = verify_patch(checkout, patch, tests, self.config.verify_timeout)
        candidate.evidence = evidence.model_dump()
        if not evidence.applied:
            candidate.rejected = "patch does not apply to a clean checkout"
        return candidate

    def _sampling(self, number: int) -> Sampling:
        """Attempt `number`'s temperature (cycled) over the attempt scaffold's sampling; with no
        temperatures listed, every attempt samples as the attempt scaffold says."""
        temperatures = self.config.temperatures
        own = Sampling(temperature=temperatures[(number - 1) % len(temperatures)] if temperatures else None)
        return own.over(self.config.attempt.sampling)

    def _choose(self, ctx: SolveContext) -> Choice:
        viable = [c for c in ctx.trajectory.candidates if c.rejected is None]
        if not viable:
            return Choice(candidate_id=None, method="none", reason="no attempt produced a usable patch")
        best_score = max(PatchEvidence.model_validate(c.evidence).score for c in viable)
        best = [c for c in viable if PatchEvidence.model_validate(c.evidence).score == best_score]
        distinct = {c.patch: c for c in best}
        if len(distinct) == 1:
            method = "only" if len(viable) == 1 else "tests"
            return Choice(candidate_id=best[0].id, method=method, reason=self._evidence_line(best[0]))
        return self._review(ctx, list(distinct.values()))

    def _review(self, ctx: SolveContext, tied: list[Candidate]) -> Choice:
        stage = Stage(name="review")
        ctx.trajectory.stages.append(stage)
        values = {"task": ctx.task_values("/testbed"), "candidates": [c.model_dump() for c in tied]}
        messages = [
            Message(role="system", content=render(self.config.review.system, **values)),
            Message(role="user", content=render(self.config.review.instance, **values)),
        ]
        # the review samples as an attempt does, without an attempt's own temperature
        model = ctx.provider.for_instance(ctx.task.instance_id, variant="review", sampling=self.config.attempt.sampling)
        stage.sampling = model.sampling
        ids = [c.id for c in tied]
        try:
            answer = ask(
                model,
                messages,
                name="choose_candidate",
                description="Pick the best candidate.",
                schema=ReviewAnswer,
                stage=stage,
            )
        except ModelError as exc:
            stage.result = {"candidates": ids, "chosen": ids[0], "error": str(exc)}
            return Choice(candidate_id=ids[0], method="tests", reason=f"review failed ({exc}); first of the tied")
        chosen = answer.candidate_id if answer.candidate_id in ids else ids[0]
        stage.result = {"candidates": ids, "chosen": chosen, "reason": answer.reason}
        return Choice(candidate_id=chosen, method="review", reason=answer.reason)

    @staticmethod
    def _evidence_line(candidate: Candidate) -> str:
        evidence = PatchEvidence.model_validate(candidate.evidence)
        return f"{candidate.id}: {len(evidence.passed)} tests passed, {len(evidence.failed)} failed"
