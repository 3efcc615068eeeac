"""Pipeline-side code access: file outlines, code snippets of chosen symbols, and search/replace edits.

Built on the same pure pieces as the `edit` and `symbols` tools (tree-sitter outline, exact unique
replacement, lint-on-edit), so a pipeline edit is held to the same rules as an agent's.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from atlas_agent.errors import AtlasError
from atlas_agent.runtime.workspace import Workspace
from atlas_agent.tools.lint import is_python, new_problem
from atlas_agent.tools.outline import Definition, definitions
from atlas_agent.tools.paths import UsageError
from atlas_agent.tools.textedit import replace_once


class Edit(BaseModel):
    path: str = Field(description="Repository-relative file path.")
    old_str: str = Field(description="Exact text to replace; must occur exactly once in the file.")
    new_str: str = Field(description="The replacement text.")


class EditRejected(AtlasError):
    """A proposed edit does not apply (no unique match, a missing file, or a syntax error)."""


def read_text(workspace: Workspace, path: str) -> str | None:
    try:
        return workspace.read_file(f"{workspace.workdir}/{path}").decode("utf-8", "replace")
    except (FileNotFoundError, IsADirectoryError):
        return None


def file_outlines(workspace: Workspace, paths: list[str]) -> dict[str, str]:
    """path → one line per class/function with its line range (what the model picks symbols from)."""
    outlines = {}
    for path in paths:
        text = read_text(workspace, path)
        if text is not None:
            found = definitions(text.encode())
            outlines[path] = "\n".join("  " * d.depth + d.describe() for d in found) or "(no definitions)"
    return outlines


def code_snippets(workspace: Workspace, locations: list[str], context: int) -> list[dict[str, Any]]:
    """The code of each `path::Qualified.name` (or a whole small file for `path`), with line numbers."""
    snippets = []
    for location in locations:
        path, _, qualified = location.partition("::")
        text = read_text(workspace, path.strip())
        if text is None:
            continue
        lines = text.splitlines()
        match = _find(definitions(text.encode()), qualified.strip()) if qualified else None
        start, end = (match.start, match.end) if match else (1, min(len(lines), 200))
        start, end = max(1, start - context), min(len(lines), end + context)
        code = "\n".join(f"{number:>5}  {lines[number - 1]}" for number in range(start, end + 1))
        snippets.append({"location": location, "start": start, "end": end, "code": code})
    return snippets


def apply_edits(workspace: Workspace, edits: list[Edit]) -> None:
    """Apply every edit or none that matters: the caller resets the checkout on EditRejected."""
    for number, edit in enumerate(edits, start=1):
        before = read_text(workspace, edit.path)
        if before is None:
            raise EditRejected(f"edit {number}: {edit.path} does not exist")
        try:
            change = replace_once(before, edit.old_str, edit.new_str, edit.path)
        except UsageError as exc:
            raise EditRejected(f"edit {number}: {str(exc).splitlines()[0]}") from exc
        if is_python(edit.path):
            problem = new_problem(before.encode(), change.text.encode())
            if problem is not None:
                raise EditRejected(f"edit {number}: {edit.path}:{problem.line}: {problem.message}")
        workspace.write_file(f"{workspace.workdir}/{edit.path}", change.text)


def _find(found: list[Definition], qualified: str) -> Definition | None:
    exact = [d for d in found if d.qualified == qualified]
    if exact:
        return exact[0]
    tail = [d for d in found if d.qualified.endswith(f".{qualified}") or d.name == qualified]
    return tail[0] if tail else None
