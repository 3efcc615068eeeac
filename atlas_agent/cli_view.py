"""`atlas show` (a run in the terminal) and `atlas html` (runs as one self-contained HTML file)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from atlas_agent.errors import AtlasError

if TYPE_CHECKING:
    from rich.console import Console

Command = Callable[..., Any]
# the width `atlas show` lays tables out in when its output goes to a file or a pipe
PIPE_WIDTH = 200


class OutcomeChoice(StrEnum):
    resolved = "resolved"
    unresolved = "unresolved"
    error = "error"
    empty_patch = "empty_patch"
    not_graded = "not_graded"


RunArgument = Annotated[Path, typer.Argument(help="A run directory (runs/ID), or a run id under ./runs.")]


def register_view_commands(app: typer.Typer, friendly: Callable[[Command], Command]) -> None:
    """Adds `show` and `html` to `app`, their failures reported by `friendly`."""
    app.command("show")(friendly(show))
    app.command("html")(friendly(html))


def output_console() -> Console:
    """Colours on a terminal; plain text, in a width that keeps a table's rows whole, elsewhere."""
    from rich.console import Console

    piped = not sys.stdout.isatty() and "COLUMNS" not in os.environ
    return Console(highlight=False, width=PIPE_WIDTH if piped else None)


def show(
    run: RunArgument,
    instance: Annotated[str | None, typer.Argument(help="An instance: its steps, patch and test results.")] = None,
    step: Annotated[int | None, typer.Option("--step", min=1, help="With INSTANCE: this step whole.")] = None,
    outcome: Annotated[
        list[OutcomeChoice] | None, typer.Option("--outcome", help="Only instances with this outcome (repeatable).")
    ] = None,
    repo: Annotated[str | None, typer.Option("--repo", help="Only repositories whose name contains this.")] = None,
) -> None:
    """A run's instances as a table, or one instance's steps, patch and test results."""
    from atlas_agent.viewer.detail import load_detail
    from atlas_agent.viewer.load import find_instance, load_run
    from atlas_agent.viewer.show import print_instance, print_run, print_step, selected

    loaded = load_run(run)
    console = output_console()
    if instance is None:
        if step is not None:
            raise AtlasError("--step needs an INSTANCE: atlas show RUN INSTANCE --step N")
        print_run(console, loaded, selected(loaded, [choice.value for choice in outcome or []], repo))
        return
    item = find_instance(loaded, instance)
    detail = load_detail(loaded, item)
    if step is None:
        print_instance(console, loaded, item, detail)
    else:
        print_step(console, item, detail, step)


def html(
    runs: Annotated[list[Path], typer.Argument(help="Run directories (runs/ID) or run ids; several are compared.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The HTML file to write.")],
) -> None:
    """Write runs as ONE self-contained HTML file (no network needed): overview, timelines, diffs, tests."""
    from rich.console import Console

    from atlas_agent.fsutil import write_atomic
    from atlas_agent.viewer.html import comparison_fragment, render_page
    from atlas_agent.viewer.load import load_run

    loaded = [load_run(path) for path in runs]
    page = render_page(loaded, comparison_fragment(loaded) if len(loaded) > 1 else None)
    try:
        write_atomic(output, page)
    except OSError as exc:
        raise AtlasError(f"cannot write {output}: {exc.strerror or exc}: choose another -o FILE.html") from None
    instances = sum(len(run.instances) for run in loaded)
    Console(stderr=True, highlight=False, soft_wrap=True).print(
        f"wrote {output} ({len(loaded)} run(s), {instances} instances, {len(page.encode()) // 1024} KiB): "
        "open it in any browser"
    )
