"""Syntax checks of Python source, on the host so task images need nothing installed.

tree-sitter's grammar accepts the syntax of every Python version, but its indentation rules are
lenient. The host's own parser catches indentation errors and says more precisely what is wrong,
but it is trusted only for files it parsed before the edit (a Python 2 or a newer Python's file
may not parse here at all)."""

from __future__ import annotations

import ast
import warnings
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from atlas_agent.tools.output import numbered

if TYPE_CHECKING:
    from tree_sitter import Language, Node, Tree

PYTHON_SUFFIXES = (".py", ".pyi")
_CONTEXT = 3


@lru_cache(maxsize=1)
def _python() -> Language:
    # tree-sitter loads on the first parse: a run that never edits or outlines Python never pays for it
    import tree_sitter_python
    from tree_sitter import Language

    return Language(tree_sitter_python.language())


def parse(source: bytes) -> Tree:
    from tree_sitter import Parser

    # Parsers are cheap and not thread-safe: one per parse.
    return Parser(_python()).parse(source)


def is_python(path: str) -> bool:
    return path.endswith(PYTHON_SUFFIXES)


@dataclass(frozen=True)
class SyntaxProblem:
    line: int  # 1-based
    column: int  # 1-based, in characters
    message: str


# Cached: an edit's result is the next edit's starting point, and parsing a big file takes a while.
@lru_cache(maxsize=4)
def syntax_problem(source: bytes) -> SyntaxProblem | None:
    """Where the first syntax error of `source` is, or None when it parses cleanly."""
    root = parse(source).root_node
    if not root.has_error:
        return None
    node = _first_error(root) or root
    row, byte_column = node.start_point
    line = source.split(b"\n")[row] if row < source.count(b"\n") + 1 else b""
    column = len(line[:byte_column].decode("utf-8", "replace")) + 1
    return SyntaxProblem(row + 1, column, _describe(node))


@lru_cache(maxsize=4)
def parser_problem(source: bytes) -> SyntaxProblem | None:
    """Where the host's Python parser fails on `source`, or None when it parses."""
    text = source.decode("utf-8", "replace")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # invalid escape sequences and the like are no errors
            compile(text, "<edit>", "exec", ast.PyCF_ONLY_AST, dont_inherit=True)
    except SyntaxError as exc:
        return SyntaxProblem(exc.lineno or 1, exc.offset or 1, exc.msg)
    except ValueError as exc:  # NUL bytes
        return SyntaxProblem(1, 1, str(exc))
    return None


def new_problem(before: bytes, after: bytes) -> SyntaxProblem | None:
    """The syntax error that an edit from `before` to `after` introduces. A check that already
    failed before the edit does not judge it: the error may be the one the edit works to fix."""
    for check in (parser_problem, syntax_problem):  # the host's messages are the more precise
        if check(before) is None:
            problem = check(after)
            if problem is not None:
                return problem
    return None


def _first_error(node: Node) -> Node | None:
    """The first ERROR or MISSING node in document order, descending only into broken subtrees."""
    for child in node.children:
        if child.is_missing or child.is_error:
            return child
        if child.has_error:
            found = _first_error(child)
            if found is not None:
                return found
    return None


def _describe(node: Node) -> str:
    if node.is_missing:
        return f'missing "{node.type}"'
    text = (node.text or b"").decode("utf-8", "replace").strip().split("\n")[0]
    return f'invalid syntax near "{text[:40]}"' if text else "invalid syntax"


def excerpt(text: str, problem: SyntaxProblem) -> str:
    """The lines around the problem, numbered, with a caret under its column."""
    lines = text.split("\n")
    first = max(1, problem.line - _CONTEXT)
    last = min(len(lines), problem.line + _CONTEXT)
    width = len(str(last))
    rows = numbered(lines[first - 1 : last], first, width=width).split("\n")
    caret = " " * (width + 2 + problem.column - 1) + "^"
    rows.insert(problem.line - first + 1, caret)
    return "\n".join(rows)
