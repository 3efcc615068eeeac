"""find_files, search, view, symbols and bash against a real container with a small git repository."""

from __future__ import annotations

import shutil
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from atlas_agent.runtime.container import TaskContainer
from atlas_agent.runtime.workspace import Workspace
from atlas_agent.tools import build_tools
from atlas_agent.tools.base import Tool
from atlas_agent.vocabulary import CommandResult, Observation

pytestmark = pytest.mark.docker

GIT_ENV = "export GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@e GIT_COMMITTER_NAME=t GIT_COMMITTER_EMAIL=t@e"
SHAPES = '''\
"""Shapes."""


class Outer:
    class Inner:
        def method(self, x):
            return x

    @staticmethod
    def build(size: int = 1) -> "Outer":
        return Outer()


@cache
def area(shape):
    return 0


async def fetch(url):
    return url
'''
BIG_LINES = 90_000
PADDING = "padding " * 6  # with it, big.py is a little over 5 MB


@pytest.fixture(scope="module")
def box(container: TaskContainer) -> Iterator[TaskContainer]:
    """The module's container, holding a small repository."""
    container.write_file("pkg/__init__.py", "from pkg.shapes import Outer\n")
    container.write_file("pkg/shapes.py", SHAPES)
    container.write_file("pkg/sub/deep.py", "class Deep:\n    def method(self):\n        pass\n")
    container.write_file("pkg/notes.txt", "".join(f"needle {i}\n" for i in range(30)))
    container.write_file(".gitignore", "build/\n*.log\n")
    container.write_file("build/out.py", "def method(): pass\n")
    container.write_file("run.log", "needle\n")
    container.write_file("gone.py", "x = 1\n")
    container.write_file("data.bin", b"needle\0\x01\x02" * 100)
    script = f"""
        {GIT_ENV}
        cd /testbed && git init -q && git add -A && git commit -qm base
        rm gone.py && echo 'needle = 1' > untracked.py
        mkdir many && for i in $(seq -w 1 250); do echo "needle $i" > many/f$i.py; done
        seq 0 {BIG_LINES - 1} | sed 's/.*/value_& = &  # {PADDING}/' > big.py
    """
    result = container.run(textwrap.dedent(script))
    assert result.exit_code == 0, result.output
    yield container


@pytest.fixture
def tools() -> dict[str, Tool]:
    return {tool.name: tool for tool in build_tools(["bash", "find_files", "search", "symbols", "view"])}


def call(tools: dict[str, Tool], workspace: Workspace, tool_name: str, **arguments: object) -> Observation:
    tool = tools[tool_name]
    return tool.run(tool.parse(arguments), workspace)


def test_find_files_lists_what_git_sees(box: TaskContainer, tools: dict[str, Tool]) -> None:
    out = call(tools, box, "find_files", pattern="**/*.py").output
    lines = out.splitlines()
    assert lines[0] == '255 files match "**/*.py":'
    assert lines[1:4] == ["big.py", "many/f001.py", "many/f002.py"]
    assert not [line for line in lines if line.startswith(("build/", ".git/", "gone.py"))]
    assert lines[-1] == "[55 more files not shown: narrow the pattern or the path]"


def test_find_files_name_globs_paths_and_errors(box: TaskContainer, tools: dict[str, Tool]) -> None:
    assert call(tools, box, "find_files", pattern="*shape*").output == '1 file matches "*shape*":\npkg/shapes.py'
    assert call(tools, box, "find_files", pattern="*.py", path="untracked.py").output.endswith("\nuntracked.py")
    out = call(tools, box, "find_files", pattern="*.py", path="pkg").output
    assert out.splitlines()[1:] == ["pkg/__init__.py", "pkg/shapes.py", "pkg/sub/deep.py"]
    assert call(tools, box, "find_files", pattern="sub/*.py", path="/testbed/pkg").output.endswith("\npkg/sub/deep.py")
    assert call(tools, box, "find_files", pattern="*.log").output == 'No files match "*.log".'
    assert call(tools, box, "find_files", pattern="*", path="nope").output == "nope: no such file or directory."
    assert "outside the repository" in call(tools, box, "find_files", pattern="*", path="..").output


@dataclass
class Elsewhere:
    """The same container with another directory as the repository: not a git checkout."""

    box: TaskContainer
    workdir: str = "/plain"

    def run(self, command: str, timeout: float = 120.0) -> CommandResult:
        return self.box.run(command, timeout)

    def read_file(self, path: str) -> bytes:
        return self.box.read_file(path)

    def write_file(self, path: str, data: bytes | str, mode: int = 0o644) -> None:
        self.box.write_file(path, data, mode)


def test_find_files_outside_git_uses_find(box: TaskContainer, tools: dict[str, Tool]) -> None:
    box.run("mkdir -p /plain/.git /plain/src && touch /plain/.git/config /plain/src/a.py /plain/b.py /plain/c.txt")
    out = call(tools, Elsewhere(box), "find_files", pattern="*.py").output
    assert out == '2 files match "*.py":\nb.py\nsrc/a.py'


