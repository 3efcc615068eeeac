"""view: a numbered window of a file, or a directory's listing. Only the window leaves the
container, so a huge file costs no more than a small one."""

from __future__ import annotations

import shlex

from pydantic import BaseModel, Field

from atlas_agent.runtime.workspace import Workspace
from atlas_agent.tools.output import numbered, plural
from atlas_agent.tools.paths import UsageError, resolve
from atlas_agent.tools.shell_scripts import WorkspaceTool, capture, nul_split

DEFAULT_LINES = 100
MAX_LINES = 300
MAX_LINE_CHARS = 2000
MAX_ENTRIES = 400
BINARY_PROBE = 8192

# The first line says what the path is; a text file's window follows it. A final line without a
# newline counts as a line, as editors count it.
_SCRIPT = """\
p={path}
if [ -d "$p" ]; then
  echo dir
  find "$p" -mindepth 1 -maxdepth 2 -name .git -prune -o -type d -printf '%P/\\0' -o -printf '%P\\0' \\
    | head -z -n {entries}
  exit 0
fi
[ -e "$p" ] || {{ echo missing; exit 0; }}
[ -f "$p" ] || {{ echo special; exit 0; }}
size=$(stat -L -c %s -- "$p")
nuls=$(head -c {probe} -- "$p" | tr -dc '\\0' | wc -c)
lines=$(wc -l <"$p")
[ "$nuls" = 0 ] && [ -n "$(tail -c 1 -- "$p")" ] && lines=$((lines + 1))
echo "file $size $nuls $lines"
[ "$nuls" = 0 ] && sed -n -e '{first},{last}p' -e '{last}q' -- "$p"
"""


class ViewArgs(BaseModel):
    path: str = Field(description="File or directory, relative to the repository root.")
    start_line: int | None = Field(default=None, description="First line to show (1-based). Default: 1.")
    end_line: int | None = Field(
        default=None,
        description=f"Last line to show, inclusive. Default: {DEFAULT_LINES} lines from start_line; "
        f"at most {MAX_LINES} lines are shown at once.",
    )


class ViewTool(WorkspaceTool):
    name = "view"
    description = (
        "Show a file with line numbers, a window at a time (lines a-b of N), or list a directory two levels deep. "
        "Use start_line/end_line to move through long files."
    )
    Args = ViewArgs

    def execute(self, args: ViewArgs, workspace: Workspace) -> str:
        where = resolve(workspace, args.path)
        first = max(args.start_line or 1, 1)
        last = args.end_line if args.end_line is not None else first + DEFAULT_LINES - 1
        if last < first:
            raise UsageError(f"end_line {last} is before start_line {first}.")
        last = min(last, first + MAX_LINES - 1)
        script = _SCRIPT.format(
            path=shlex.quote(where.relative), entries=MAX_ENTRIES + 1, probe=BINARY_PROBE, first=first, last=last
        )
        data, _ = capture(workspace, script, self.timeout)
        header, _, body = data.partition(b"\n")
        kind, *facts = header.decode().split()
        if kind == "dir":
            return listing(where.relative, nul_split(body))
        if kind != "file":
            reason = "no such file or directory" if kind == "missing" else "not a regular file"
            raise UsageError(f"{where.relative}: {reason}.")
        size, nuls, total = (int(fact) for fact in facts)
        if nuls:
            return f"{where.relative}: binary file, {size} bytes; not shown."
        return window(where.relative, body, first, min(last, total), total)


def window(relative: str, body: bytes, first: int, last: int, total: int) -> str:
    if total == 0:
        return f"{relative}: empty file (0 lines)."
    if first > total:
        raise UsageError(f"start_line {first} is past the end: {relative} has {plural(total, 'line')}.")
    lines = [_clip(line.rstrip("\r")) for line in body.decode("utf-8", "replace").split("\n")[: last - first + 1]]
    text = f"{relative}: lines {first}-{last} of {total}\n{numbered(lines, first)}"
    if last < total:
        text += f"\n[{plural(total - last, 'more line')}: view with start_line={last + 1}]"
    return text


def listing(relative: str, entries: list[str]) -> str:
    shown = sorted(entries)[:MAX_ENTRIES]
    title = "the repository root" if relative == "." else relative
    text = "\n".join([f"{title} (directory, two levels deep, .git left out):", *shown])
    if len(entries) > MAX_ENTRIES:
        text += f"\n[more than {MAX_ENTRIES} entries: view a subdirectory or use find_files]"
    return text if entries else f"{title}: empty directory."


def _clip(line: str) -> str:
    if len(line) <= MAX_LINE_CHARS:
        return line
    return f"{line[:MAX_LINE_CHARS]} [... {len(line) - MAX_LINE_CHARS} more characters]"
