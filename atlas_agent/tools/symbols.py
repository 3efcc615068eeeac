"""symbols: where a Python class or function is defined, or the outline of one file. grep in the
container narrows the files; tree-sitter on the host confirms each definition."""

from __future__ import annotations

import io
import posixpath
import shlex
import tarfile

from pydantic import BaseModel, Field

from atlas_agent.runtime.workspace import Workspace
from atlas_agent.tools.lint import is_python
from atlas_agent.tools.outline import Definition, definitions
from atlas_agent.tools.output import plural
from atlas_agent.tools.paths import UsageError, resolve
from atlas_agent.tools.shell_scripts import FILES_UNDER, WorkspaceTool, capture

MAX_CANDIDATES = 200
_MISSING = 3  # the script's exit status when the path does not exist

# The candidate files come back as one tar stream: a single round trip, whatever their number.
_CANDIDATES = """\
p={path}
[ -e "$p" ] || exit {missing}
{{
{files}
}} | xargs -0 -r grep -lZ -I -s --include='*.py' --include='*.pyi' \\
    -E '(def|class)[[:space:]]+{name}([^[:alnum:]_]|$)' -- \\
  | head -z -n {limit} | tar --null -T - -cf - 2>/dev/null"""


class SymbolsArgs(BaseModel):
    name: str | None = Field(
        default=None,
        description='Class, function or method name to find the definitions of, e.g. "parse" or "Version.bump".',
    )
    path: str | None = Field(
        default=None,
        description="Without name: the Python file to outline. With name: the file or directory to search in.",
    )


class SymbolsTool(WorkspaceTool):
    name = "symbols"
    description = (
        "Python code navigation. With name: where classes/functions/methods of that name are defined "
        "(path:start-end and qualified name, e.g. `def Outer.method(self, x)`). With only path: the outline of "
        "that file (classes, methods and functions with their line ranges)."
    )
    Args = SymbolsArgs

    def execute(self, args: SymbolsArgs, workspace: Workspace) -> str:
        if args.name:
            return self._find(args.name.strip(), args.path or ".", workspace)
        if args.path:
            return self._outline(args.path, workspace)
        raise UsageError("Give a name to look up, a path to outline, or both.")

    def _find(self, name: str, path: str, workspace: Workspace) -> str:
        if not all(part.isidentifier() for part in name.split(".")):
            raise UsageError(f'"{name}" is not a Python name (like "parse" or "Version.bump").')
        where = resolve(workspace, path)
        script = _CANDIDATES.format(
            path=shlex.quote(where.relative),
            missing=_MISSING,
            files=FILES_UNDER,
            name=name.rsplit(".", 1)[-1],
            limit=MAX_CANDIDATES,
        )
        data, result = capture(workspace, script, self.timeout)
        if result.exit_code == _MISSING:
            raise UsageError(f"{where.relative}: no such file or directory.")
        sources = _untar(data)
        hits = [
            f"{file}:{d.describe()}"
            for file in sorted(sources)
            for d in definitions(sources[file])
            if d.qualified == name or d.qualified.endswith("." + name)
        ]
        if not hits:
            return f'No class or function named "{name}" is defined in {where.relative}.'
        note = (
            f"\n[only the first {MAX_CANDIDATES} candidate files were read]" if len(sources) >= MAX_CANDIDATES else ""
        )
        return f'{plural(len(hits), "definition")} of "{name}":\n' + "\n".join(hits) + note

    def _outline(self, path: str, workspace: Workspace) -> str:
        where = resolve(workspace, path)
        try:
            source = workspace.read_file(where.absolute)
        except FileNotFoundError:
            raise UsageError(f"{where.relative}: no such file.") from None
        except IsADirectoryError:
            raise UsageError(f"{where.relative}: a directory; give a file, or a name to search for.") from None
        if not is_python(where.relative):
            raise UsageError(f"{where.relative}: not a Python file; outlines are for .py files.")
        found = definitions(source)
        lines = source.count(b"\n") + (0 if source.endswith(b"\n") or not source else 1)
        header = f"{where.relative}: {plural(len(found), 'definition')} in {plural(lines, 'line')}"
        return "\n".join([header, *(_indented(d) for d in found)])


def _indented(definition: Definition) -> str:
    return "  " * (definition.depth + 1) + definition.describe()


def _untar(data: bytes) -> dict[str, bytes]:
    """Path -> content of the regular files in a tar stream."""
    sources: dict[str, bytes] = {}
    if not data:
        return sources
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for member in tar:
            content = tar.extractfile(member) if member.isfile() else None
            if content is not None:
                sources[posixpath.normpath(member.name)] = content.read()
    return sources
