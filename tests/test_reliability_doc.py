"""docs/reliability.md promises nothing that no test keeps: every row names a test that exists."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_NAMED_TEST = re.compile(r"`(tests/test_\w+\.py)::(test_\w+)`")


def functions_in(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {node.name for node in tree.body if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")}


def test_every_row_of_the_reliability_table_names_an_existing_test() -> None:
    rows = [line for line in (ROOT / "docs" / "reliability.md").read_text().splitlines() if line.startswith("| ")]
    body = [row for row in rows if not row.startswith(("| Fault", "|---"))]
    assert len(body) >= 30
    for row in body:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert len(cells) == 5, row
        assert cells[2] == "none" and cells[3] == "none", f"a fault may lose no data and leave no container: {row}"
        [(path, name)] = _NAMED_TEST.findall(cells[4])
        assert name in functions_in(ROOT / path), f"{path}::{name} does not exist"
