"""`atlas compare RUN_A RUN_B [...]`: graded runs side by side in the terminal (matrix, per repo and
difficulty, cost per resolved instance, the good-enough map), with a PNG plot and JSON on request."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:
    from atlas_agent.viewer.compare_tables import TextTable

Command = Callable[..., Any]
TONE_STYLES = {"good": "green", "bad": "red"}


def register_compare_commands(app: typer.Typer, friendly: Callable[[Command], Command]) -> None:
    """Adds `atlas compare`, its failures reported by `friendly`."""
    app.command("compare")(friendly(compare))


def compare(
    runs: Annotated[
        list[Path], typer.Argument(help="Two or more graded run directories (runs/ID), or run ids under ./runs.")
    ],
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Write a PNG of resolve rate against cost per instance here.")
    ] = None,
    json_file: Annotated[Path | None, typer.Option("--json", help="Write the whole comparison here as JSON.")] = None,
    gpu_hour_usd: Annotated[
        float | None,
        typer.Option(
            "--gpu-hour-usd",
            min=0,
            help="Price a GPU-hour in dollars, so that local runs (which record GPU time) and priced APIs "
            "(which record dollars) share one cost axis.",
        ),
    ] = None,
) -> None:
    """Compare graded runs: who resolved what, per repo and difficulty, at what cost, and where the cheaper
    run is good enough."""
    from atlas_agent.fsutil import write_json
    from atlas_agent.viewer.compare import compare_runs
    from atlas_agent.viewer.compare_tables import comparison_tables

    comparison = compare_runs(runs, gpu_hour_usd)
    out = Console(soft_wrap=False)
    for table in comparison_tables(comparison):
        out.print(rich_table(table))
        out.print()
    messages = Console(stderr=True, soft_wrap=True)
    for warning in comparison.warnings:
        messages.print(f"[yellow]warning[/]: {escape(warning)}", highlight=False)
    if plot is not None:
        from atlas_agent.viewer.compare_plot import plot_png  # matplotlib: only when a plot is asked for

        image = plot_png(comparison)
        written(plot, lambda: plot.write_bytes(image))
        messages.print(f"plot: {plot}", highlight=False)
    if json_file is not None:
        written(json_file, lambda: write_json(json_file, comparison))
        messages.print(f"comparison: {json_file}", highlight=False)


def written(path: Path, write: Callable[[], object]) -> None:
    """Runs `write`; a path that cannot be written is one line naming it."""
    from atlas_agent.errors import AtlasError

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write()
    except OSError as exc:
        raise AtlasError(f"cannot write {path}: {exc.strerror or exc}") from None


def rich_table(table: TextTable) -> Table:
    from atlas_agent.viewer.compare_tables import tone

    shown = Table(
        *(escape(header) for header in table.headers),
        title=f"[bold]{escape(table.title)}[/]",
        caption=escape(table.note) or None,
    )
    for row in table.rows:
        shown.add_row(*(styled(cell, tone(cell)) for cell in row))
    return shown


def styled(cell: str, cell_tone: str | None) -> str:
    text = escape(cell)
    return f"[{TONE_STYLES[cell_tone]}]{text}[/]" if cell_tone else text
