"""`atlas html`: runs as ONE self-contained HTML file that opens from disk. The page's CSS and script
(`page/`) are inlined and the runs are embedded as JSON that the script renders with text nodes
only, so nothing is fetched and nothing from a run is ever parsed as HTML."""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel

from atlas_agent.errors import AtlasError
from atlas_agent.trajectory import now_iso
from atlas_agent.versions import versions
from atlas_agent.viewer.compare import compare_runs
from atlas_agent.viewer.compare_html import comparison_section
from atlas_agent.viewer.compare_plot import plot_png
from atlas_agent.viewer.detail import load_detail
from atlas_agent.viewer.models import InstanceDetail, RunView, StepView
from atlas_agent.viewer.text import clipped

PAGE = Path(__file__).parent / "page"
# what the page embeds of each text: a run of hundreds of instances stays a file a browser opens
OUTPUT_CHARS = 20_000
TEXT_CHARS = 40_000
SLOT = re.compile(r"\{\{([A-Z]+)\}\}")


class RunPage(BaseModel):
    run: RunView
    details: dict[str, InstanceDetail]


class PageData(BaseModel):
    generated_at: str
    atlas_version: str
    runs: list[RunPage]


def run_page(run: RunView) -> RunPage:
    return RunPage(run=run, details={item.instance_id: bounded(load_detail(run, item)) for item in run.instances})


def bounded(detail: InstanceDetail) -> InstanceDetail:
    """The detail with every long text cut to what the page embeds (head and tail)."""
    return detail.model_copy(
        update={
            "system_prompt": clipped(detail.system_prompt, TEXT_CHARS),
            "instance_prompt": clipped(detail.instance_prompt, TEXT_CHARS),
            "patch": clipped(detail.patch, TEXT_CHARS),
            "steps": [bounded_step(step) for step in detail.steps],
        }
    )


def bounded_step(step: StepView) -> StepView:
    results = [result.model_copy(update={"output": clipped(result.output, OUTPUT_CHARS)}) for result in step.results]
    calls = [
        call.model_copy(
            update={
                "arguments": {
                    key: clipped(value, TEXT_CHARS) if isinstance(value, str) else value
                    for key, value in call.arguments.items()
                }
            }
        )
        for call in step.calls
    ]
    return step.model_copy(update={"thought": clipped(step.thought, TEXT_CHARS), "results": results, "calls": calls})


def embedded_json(data: BaseModel) -> str:
    """JSON safe inside a <script> element: no `<` can close it or open a comment."""
    return data.model_dump_json().replace("<", "\\u003c")


def comparison_fragment(runs: Sequence[RunView]) -> str:
    """The runs compared (`atlas compare`'s tables and plot); where they cannot be, a note saying why."""
    try:
        comparison = compare_runs([Path(run.path) for run in runs])
    except AtlasError as exc:
        reason = html.escape(str(exc))
        return f'<section id="comparison"><h2>Comparison</h2><p class="note">Not compared: {reason}</p></section>'
    return comparison_section(comparison, plot_png(comparison))


def render_page(runs: Sequence[RunView], comparison: str | None = None) -> str:
    """The whole page. `comparison`: an HTML fragment comparing the runs, placed above the overview."""
    data = PageData(
        generated_at=now_iso(),
        atlas_version=versions()["atlas-agent"],
        runs=[run_page(run) for run in runs],
    )
    title = "Atlas: " + ", ".join(run.run_id for run in runs)
    slots = {
        "TITLE": html.escape(title),
        "STYLE": (PAGE / "page.css").read_text(),
        "SCRIPT": (PAGE / "page.js").read_text(),
        "DATA": embedded_json(data),
        "COMPARISON": comparison or "",
    }
    # one pass: a slot's own text (a run's data) is never searched for further slots
    return SLOT.sub(lambda match: slots[match[1]], (PAGE / "page.html").read_text())
