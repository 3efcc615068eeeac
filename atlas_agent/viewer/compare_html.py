"""The comparison as a self-contained HTML fragment for the one-file viewer: its own scoped CSS, the
tables `atlas compare` prints, and the plot inlined as a data: URI. Nothing is fetched from anywhere."""

from __future__ import annotations

import base64
import re
from html import escape

from atlas_agent.viewer.compare import Comparison
from atlas_agent.viewer.compare_tables import TextTable, comparison_tables, tone

STYLE = """
.atlas-compare table { border-collapse: collapse; margin: 0.5em 0 0.4em; font-size: 0.9em; }
.atlas-compare th, .atlas-compare td { border: 1px solid #d0d7de; padding: 3px 8px; text-align: left; }
.atlas-compare th { background: #f6f8fa; }
.atlas-compare caption { caption-side: top; text-align: left; font-weight: bold; padding: 0.3em 0; }
.atlas-compare table[data-table="good-enough-map"] tbody tr:first-child { font-weight: bold; }
.atlas-compare td.good { color: #1a7f37; font-weight: bold; }
.atlas-compare td.bad { color: #cf222e; }
.atlas-compare .note { color: #57606a; font-size: 0.85em; margin: 0 0 1.5em; max-width: 70em; }
.atlas-compare .warning { color: #9a6700; }
.atlas-compare img { max-width: 100%; height: auto; }
"""


def comparison_section(comparison: Comparison, plot_png: bytes | None) -> str:
    """A `<section class="atlas-compare">`: warnings, the plot (when given) and every table."""
    labels = ", ".join(run.label for run in comparison.runs)
    parts = [
        '<section class="atlas-compare" id="comparison">',
        f"<style>{STYLE}</style>",
        f"<h2>Comparison of {escape(labels)}</h2>",
        *(f'<p class="warning">warning: {escape(warning)}</p>' for warning in comparison.warnings),
    ]
    if plot_png is not None:
        encoded = base64.b64encode(plot_png).decode("ascii")
        parts.append(
            f'<figure><img src="data:image/png;base64,{encoded}" alt="resolve rate against cost per instance: '
            f'{escape(labels)}"></figure>'
        )
    parts += [table_html(table) for table in comparison_tables(comparison)]
    parts.append("</section>")
    return "\n".join(parts)


def table_html(table: TextTable) -> str:
    head = "".join(f"<th>{escape(header)}</th>" for header in table.headers)
    body = "".join("<tr>" + "".join(cell_html(cell) for cell in row) + "</tr>" for row in table.rows)
    note = f'<p class="note">{escape(table.note)}</p>' if table.note else ""
    return (
        f'<table data-table="{slug(table.title)}"><caption>{escape(table.title)}</caption>'
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{note}"
    )


def cell_html(cell: str) -> str:
    cell_tone = tone(cell)
    attribute = f' class="{cell_tone}"' if cell_tone else ""
    return f"<td{attribute}>{escape(cell)}</td>"


def slug(title: str) -> str:
    """A table's name for selectors: its title up to the colon, lower case, dashed ("good-enough-map")."""
    return re.sub(r"[^a-z0-9]+", "-", title.split(":")[0].lower()).strip("-")
