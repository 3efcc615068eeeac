"""search: a regex over the repository's files, grouped by file, with ripgrep when the image has it
and grep otherwise; the output is the same either way."""

from __future__ import annotations

import posixpath
import re
import shlex

from pydantic import BaseModel, Field

from atlas_agent.runtime.workspace import Workspace
from atlas_agent.tools.output import plural
from atlas_agent.tools.paths import UsageError, glob_match, resolve
from atlas_agent.tools.shell_scripts import FILES_UNDER, WorkspaceTool, capture

MAX_MATCHES = 50
MAX_PER_FILE = 10
MAX_LINE_CHARS = 300
_MISSING = 3  # the script's exit status when the path does not exist

# grep -P accepts the same \d \w \s \b syntax as ripgrep; plain ERE is the fallback for a grep
# built without PCRE.
_SCRIPT = """\
{check}if command -v rg >/dev/null 2>&1; then
  rg --with-filename --null --no-heading --no-messages --color never --hidden -g '!.git' {rg} -e {pattern} -- {paths}
  exit
fi
if grep -P '' /dev/null 2>/dev/null; [ $? = 1 ]; then dialect=-P; else dialect=-E; fi
{grep_files}"""
_GREP = 'grep -H -Z -I -s {options} "$dialect" -e {pattern}'
# A tree is searched as ripgrep searches it, git-ignored files left out; given files are searched as they are.
_TREE_CHECK = 'p={path}\n[ -e "$p" ] || exit {missing}\n'
_TREE_GREP = "{{\n{files}\n}} | xargs -0 -r {grep} --"
_COUNT = re.compile(rb"(.*?)\0(\d+)\n", re.DOTALL)
_LINE = re.compile(rb"(.*?)\0(\d+):(.*?)\r?\n", re.DOTALL)


class SearchArgs(BaseModel):
    pattern: str = Field(description=r"Regular expression (ripgrep/PCRE syntax: \d, \w, \b work), matched per line.")
    path: str = Field(default=".", description="File or directory to search, relative to the repository root.")
    glob: str | None = Field(
        default=None, description='Only search files whose paths match this glob, e.g. "*.py" or "tests/**/*.py".'
    )
    case_sensitive: bool = Field(default=True, description="Set false to ignore case.")


class SearchTool(WorkspaceTool):
    name = "search"
    description = (
        "Search file contents for a regular expression. Matching lines are listed by file with their line numbers, "
        f"at most {MAX_PER_FILE} per file and {MAX_MATCHES} in all; the counts of the rest are given. "
        ".git and binary files are skipped."
    )
    Args = SearchArgs

    def execute(self, args: SearchArgs, workspace: Workspace) -> str:
        where = resolve(workspace, args.path)
        counts = self._counts(args, workspace, where.relative)
        if not counts:
            scope = "" if where.relative == "." else f" under {where.relative}"
            return f"No matches for /{args.pattern}/{scope}."
        shown = self._lines(args, workspace, pick_files(counts))
        return render(args.pattern, counts, shown)

    def _counts(self, args: SearchArgs, workspace: Workspace, relative: str) -> dict[str, int]:
        """Matching lines per file, for the files the glob admits."""
        data = self._run(args, workspace, [relative], ["--count"], ["-c"], tree=True)
        counts = {posixpath.normpath(m[1].decode("utf-8", "replace")): int(m[2]) for m in _COUNT.finditer(data)}
        return {path: n for path, n in counts.items() if n and (not args.glob or glob_match(args.glob, path))}

    def _lines(self, args: SearchArgs, workspace: Workspace, files: list[str]) -> dict[str, list[tuple[int, str]]]:
        cap = ["-n", f"--max-count={MAX_PER_FILE}"]
        data = self._run(args, workspace, files, cap, cap, tree=False)
        shown: dict[str, list[tuple[int, str]]] = {path: [] for path in files}
        for match in _LINE.finditer(data):
            path = posixpath.normpath(match[1].decode("utf-8", "replace"))
            shown.setdefault(path, []).append((int(match[2]), match[3].decode("utf-8", "replace")))
        return shown

    def _run(
        self, args: SearchArgs, workspace: Workspace, paths: list[str], rg: list[str], grep: list[str], *, tree: bool
    ) -> bytes:
        """Runs ripgrep or grep over `paths`: a whole tree (existence checked first) or given files."""
        if not args.case_sensitive:
            rg, grep = [*rg, "-i"], [*grep, "-i"]
        # A glob on file names narrows the search itself; every glob is also checked here, the same for both.
        if args.glob and "/" not in args.glob:
            rg, grep = [*rg, "-g", args.glob], [*grep, f"--include={args.glob}"]
        pattern, paths_text = shlex.quote(args.pattern), shlex.join(paths)
        grep_command = _GREP.format(options=shlex.join(grep), pattern=pattern)
        if tree:
            check = _TREE_CHECK.format(path=paths_text, missing=_MISSING)
            grep_files = _TREE_GREP.format(files=FILES_UNDER, grep=grep_command)
        else:
            check, grep_files = "", f"{grep_command} -- {paths_text}"
        script = _SCRIPT.format(
            check=check, rg=shlex.join(rg), pattern=pattern, paths=paths_text, grep_files=grep_files
        )
        data, result = capture(workspace, script, self.timeout)
        if result.exit_code == _MISSING and tree:
            raise UsageError(f"{paths[0]}: no such file or directory.")
        message = result.output.strip()
        if not data and message:  # no output but complaints: a bad pattern (file errors are silenced)
            raise UsageError(f"The search failed: {message}")
        return data


def pick_files(counts: dict[str, int]) -> list[str]:
    """The files whose lines are shown: in path order, until MAX_MATCHES lines are taken."""
    picked, budget = [], MAX_MATCHES
    for path in sorted(counts):
        if budget <= 0:
            break
        picked.append(path)
        budget -= min(counts[path], MAX_PER_FILE)
    return picked


def render(pattern: str, counts: dict[str, int], shown: dict[str, list[tuple[int, str]]]) -> str:
    total = sum(counts.values())
    lines = [f"{plural(total, 'matching line')} in {plural(len(counts), 'file')} for /{pattern}/:"]
    budget = MAX_MATCHES
    for path in sorted(shown):
        taken = shown[path][: min(MAX_PER_FILE, budget)]
        budget -= len(taken)
        lines.append(path)
        lines += [f"  {number}: {_clip(text)}" for number, text in taken]
        if counts.get(path, 0) > len(taken):
            lines.append(f"  [{counts[path] - len(taken)} more in this file]")
    rest = {path: n for path, n in counts.items() if path not in shown}
    if rest:
        lines.append(f"[{sum(rest.values())} more matches in {len(rest)} files: narrow the pattern, path or glob]")
    return "\n".join(lines)


def _clip(text: str) -> str:
    if len(text) <= MAX_LINE_CHARS:
        return text
    return f"{text[:MAX_LINE_CHARS]} [... {len(text) - MAX_LINE_CHARS} more characters]"
