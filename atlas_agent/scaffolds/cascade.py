"""`cascade`: a cheap model first; a stronger one only for the instances where the cheap attempt fails.

The first attempt runs the `first` scaffold with the run's model, in workspaces of its own. Unless it
ended in an error that is not the model's doing (the model backend, the runtime, the infrastructure:
the instance is then an error, rerun on resume, and never escalated), it is judged as `when` says: a
listed stop reason, an empty patch, a failed self-check (self_check.py: the repository's existing
tests and the patch's own tests, never the hidden ones). Only a failing instance goes on: the
escalation model, opened once per run, works it with `escalate.scaffold` in fresh workspaces, and its
patch is the one submitted.

The trajectory holds each stage as an attempt (`<model> (first)`, `<model> (escalated)`), each stage's
patch as a candidate (the first one's with its self-check as evidence, rejected with the reason it was
escalated), the decision as the choice (method `cascade`), and a stage named `cascade` recording the
triggers and each stage's own usage (cascade_record.py), which the run report reads.
"""

from __future__ import annotations

from contextlib import AbstractContextManager

from atlas_agent.errors import ModelError
from atlas_agent.models.base import ModelProvider
from atlas_agent.runtime.workspace import TaskWorkspace
from atlas_agent.scaffolds.base import SolveContext, WorkspaceFactory
from atlas_agent.scaffolds.cascade_record import CascadeRecord, StageName, StageRecord
from atlas_agent.scaffolds.config import CascadeScaffoldConfig, StageConfigType
from atlas_agent.scaffolds.self_check import SelfCheck, self_check
from atlas_agent.trajectory import Candidate, Choice, Trajectory, now_iso
from atlas_agent.vocabulary import StopReason

# Ends that say nothing of the model's ability: the instance is an error, not a reason to escalate.
NOT_THE_MODELS = frozenset(
    {StopReason.MODEL_ERROR, StopReason.RUNTIME_ERROR, StopReason.INFRA_FAILURE, StopReason.INTERRUPTED}
)


class CascadeScaffold:
    def __init__(self, config: CascadeScaffoldConfig) -> None:
        self.config = config

    def solve(self, ctx: SolveContext) -> str:
        record = CascadeRecord()
        first, patch = self._stage(ctx, record, "first", ctx.provider, self.config.first)
        candidate = Candidate(id="first", source=f"{first.model}: {first.stop_reason}", patch=patch)
        ctx.trajectory.candidates.append(candidate)
        if first.stop_reason in NOT_THE_MODELS:
            record.detail = f"the first attempt ended in {first.stop_reason}, which is no failure of the model"
            return self._submit(ctx, record, first, patch, "first")
        check = self._judge(ctx, record, first, patch)
        if check is not None:
            candidate.evidence = check.model_dump(mode="json")
        if not record.escalated:
            return self._submit(ctx, record, first, patch, "first")
        candidate.rejected = record.detail
        record.store(ctx.trajectory)
        ctx.save()
        try:
            provider = self.config.escalation_provider()
        except ModelError as exc:
            ctx.trajectory.stop_reason = StopReason.MODEL_ERROR
            ctx.trajectory.stop_detail = f"cannot open the escalation model {self.config.escalate.model}: {exc}"
            ctx.save()
            return ""
        strong, strong_patch = self._stage(ctx, record, "escalated", provider, self.config.strong_scaffold)
        source = f"{strong.model}: {strong.stop_reason}"
        ctx.trajectory.candidates.append(Candidate(id="escalated", source=source, patch=strong_patch))
        return self._submit(ctx, record, strong, strong_patch, "escalated")

    def _stage(
        self,
        ctx: SolveContext,
        record: CascadeRecord,
        name: StageName,
        provider: ModelProvider,
        scaffold: StageConfigType,
    ) -> tuple[Trajectory, str]:
        """One stage's scaffold, with its own provider, sub-trajectory and workspaces; its patch."""
        sub = Trajectory(instance_id=ctx.task.instance_id, model=f"{provider.name} ({name})")
        ctx.trajectory.attempts.append(sub)
        stage = StageRecord(name=name, model=provider.name)
        record.stages.append(stage)
        record.store(ctx.trajectory)
        context = SolveContext(
            task=ctx.task,
            provider=provider,
            trajectory=sub,
            open_workspace=_labelled(ctx.open_workspace, name),
            save=ctx.save,
        )
        patch = scaffold.build().solve(context)
        sub.finished_at = sub.finished_at or now_iso()
        stage.stop_reason, stage.usage, stage.patch_lines = sub.stop_reason, sub.usage, patch.count("\n")
        record.store(ctx.trajectory)
        ctx.save()
        return sub, patch

    def _judge(self, ctx: SolveContext, record: CascadeRecord, first: Trajectory, patch: str) -> SelfCheck | None:
        """Sets the record's triggers and detail; the self-check, where one ran. Once a stop reason or
        an empty patch escalates, no self-check is run: nothing it found would change the decision."""
        when = self.config.when
        found: list[str] = []
        if first.stop_reason is not None and first.stop_reason in when.stop_reasons:
            record.triggers.append(str(first.stop_reason))
            found.append(f"the first attempt stopped: {first.stop_reason}" + _in_parentheses(first.stop_detail))
        if not patch.strip() and when.empty_patch:
            record.triggers.append("empty_patch")
            found.append("the first attempt left no patch")
        check = None
        if not record.triggers and patch.strip() and when.verification_failed:
            workspaces = _labelled(ctx.open_workspace, "first")
            check = self_check(workspaces, patch, ctx.test_runner(), self.config.verify_timeout)
            if not check.passed:
                record.triggers.append("verification_failed")
            found.append(f"self-check {'passed' if check.passed else 'failed'}: {check.summary}")
        record.escalated = bool(record.triggers)
        record.detail = "; ".join(found) or _unchecked(first, patch)
        return check

    def _submit(self, ctx: SolveContext, record: CascadeRecord, stage: Trajectory, patch: str, name: str) -> str:
        """The stage's patch is the answer and its end the episode's."""
        if record.escalated:
            reason = f"escalated to {self.config.escalate.model} ({', '.join(record.triggers)}): {record.detail}"
        else:
            reason = f"first attempt kept: {record.detail}"
        trajectory = ctx.trajectory
        trajectory.choice = Choice(candidate_id=name, method="cascade", reason=reason)
        trajectory.stop_reason, trajectory.stop_detail = stage.stop_reason, stage.stop_detail
        trajectory.finished_at = now_iso()
        record.store(trajectory)
        ctx.save()
        return patch


def _labelled(open_workspace: WorkspaceFactory, stage: str) -> WorkspaceFactory:
    """Each stage's workspaces are named apart (`first-main`, `escalated-main`, `first-verify`)."""

    def opened(label: str) -> AbstractContextManager[TaskWorkspace]:
        return open_workspace(f"{stage}-{label}")

    return opened


def _in_parentheses(detail: str) -> str:
    return f" ({detail})" if detail else ""


def _unchecked(first: Trajectory, patch: str) -> str:
    """Why a first attempt that nothing flagged stands, when no self-check ran."""
    if not patch.strip():
        return "the first attempt left no patch (`when.empty_patch` is off)"
    return f"the first attempt ended {first.stop_reason}; no self-check (`when.verification_failed` is off)"
