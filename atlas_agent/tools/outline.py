"""The classes and functions of a Python file, with their nesting, from tree-sitter's tree."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from atlas_agent.tools.lint import parse

if TYPE_CHECKING:
    from tree_sitter import Node

# Statements whose bodies can hold definitions (`if TYPE_CHECKING:`, `try: import x except: def ...`);
# ERROR too, so a file with a syntax error still shows what it defines.
_CONTAINERS = frozenset(
    {
        "block",
        "if_statement",
        "elif_clause",
        "else_clause",
        "try_statement",
        "except_clause",
        "except_group_clause",
        "finally_clause",
        "with_statement",
        "for_statement",
        "while_statement",
        "ERROR",
    }
)
_DEFINITIONS = ("function_definition", "class_definition")
_MAX_SIGNATURE = 120


@dataclass(frozen=True)
class Definition:
    kind: str  # "class", "def" or "async def"
    qualified: str  # Outer.Inner.method
    start: int  # 1-based, decorators included
    end: int
    signature: str  # "(self, x) -> int" for functions, "(Base)" for classes
    decorators: tuple[str, ...]
    depth: int

    @property
    def name(self) -> str:
        return self.qualified.rsplit(".", 1)[-1]

    def describe(self) -> str:
        decorators = "".join(f"{decorator} " for decorator in self.decorators)
        return f"{self.start}-{self.end}  {decorators}{self.kind} {self.qualified}{self.signature}"


def definitions(source: bytes) -> list[Definition]:
    """Every class and function in `source`, in document order, methods and nested ones included."""
    found: list[Definition] = []
    _collect(parse(source).root_node, "", 0, found)
    return found


def _collect(node: Node, prefix: str, depth: int, found: list[Definition]) -> None:
    for child in node.named_children:
        target = child
        decorators: tuple[str, ...] = ()
        if child.type == "decorated_definition":
            target = child.child_by_field_name("definition") or child
            decorators = tuple(_text(d) for d in child.named_children if d.type == "decorator")
        if target.type in _DEFINITIONS:
            definition = _definition(child, target, prefix, depth, decorators)
            found.append(definition)
            body = target.child_by_field_name("body")
            if body is not None:
                _collect(body, definition.qualified + ".", depth + 1, found)
        elif child.type in _CONTAINERS:
            _collect(child, prefix, depth, found)


def _definition(outer: Node, target: Node, prefix: str, depth: int, decorators: tuple[str, ...]) -> Definition:
    name = _text(target.child_by_field_name("name"))
    if target.type == "class_definition":
        kind, signature = "class", _text(target.child_by_field_name("superclasses"))
    else:
        is_async = any(child.type == "async" for child in target.children)
        kind, signature = "async def" if is_async else "def", _text(target.child_by_field_name("parameters"))
        returns = target.child_by_field_name("return_type")
        if returns is not None:
            signature += f" -> {_text(returns)}"
    if len(signature) > _MAX_SIGNATURE:
        signature = signature[: _MAX_SIGNATURE - 3] + "..."
    return Definition(
        kind=kind,
        qualified=prefix + name,
        start=outer.start_point.row + 1,
        end=outer.end_point.row + 1,
        signature=signature,
        decorators=decorators,
        depth=depth,
    )


def _text(node: Node | None) -> str:
    """The node's source on one line, whitespace collapsed."""
    if node is None or node.text is None:
        return ""
    return re.sub(r"\s+", " ", node.text.decode("utf-8", "replace")).strip()
