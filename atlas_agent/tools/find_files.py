"""find_files: the repository's files whose paths match a glob, as git sees them."""

from __future__ import annotations

import posixpath
import shlex

from pydantic import BaseModel, Field

from atlas_agent.runtime.workspace import Workspace
from atlas_agent.tools.output import plural
from atlas_agent.tools.paths import UsageError, glob_match, resolve
from atlas_agent.tools.shell_scripts import FILES_UNDER, WorkspaceTool, capture, nul_split

MAX_RESULTS = 200
_MISSING = 3  # the script's exit status when the path does not exist

# The files, then (after an empty entry) those of them that were deleted from the working tree.
_LIST_SCRIPT = """\
p={path}
[ -e "$p" ] || exit {missing}
{files}
printf '\\0'
"${{git[@]}}" ls-files -z --deleted -- "$p" 2>/dev/null"""


class FindFilesArgs(BaseModel):
    pattern: str = Field(
        description='Glob over file paths, e.g. "**/*.py", "src/**/test_*.py" or "*range*". A pattern without "/" '
        'matches file names at any depth; "**" spans directories, "*" does not.'
    )
    path: str = Field(default=".", description="Directory to search under, relative to the repository root.")


class FindFilesTool(WorkspaceTool):
    name = "find_files"
    description = (
        "List the repository's files whose paths match a glob, sorted; .git and git-ignored files are left out. "
        "Paths are relative to the repository root."
    )
    Args = FindFilesArgs

    def execute(self, args: FindFilesArgs, workspace: Workspace) -> str:
        where = resolve(workspace, args.path)
        files = list_files(workspace, where.relative, self.timeout)
        prefix = "" if where.relative == "." else where.relative + "/"
        matches = [f for f in files if glob_match(args.pattern, f.removeprefix(prefix))]
        return render(matches, args.pattern, where.relative)


def list_files(workspace: Workspace, relative: str, timeout: float) -> list[str]:
    """Every file under `relative` (a path from the repository root), sorted, relative to the root."""
    script = _LIST_SCRIPT.format(path=shlex.quote(relative), missing=_MISSING, files=FILES_UNDER)
    data, result = capture(workspace, script, timeout)
    if result.exit_code == _MISSING:
        raise UsageError(f"{relative}: no such file or directory.")
    names = nul_split(data)
    split = names.index("") if "" in names else len(names)
    deleted = set(names[split + 1 :])
    return sorted({posixpath.normpath(name) for name in names[:split] if name not in deleted})


def render(matches: list[str], pattern: str, where: str) -> str:
    scope = "" if where == "." else f" under {where}"
    if not matches:
        return f'No files match "{pattern}"{scope}.'
    verb = "matches" if len(matches) == 1 else "match"
    lines = [f'{plural(len(matches), "file")} {verb} "{pattern}"{scope}:']
    lines += matches[:MAX_RESULTS]
    if len(matches) > MAX_RESULTS:
        lines.append(f"[{len(matches) - MAX_RESULTS} more files not shown: narrow the pattern or the path]")
    return "\n".join(lines)
