"""`agentless`: localize → repair → validate → select, with no free agent loop.

Every model call is a structured answer (see structured.py), scripted per stage by the replay
model as `<instance>#<stage>`. All work happens in one container, reset to the base commit
between candidates.
"""

from __future__ import annotations

import shlex
import time
from collections import Counter
from typing import Any

from pydantic import BaseModel, Field

from atlas_agent.agent import AgentStop, limit_exceeded, render
from atlas_agent.agent.history import estimate_tokens
from atlas_agent.errors import ModelError
from atlas_agent.runtime.workspace import TaskWorkspace
from atlas_agent.scaffolds.base import SolveContext, submit_choice
from atlas_agent.scaffolds.config import AgentlessScaffoldConfig
from atlas_agent.scaffolds.edits import Edit, EditRejected, apply_edits, code_snippets, file_outlines
from atlas_agent.scaffolds.structured import ask
from atlas_agent.scaffolds.verify import reset_checkout, verify_patch
from atlas_agent.tools.test_command import DEFAULT_PYTEST
from atlas_agent.tools.test_runner import TestRunner
from atlas_agent.trajectory import Candidate, Choice, Stage
from atlas_agent.vocabulary import Message, Sampling, StopReason


class FilesAnswer(BaseModel):
    files: list[str] = Field(description="Repository-relative paths, most likely first.")


class SymbolsAnswer(BaseModel):
    symbols: list[str] = Field(description='Locations like "pkg/mod.py::Class.method" or "pkg/mod.py".')


class EditsAnswer(BaseModel):
    edits: list[Edit] = Field(min_length=1)


class TestFileAnswer(BaseModel):
    path: str = Field(description="Where to create the test file, e.g. tests/test_issue_repro.py.")
    content: str = Field(description="The complete pytest file.")


