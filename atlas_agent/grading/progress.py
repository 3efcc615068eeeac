"""What grading reports as it goes (`atlas eval`, `atlas validate`): its phases, and each instance's
verdict with the cause of a failure in one line, as soon as the harness is done with it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from atlas_agent.grading.harness import instance_log_dir, instance_reports

# markers of the harness's run_instance.log, for gradings that wrote no report
LOG_CAUSES = ((">>>>> Patch Apply Failed", "does not apply"), ("Test timed out", "tests timed out"))


class GradingProgress(Protocol):
    def phase(self, text: str, total: int = 0) -> None:
        """A phase begins: what it does, and how many items it goes through (0: not counted)."""
        ...

    def started(self, item: str) -> None: ...

    def finished(self, item: str, line: str | None, *, failed: bool = False) -> None:
        """`item` is done; `line` (None: nothing worth a line) says how it went."""
        ...


class Silent:
    """Progress nobody watches."""

    def phase(self, text: str, total: int = 0) -> None:
        """Nothing to show."""

    def started(self, item: str) -> None:
        """Nothing to show."""

    def finished(self, item: str, line: str | None, *, failed: bool = False) -> None:
        """Nothing to show."""


SILENT = Silent()


def image_reporter(progress: GradingProgress) -> Callable[[str, str], None]:
    """`prepare_images`'s `on_image`: a line for an image built or pulled, none for one already there."""

    def report(instance_id: str, action: str) -> None:
        progress.finished(instance_id, None if action == "present" else f"{instance_id}: image {action}")

    return report


def verdict(log_dir: Path, run_id: str, model_name: str, instance_id: str) -> tuple[str, str | None]:
    """How the harness graded one instance (resolved, unresolved, error) and, for an error, why."""
    report = instance_reports(log_dir, run_id, model_name, [instance_id])[instance_id]
    if report is not None:
        return ("resolved" if report.get("resolved") else "unresolved"), None
    return "error", log_cause(instance_log_dir(log_dir, run_id, model_name, instance_id) / "run_instance.log")


def log_cause(log: Path) -> str:
    """Why a grading wrote no report, from its run_instance.log."""
    text = log.read_text(errors="replace") if log.is_file() else ""
    return next((cause for marker, cause in LOG_CAUSES if marker in text), f"not graded (see {log})")
