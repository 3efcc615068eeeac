"""Rendering rows as a GitHub-flavoured Markdown table."""

from __future__ import annotations

from collections.abc import Sequence

from textkit.width import display_width

_ALIGNMENTS = ("left", "right", "center")
# GitHub needs at least three dashes in a delimiter cell
_MIN_WIDTH = 3


def render_table(
    rows: Sequence[Sequence[object]],
    headers: Sequence[str],
    align: Sequence[str | None] | None = None,
) -> str:
    """Render `rows` under `headers` as a Markdown table, padded to line up.

    `align` gives each column's alignment: "left", "right", "center" or None
    for the renderer's default. Cells are converted with `str()`, and None
    becomes an empty cell.
    """
    columns = len(headers)
    if columns == 0:
        raise ValueError("a table needs at least one column")
    alignments = list(align) if align is not None else [None] * columns
    if len(alignments) != columns:
        raise ValueError(f"got {len(alignments)} alignments for {columns} columns")
    for alignment in alignments:
        if alignment is not None and alignment not in _ALIGNMENTS:
            raise ValueError(f"unknown alignment {alignment!r}")

    header_cells = [_cell(h) for h in headers]
    body = []
    for number, row in enumerate(rows, start=1):
        if len(row) != columns:
            raise ValueError(f"row {number} has {len(row)} cells, expected {columns}")
        body.append([_cell(value) for value in row])

    widths = [
        max([_MIN_WIDTH, *(display_width(line[i]) for line in [header_cells, *body])])
        for i in range(columns)
    ]
    lines = [
        _line(header_cells, widths, alignments),
        _line([_delimiter(w, a) for w, a in zip(widths, alignments, strict=True)], widths, alignments),
    ]
    lines.extend(_line(cells, widths, alignments) for cells in body)
    return "\n".join(lines)


def _cell(value: object) -> str:
    return "" if value is None else str(value)


def _delimiter(width: int, alignment: str | None) -> str:
    if alignment == "left":
        return ":" + "-" * (width - 1)
    if alignment == "right":
        return "-" * (width - 1) + ":"
    if alignment == "center":
        return ":" + "-" * (width - 2) + ":"
    return "-" * width


def _pad(text: str, width: int, alignment: str | None) -> str:
    if alignment == "right":
        return text.rjust(width)
    if alignment == "center":
        return text.center(width)
    return text.ljust(width)


def _line(cells: Sequence[str], widths: Sequence[int], alignments: Sequence[str | None]) -> str:
    padded = (_pad(c, w, a) for c, w, a in zip(cells, widths, alignments, strict=True))
    return "| " + " | ".join(padded) + " |"
