"""The shape the codebase keeps: short functions, and a CLI that starts without the heavy libraries
(the official harness, datasets, pandas, torch, tree-sitter) until a command needs them."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "atlas_agent"
MAX_FUNCTION_LINES = 60
HEAVY = ("swebench", "datasets", "pandas", "torch", "tree_sitter", "anthropic", "llama_cpp", "exllamav2")


def test_no_function_is_longer_than_sixty_lines() -> None:
    long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if "tasks/mini" in path.as_posix():
            continue  # the suite's repositories are task data, not Atlas
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, long


def loaded_by(module: str, watched: tuple[str, ...]) -> str:
    """Which of `watched` (module names or prefixes) a fresh interpreter has loaded after importing `module`."""
    probe = (
        f"import sys, {module}\n"
        f"print(sorted(w for w in {watched!r} if any(m == w or m.startswith(w + '.') for m in sys.modules)))"
    )
    return subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip()


def test_the_cli_starts_without_heavy_libraries() -> None:
    assert loaded_by("atlas_agent.cli", HEAVY) == "[]"


def test_a_run_starts_without_the_harness_or_tree_sitter() -> None:
    """The runner loads task repos with swebench's light task reader, never its harness."""
    watched = ("swebench.harness", "datasets", "pandas", "torch", "tree_sitter", "llama_cpp", "exllamav2")
    assert loaded_by("atlas_agent.runner", watched) == "[]"