def test_a_missing_repository_root_is_reported(box: TaskContainer, tools: dict[str, Tool]) -> None:
    out = call(tools, Elsewhere(box, workdir="/gone"), "view", path="a.py").output
    assert out == "The repository root /gone cannot be entered: was it removed?"


def test_search_groups_matches_by_file(box: TaskContainer, tools: dict[str, Tool]) -> None:
    out = call(tools, box, "search", pattern=r"def \w+\(self", path="pkg").output
    assert out == (
        "2 matching lines in 2 files for /def \\w+\\(self/:\n"
        "pkg/shapes.py\n  6:         def method(self, x):\n"
        "pkg/sub/deep.py\n  2:     def method(self):"
    )
    out = call(tools, box, "search", pattern="CLASS OUTER", case_sensitive=False).output
    assert out.splitlines()[1:] == ["pkg/shapes.py", "  4: class Outer:"]


def test_search_caps_per_file_and_overall(box: TaskContainer, tools: dict[str, Tool]) -> None:
    out = call(tools, box, "search", pattern="^needle").output
    lines = out.splitlines()
    # 250 in many/, 30 in notes.txt, 1 in untracked.py; ignored, binary and .git files are skipped
    assert lines[0] == "281 matching lines in 252 files for /^needle/:"
    assert lines[1:3] == ["many/f001.py", "  1: needle 001"]
    assert lines[-1] == "[231 more matches in 202 files: narrow the pattern, path or glob]"
    out = call(tools, box, "search", pattern="needle", path="pkg/notes.txt").output
    assert out.splitlines()[-2:] == ["  10: needle 9", "  [20 more in this file]"]


def test_search_globs_and_errors(box: TaskContainer, tools: dict[str, Tool]) -> None:
    out = call(tools, box, "search", pattern="needle", glob="untracked.*").output
    assert out.splitlines()[1:] == ["untracked.py", "  1: needle = 1"]
    out = call(tools, box, "search", pattern="method", glob="pkg/**/*.py").output
    assert out.splitlines()[0] == "3 matching lines in 2 files for /method/:"  # @staticmethod too
    assert call(tools, box, "search", pattern="zzz_nothing").output == "No matches for /zzz_nothing/."
    assert call(tools, box, "search", pattern="x", path="nope").output == "nope: no such file or directory."
    assert call(tools, box, "search", pattern="(unclosed").output.startswith("The search failed: ")


def test_search_with_ripgrep_reads_the_same(box: TaskContainer, tools: dict[str, Tool]) -> None:
    rg = shutil.which("rg")
    if rg is None:
        pytest.skip("no ripgrep on this host to copy into the container")
    queries = [
        {"pattern": "^needle"},
        {"pattern": r"def \w+\(self", "path": "pkg"},
        {"pattern": "OUTER", "case_sensitive": False, "glob": "*.py"},
        {"pattern": "(unclosed"},
    ]
    with_grep = [call(tools, box, "search", **query).output for query in queries]
    box.write_file("/usr/local/bin/rg", Path(rg).read_bytes(), mode=0o755)
    try:
        with_rg = [call(tools, box, "search", **query).output for query in queries]
    finally:
        box.run("rm -f /usr/local/bin/rg")
    assert with_rg[:3] == with_grep[:3]
    assert with_rg[3].startswith("The search failed: ")


def test_view_windows(box: TaskContainer, tools: dict[str, Tool]) -> None:
    out = call(tools, box, "view", path="pkg/shapes.py").output
    assert out.splitlines()[:3] == ["pkg/shapes.py: lines 1-20 of 20", ' 1  """Shapes."""', " 2  "]
    out = call(tools, box, "view", path="pkg/shapes.py", start_line=4, end_line=6).output
    assert out == (
        "pkg/shapes.py: lines 4-6 of 20\n4  class Outer:\n5      class Inner:\n6          def method(self, x):\n"
        "[14 more lines: view with start_line=7]"
    )
    assert call(tools, box, "view", path="pkg/shapes.py", start_line=19, end_line=99).output.startswith(
        "pkg/shapes.py: lines 19-20 of 20\n"
    )
    assert "past the end" in call(tools, box, "view", path="pkg/shapes.py", start_line=30).output
    assert "before start_line" in call(tools, box, "view", path="pkg/shapes.py", start_line=5, end_line=2).output


def test_view_edge_cases(box: TaskContainer, tools: dict[str, Tool]) -> None:
    box.run("printf 'a\\nno newline' > /testbed/tail.txt && : > /testbed/empty.txt")
    assert call(tools, box, "view", path="tail.txt").output == "tail.txt: lines 1-2 of 2\n1  a\n2  no newline"
    assert call(tools, box, "view", path="empty.txt").output == "empty.txt: empty file (0 lines)."
    assert call(tools, box, "view", path="data.bin").output == "data.bin: binary file, 900 bytes; not shown."
    assert call(tools, box, "view", path="missing.py").output == "missing.py: no such file or directory."
    assert "outside the repository" in call(tools, box, "view", path="/etc/passwd").output
    box.run("rm -f /testbed/tail.txt /testbed/empty.txt")


