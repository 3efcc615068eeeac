"""Find, read, override and validate scaffold YAML files; every mistake is one line naming file, line and key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import TypeAdapter, ValidationError

from atlas_agent.errors import AtlasError
from atlas_agent.scaffolds.config import ScaffoldConfig

_PACKAGED = Path(__file__).resolve().parent.parent / "bundled_scaffolds"  # inside an installed wheel
_SOURCE_TREE = Path(__file__).resolve().parents[2] / "scaffolds"  # a checkout / editable install
_ADAPTER: TypeAdapter[ScaffoldConfig] = TypeAdapter(ScaffoldConfig)


class ScaffoldError(AtlasError):
    """A scaffold file or override that cannot be used."""


def bundled_dir() -> Path:
    return _PACKAGED if _PACKAGED.is_dir() else _SOURCE_TREE


def bundled_names() -> list[str]:
    return sorted(path.stem for path in bundled_dir().glob("*.yaml"))


def resolve(spec: str) -> Path:
    path = Path(spec).expanduser()
    if path.suffix in (".yaml", ".yml") or path.is_file():
        if not path.is_file():
            raise ScaffoldError(f"scaffold file {spec} does not exist")
        return path
    bundled = bundled_dir() / f"{spec}.yaml"
    if not bundled.is_file():
        raise ScaffoldError(f"unknown scaffold {spec!r}; shipped: {', '.join(bundled_names())}; or pass a .yaml path")
    return bundled


def load_scaffold(spec: str, overrides: list[str] | None = None) -> ScaffoldConfig:
    path = resolve(spec)
    text = path.read_text()
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ScaffoldError(f"{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from exc
    if not isinstance(data, dict):
        raise ScaffoldError(f"{path}: a scaffold file is a mapping with a `type:` key")
    expand_references(data, frozenset({path.resolve()}))
    applied = []
    for item in overrides or []:
        applied.append(apply_override(data, item, path))
        expand_references(data, frozenset({path.resolve()}))  # an override may name one: -c first=bash-only
    try:
        return _ADAPTER.validate_python(data)
    except ValidationError as exc:
        raise ScaffoldError(describe(exc, path, text, applied, data)) from exc


# Keys that hold a whole scaffold: best-of-k's `attempt`, a cascade's `first` and `escalate.scaffold`.
_NESTED_SCAFFOLDS = (("attempt",), ("first",), ("escalate", "scaffold"))


def expand_references(data: dict[str, Any], seen: frozenset[Path] = frozenset()) -> None:
    """`attempt: tools` stands for the whole shipped `tools` scaffold (a path for a file), so the run
    records it resolved; a referenced file's own references are expanded too."""
    for *parents, key in _NESTED_SCAFFOLDS:
        node: Any = data
        for parent in parents:
            node = node.get(parent) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            continue
        reference = node.get(key)
        if isinstance(reference, str):
            path = resolve(reference).resolve()
            if path in seen:
                raise ScaffoldError(f"scaffold {reference!r} refers back to itself")
            node[key] = yaml.safe_load(path.read_text())
            if isinstance(node[key], dict):
                expand_references(node[key], seen | {path})


def apply_override(data: dict[str, Any], item: str, path: Path) -> tuple[list[str], str]:
    """`-c limits.max_steps=20`: the value is read as YAML, so numbers, lists and booleans work."""
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise ScaffoldError(f"override {item!r} is not KEY=VALUE (e.g. -c limits.max_steps=20)")
    parts = key.strip().split(".")
    node: Any = data
    for part in parts[:-1]:
        if not isinstance(node.get(part, {}), dict):
            raise ScaffoldError(f"override {item!r}: {part} in {path} is not a mapping")
        node = node.setdefault(part, {})
    try:
        node[parts[-1]] = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise ScaffoldError(f"override {item!r}: value is not valid YAML") from exc
    return parts, item


def describe(
    exc: ValidationError, path: Path, text: str, applied: list[tuple[list[str], str]], data: dict[str, Any]
) -> str:
    """The first problem as `file:line: key: message`, saying when an override caused it."""
    error = exc.errors()[0]
    loc = as_written([str(part) for part in error["loc"]], data)
    key = ".".join(loc) or "type"
    message = error["msg"]
    if error["type"] == "extra_forbidden":
        message = "unknown key"
    elif error["type"] == "union_tag_invalid":
        message = f"unknown type {error['ctx']['tag']!r}; expected one of {error['ctx']['expected_tags']}"
    elif error["type"] == "union_tag_not_found":
        message = "missing `type:` key"
    for parts, item in applied:
        if loc[: len(parts)] == parts:
            return f"{path}: {key}: {message} (from override {item!r})"
    return f"{path}:{line_of(text, loc)}: {key}: {message}"


def as_written(loc: list[str], data: Any) -> list[str]:
    """`loc` as the file spells it: a discriminated union (the scaffold, best-of-k's `attempt`) adds the
    chosen `type:` value as a level of its own, first under the mapping that holds it (and `type: tools`
    has a `tools:` key too, so the name alone cannot tell the two apart)."""
    written: list[str] = []
    node, entered = data, True
    for part in loc:
        if entered and isinstance(node, dict) and node.get("type") == part:
            entered = False
            continue
        written.append(part)
        entered = True
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            node = None
    return written


def line_of(text: str, loc: list[str]) -> int:
    """The line of the deepest key of `loc` present in the YAML (1-based)."""
    node = yaml.compose(text)
    line = 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next(((k, v) for k, v in node.value if k.value == part), None)
            if match is None:
                break
            line, node = match[0].start_mark.line + 1, match[1]
        elif isinstance(node, yaml.SequenceNode) and part.isdigit() and int(part) < len(node.value):
            node = node.value[int(part)]
            line = node.start_mark.line + 1
        else:
            break
    return line