class AgentlessScaffold:
    def __init__(self, config: AgentlessScaffoldConfig) -> None:
        self.config = config
        self._started = time.monotonic()

    def solve(self, ctx: SolveContext) -> str:
        self._started = time.monotonic()
        try:
            self._run_pipeline(ctx)
        except AgentStop as stop:
            ctx.trajectory.stop_reason, ctx.trajectory.stop_detail = stop.reason, stop.detail
            ctx.save()
            return ""
        except ModelError as exc:
            ctx.trajectory.stop_reason, ctx.trajectory.stop_detail = StopReason.MODEL_ERROR, str(exc)
            ctx.save()
            return ""
        return submit_choice(ctx, self._select(ctx))

    def _run_pipeline(self, ctx: SolveContext) -> None:
        with ctx.open_workspace("main") as workspace:
            files = self._localize_files(ctx, workspace)
            outlines = file_outlines(workspace, files)
            snippets = self._localize_symbols(ctx, workspace, outlines)
            for number in range(1, self.config.candidates + 1):
                ctx.trajectory.candidates.append(self._repair(ctx, workspace, snippets, number))
                ctx.save()
            test = self._reproduce(ctx, workspace, snippets)
            self._validate(ctx, workspace, test)

    def _messages(self, ctx: SolveContext, template: str, values: dict[str, Any]) -> list[Message]:
        values = {**values, "task": ctx.task_values("/testbed"), **self.config.model_dump()}
        return [
            Message(role="system", content=render(self.config.prompts.system, **values)),
            Message(role="user", content=render(template, **values)),
        ]

    def _ask(self, ctx: SolveContext, stage_name: str, template: str, values: dict[str, Any], **answer: Any) -> Any:
        exceeded = limit_exceeded(self.config.limits, ctx.trajectory, time.monotonic() - self._started)
        if exceeded is not None:
            raise AgentStop(*exceeded)
        messages = self._messages(ctx, template, values)
        if estimate_tokens(messages) > self._budget:
            raise ModelError(f"the {stage_name} prompt does not fit the {self.config.context_window}-token window")
        stage = Stage(name=stage_name)
        ctx.trajectory.stages.append(stage)
        own = Sampling(temperature=answer.pop("temperature", None))
        model = ctx.provider.for_instance(
            ctx.task.instance_id, variant=stage_name, sampling=own.over(self.config.sampling)
        )
        stage.sampling = model.sampling
        result = ask(model, messages, stage=stage, **answer)
        stage.result = result.model_dump()
        ctx.save()
        return result

    @property
    def _budget(self) -> int:
        return self.config.context_window - self.config.reserve_output_tokens

    def _localize_files(self, ctx: SolveContext, workspace: TaskWorkspace) -> list[str]:
        listing = workspace.run("git ls-files -- '*.py'", timeout=120).output.split()
        listed = listing[: self.config.max_listed_files]
        # A large repository's file list alone can fill a small model's window: list fewer files.
        while (
            len(listed) > 50
            and estimate_tokens(self._messages(ctx, self.config.prompts.localize_files, {"files": listed}))
            > self._budget
        ):
            listed = listed[: len(listed) // 2]
        answer: FilesAnswer = self._ask(
            ctx,
            "localize_files",
            self.config.prompts.localize_files,
            {"files": listed},
            name="choose_files",
            description="Choose the files to change.",
            schema=FilesAnswer,
        )
        known = set(listing)
        return [path for path in answer.files if path in known][: self.config.max_files]

    def _localize_symbols(
        self, ctx: SolveContext, workspace: TaskWorkspace, outlines: dict[str, str]
    ) -> list[dict[str, Any]]:
        answer: SymbolsAnswer = self._ask(
            ctx,
            "localize_symbols",
            self.config.prompts.localize_symbols,
            {"outlines": outlines},
            name="choose_symbols",
            description="Choose the code locations to change.",
            schema=SymbolsAnswer,
        )
        chosen = answer.symbols[: self.config.max_symbols]
        return code_snippets(workspace, chosen, self.config.context_lines)

    def _repair(
        self, ctx: SolveContext, workspace: TaskWorkspace, snippets: list[dict[str, Any]], number: int
    ) -> Candidate:
        temperatures = self.config.temperatures
        answer: EditsAnswer = self._ask(
            ctx,
            f"repair-{number}",
            self.config.prompts.repair,
            {"snippets": snippets},
            name="propose_edits",
            description="Search/replace edits that fix the issue.",
            schema=EditsAnswer,
            temperature=temperatures[(number - 1) % len(temperatures)] if temperatures else None,
        )
        candidate = Candidate(id=f"repair-{number}", source=f"repair-{number}", patch="")
        reset_checkout(workspace)
        try:
            apply_edits(workspace, answer.edits)
            candidate.patch = workspace.diff(ctx.task.base_commit)
        except EditRejected as exc:
            candidate.rejected = str(exc)
        if not candidate.rejected and not candidate.patch.strip():
            candidate.rejected = "the edits change nothing"
        reset_checkout(workspace)
        return candidate

    def _reproduce(
        self, ctx: SolveContext, workspace: TaskWorkspace, snippets: list[dict[str, Any]]
    ) -> TestFileAnswer | None:
        answer: TestFileAnswer = self._ask(
            ctx,
            "reproduce",
            self.config.prompts.reproduce,
            {"snippets": snippets},
            name="write_test",
            description="A pytest file reproducing the issue.",
            schema=TestFileAnswer,
        )
        reset_checkout(workspace)
        # the prompt asks for a pytest file: it runs with pytest, whatever the repository's own runner
        pytest = TestRunner(f"{DEFAULT_PYTEST} {shlex.quote(answer.path)}")
        written = {answer.path: answer.content}
        base = verify_patch(workspace, "", pytest, self.config.verify_timeout, extra_files=written)
        stage = ctx.trajectory.stages[-1]
        stage.result["fails_on_base"] = bool(base.failed) or base.exit_code not in (0, None)
        if not stage.result["fails_on_base"]:
            stage.result["note"] = "the test passes on the unfixed code, so it proves nothing: ignored"
            return None
        return answer

    def _validate(self, ctx: SolveContext, workspace: TaskWorkspace, test: TestFileAnswer | None) -> None:
        tests = ctx.test_runner()
        extra = {test.path: test.content} if test else {}
        for candidate in ctx.trajectory.candidates:
            if candidate.rejected:
                continue
            reset_checkout(workspace)
            evidence = verify_patch(
                workspace,
                candidate.patch,
                tests,
                self.config.verify_timeout,
                extra_files=extra,
                extra_targets=[test.path] if test else None,
            )
            reproduced = [name for name in evidence.passed if test and name.startswith(test.path)]
            regressions = [name for name in evidence.failed if not (test and name.startswith(test.path))]
            repro_failed = [name for name in evidence.failed if test and name.startswith(test.path)]
            candidate.evidence = {
                **evidence.model_dump(),
                "reproduction_passed": bool(test) and bool(reproduced) and not repro_failed,
                "regressions": regressions,
            }
            if not evidence.applied:
                candidate.rejected = "patch does not apply to a clean checkout"
        reset_checkout(workspace)
        ctx.save()

    def _select(self, ctx: SolveContext) -> Choice:
        viable = [c for c in ctx.trajectory.candidates if c.rejected is None]
        if not viable:
            return Choice(candidate_id=None, method="none", reason="no candidate edit could be applied")

        def score(candidate: Candidate) -> tuple[int, int, int]:
            evidence = candidate.evidence
            regressions = len(evidence.get("regressions", []))
            return (int(bool(evidence.get("reproduction_passed"))), int(regressions == 0), -regressions)

        best_score = max(score(c) for c in viable)
        best = [c for c in viable if score(c) == best_score]
        votes = Counter(_normalized(c.patch) for c in best)
        winner_patch, count = votes.most_common(1)[0]
        winner = next(c for c in best if _normalized(c.patch) == winner_patch)
        method = "tests" if len(votes) == 1 else "vote"
        reason = (
            f"{winner.id}: reproduction {'passes' if best_score[0] else 'not passing'}, "
            f"{-best_score[2]} regressions; {count} of {len(best)} best candidates agree"
        )
        return Choice(candidate_id=winner.id, method=method, reason=reason)


def _normalized(patch: str) -> str:
    """Patches that differ only in blank lines or trailing spaces vote together."""
    lines = [line.rstrip() for line in patch.splitlines() if line.strip() and not line.startswith("index ")]
    return "\n".join(lines)