def test_view_directory(box: TaskContainer, tools: dict[str, Tool]) -> None:
    out = call(tools, box, "view", path="pkg").output
    assert out.splitlines() == [
        "pkg (directory, two levels deep, .git left out):",
        "__init__.py",
        "notes.txt",
        "shapes.py",
        "sub/",
        "sub/deep.py",
    ]
    root = call(tools, box, "view", path=".").output
    assert ".gitignore" in root and "pkg/" in root and ".git/" not in root
    assert "[more than 400 entries" not in root


def test_view_of_a_huge_file_is_a_window(box: TaskContainer, tools: dict[str, Tool]) -> None:
    started = time.monotonic()
    obs = call(tools, box, "view", path="big.py", start_line=BIG_LINES - 1, end_line=BIG_LINES + 5)
    assert time.monotonic() - started < 2
    assert obs.output.splitlines() == [
        "big.py: lines 89999-90000 of 90000",
        f"89999  value_89998 = 89998  # {PADDING}",
        f"90000  value_89999 = 89999  # {PADDING}",
    ]
    lines = call(tools, box, "view", path="big.py").output.splitlines()
    assert (lines[0], len(lines)) == ("big.py: lines 1-100 of 90000", 102)
    assert lines[-1] == "[89900 more lines: view with start_line=101]"
    assert int(box.run("stat -c %s /testbed/big.py").output) > 5_000_000


def test_symbols_finds_definitions_across_the_package(box: TaskContainer, tools: dict[str, Tool]) -> None:
    assert call(tools, box, "symbols", name="method").output == (
        '2 definitions of "method":\n'
        "pkg/shapes.py:6-7  def Outer.Inner.method(self, x)\n"
        "pkg/sub/deep.py:2-3  def Deep.method(self)"
    )
    assert call(tools, box, "symbols", name="Inner.method").output.splitlines()[1:] == [
        "pkg/shapes.py:6-7  def Outer.Inner.method(self, x)"
    ]
    assert call(tools, box, "symbols", name="Inner").output.endswith("pkg/shapes.py:5-7  class Outer.Inner")
    assert call(tools, box, "symbols", name="area").output.endswith("pkg/shapes.py:14-16  @cache def area(shape)")
    assert call(tools, box, "symbols", name="fetch").output.endswith("pkg/shapes.py:19-20  async def fetch(url)")
    assert call(tools, box, "symbols", name="method", path="pkg/sub").output.startswith('1 definition of "method"')
    assert "No class or function" in call(tools, box, "symbols", name="nothing_here").output


def test_symbols_outline(box: TaskContainer, tools: dict[str, Tool]) -> None:
    assert call(tools, box, "symbols", path="pkg/shapes.py").output == (
        "pkg/shapes.py: 6 definitions in 20 lines\n"
        "  4-11  class Outer\n"
        "    5-7  class Outer.Inner\n"
        "      6-7  def Outer.Inner.method(self, x)\n"
        '    9-11  @staticmethod def Outer.build(size: int = 1) -> "Outer"\n'
        "  14-16  @cache def area(shape)\n"
        "  19-20  async def fetch(url)"
    )


def test_symbols_mistakes(box: TaskContainer, tools: dict[str, Tool]) -> None:
    assert "Give a name" in call(tools, box, "symbols").output
    assert "not a Python name" in call(tools, box, "symbols", name="a-b").output
    assert call(tools, box, "symbols", path="nope.py").output == "nope.py: no such file."
    assert "a directory" in call(tools, box, "symbols", path="pkg").output
    assert "not a Python file" in call(tools, box, "symbols", path="pkg/notes.txt").output


def test_bash_output_is_bounded(box: TaskContainer, tools: dict[str, Tool]) -> None:
    obs = call(tools, box, "bash", command="python3 -c \"print('\\n'.join(str(i) for i in range(10000)))\"")
    assert obs.truncated and obs.exit_code == 0 and "characters elided ...]" in obs.output
    assert len(obs.output) < 17_000 and obs.output.startswith("0\n1\n") and obs.output.endswith("9999\n")
    assert obs.full_output is not None and obs.full_output.count("\n") == 10000
    small = call(tools, box, "bash", command="echo hi")
    assert (small.output, small.full_output, small.truncated) == ("hi\n", None, False)


def test_tools_ignore_the_session_state(box: TaskContainer, tools: dict[str, Tool]) -> None:
    box.run("cd /tmp && set -e")
    try:
        assert call(tools, box, "find_files", pattern="*", path="nope").output == "nope: no such file or directory."
        assert "\n4  class Outer:\n" in call(tools, box, "view", path="pkg/shapes.py", start_line=4, end_line=4).output
        assert call(tools, box, "bash", command="pwd").output == "/tmp\n"  # the session's shell survived
    finally:
        box.run("set +e && cd /testbed")
