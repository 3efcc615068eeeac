"""The comparison's plot: each run's resolve rate against its cost per instance, as a PNG.

Drawn on matplotlib's Agg canvas, without pyplot: no display, no global figure state, and a worker
thread may draw one too.
"""

from __future__ import annotations

import io

from atlas_agent.viewer.compare import Comparison, cost_axis

WIDTH_IN, HEIGHT_IN, DPI = 8.0, 5.0, 100
# the PNG's size in pixels
SIZE = (round(WIDTH_IN * DPI), round(HEIGHT_IN * DPI))
POINT_COLOR = "#1f6feb"


def plot_png(comparison: Comparison) -> bytes:
    """A WIDTH_IN x HEIGHT_IN inch PNG at DPI: one labelled point per run."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, PercentFormatter

    figure = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI, layout="tight")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    costs = [run.cost_per_instance for run in comparison.runs]
    rates = [run.resolved_rate * 100 for run in comparison.runs]
    axes.scatter(costs, rates, s=70, color=POINT_COLOR, zorder=3)
    for run, cost, rate in zip(comparison.runs, costs, rates, strict=True):
        axes.annotate(run.label, (cost, rate), xytext=(7, 7), textcoords="offset points", fontsize=10)
    axes.set_ylim(0, 105)
    axes.yaxis.set_major_formatter(PercentFormatter())
    if max(costs) > 0:
        axes.set_xlim(0, max(costs) * 1.25)
    else:  # nothing recorded: every run sits at zero, in the middle
        axes.set_xlim(-1, 1)
        axes.set_xticks([0])
    if comparison.cost_unit == "usd":
        axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"${value:,.4g}"))
    axes.set_xlabel(f"cost per instance ({cost_axis(comparison.cost_unit)})")
    axes.set_ylabel("resolved")
    axes.set_title("Resolve rate against cost per instance")
    axes.grid(True, alpha=0.3)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()
