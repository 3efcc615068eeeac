"""`atlas export RUN --format mini|sweagent`: a run's trajectories for mini-swe-agent's and SWE-agent's inspectors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from atlas_agent.export import ExportFormat

Command = Callable[..., Any]


def register_export_commands(app: typer.Typer, friendly: Callable[[Command], Command]) -> None:
    """Adds `export` to `app`, its failures reported by `friendly`."""
    app.command("export")(friendly(export))


def export(
    run: Annotated[Path, typer.Argument(help="A run directory (runs/ID), or a run id under ./runs.")],
    fmt: Annotated[
        ExportFormat,
        typer.Option(
            "--format",
            "-f",
            help="mini: mini-swe-agent's .traj.json (`mini-extra inspector DIR`); "
            "sweagent: SWE-agent's .traj (`sweagent inspect DIR`).",
        ),
    ],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Where to write (default: RUN/export/FORMAT).")
    ] = None,
) -> None:
    """Write a run's trajectories in another agent's format, one file per instance, so its inspector opens them."""
    from rich.console import Console
    from rich.markup import escape

    from atlas_agent.export.writer import export_run

    console = Console(stderr=True, highlight=False, soft_wrap=True)
    exported = export_run(run, fmt, output, lambda line: console.print(f"[yellow]warning[/]: {escape(line)}"))
    console.print(f"wrote {exported.instances} {fmt.value} trajectories to {exported.directory}", markup=False)
