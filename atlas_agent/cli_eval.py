"""`atlas eval` on the screen (and `atlas run --eval`): the grading's phases and each verdict as it
comes (through `cli_progress`), then the resolved rate, the tamper guard's findings and flaky instances."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from atlas_agent.cli_progress import Progress
from atlas_agent.grading.evaluate import NothingToGrade, evaluate_run
from atlas_agent.grading.tamper import TamperMode
from atlas_agent.rundir import RunDir
from atlas_agent.runtime.docker_client import connect


def evaluate(
    console: Console,
    run_path: Path,
    *,
    workers: int,
    timeout: int = 1800,
    reuse: bool = False,
    tamper: TamperMode = "strip",
    repeat: int = 1,
    notice: Callable[[str], None],
) -> None:
    for line in RunDir(run_path).changed_patches():
        console.print(f"[yellow]warning[/]: {escape(line)}", highlight=False)
    with Progress(console, f"eval {run_path.name}") as progress:
        report = evaluate_run(
            run_path,
            connect(),
            workers=workers,
            timeout=timeout,
            reuse=reuse,
            tamper=tamper,
            repeat=repeat,
            progress=progress,
            notice=lambda line: notice(f"warning: {line}"),
        )
    console.print(
        f"resolved [bold]{report.resolved} / {report.total}[/] ({report.resolved_rate:.1%}); "
        f"report: {run_path / 'report.json'}"
    )
    if report.tampered_ids:
        console.print(
            f"[yellow]tamper guard[/] ({tamper}): {len(report.tampered_ids)} patch(es) edit test infrastructure: "
            f"{', '.join(report.tampered_ids)} (hunks in report.md)"
        )
    if repeat > 1:
        flaky = ", ".join(report.flaky_ids) or "none"
        console.print(f"flaky over {repeat} gradings: {flaky}")


def evaluate_after_run(console: Console, run_path: Path, workers: int, notice: Callable[[str], None]) -> None:
    """`--eval`: a run none of whose instances finished has nothing to grade, which is said, not failed."""
    try:
        evaluate(console, run_path, workers=workers, notice=notice)
    except NothingToGrade as exc:
        console.print(f"[yellow]not graded[/]: {escape(str(exc))}", highlight=False)
