"""The tools' pure parts, without a container: bounding, globs, paths, text edits, syntax checks,
outlines and the registry."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from atlas_agent.tools import TOOL_CLASSES, TestRunner, build_tools, default_tools
from atlas_agent.tools.edit import EditTool
from atlas_agent.tools.lint import SyntaxProblem, excerpt, new_problem, parser_problem, syntax_problem
from atlas_agent.tools.outline import definitions
from atlas_agent.tools.output import bound, numbered, observe
from atlas_agent.tools.paths import UsageError, glob_match, resolve
from atlas_agent.tools.run_tests import RunTestsTool
from atlas_agent.tools.textedit import insert_after, line_count, replace_once, similar_lines

LINES = "".join(f"line {i:04d} {'x' * 40}\n" for i in range(2000))


def test_bound_keeps_short_text() -> None:
    assert bound("short\n", 100) == ("short\n", False)


def test_bound_keeps_head_and_tail_around_a_marker() -> None:
    shown, cut = bound(LINES, 4000)
    assert cut and shown == bound(LINES, 4000)[0]  # deterministic
    head, marker, tail = shown.partition("[... ")
    elided = int(marker and tail.split(" ", 1)[0])
    assert head.endswith("\n") and tail.split("\n", 1)[1] == LINES[len(LINES) - len(tail.split("\n", 1)[1]) :]
    assert len(head) + elided + len(tail.split("\n", 1)[1]) == len(LINES)
    assert head.startswith("line 0000") and shown.endswith("line 1999 " + "x" * 40 + "\n")
    assert len(shown) < 4100


def test_bound_without_line_breaks_and_tail_share() -> None:
    shown, cut = bound("a" * 1000 + "b" * 1000, 100, tail_share=0.8)
    assert cut and shown == "a" * 20 + "\n[... 1900 characters elided ...]\n" + "b" * 80


def test_observe_keeps_the_full_text_only_when_cut() -> None:
    assert observe("small", 0.0).full_output is None
    big = observe(LINES, 0.0, max_chars=1000)
    assert big.full_output == LINES and big.truncated and "characters elided" in big.output


def test_numbered() -> None:
    assert numbered(["a", "b"], 9) == " 9  a\n10  b"


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("**/*.py", "a.py", True),
        ("**/*.py", "x/y/a.py", True),
        ("*.py", "x/y/a.py", True),
        ("*range*", "semverkit/range.py", True),
        ("tests/*.py", "tests/sub/a.py", False),
        ("tests/**/*.py", "tests/sub/a.py", True),
        ("src/**", "src/a/b.txt", True),
        ("[ab].py", "pkg/b.py", True),
        ("[!ab].py", "pkg/b.py", False),
        ("?.py", "pkg/ab.py", False),
        ("*.py", "a.pyc", False),
    ],
)
def test_glob_match(pattern: str, path: str, expected: bool) -> None:
    assert glob_match(pattern, path) is expected


@dataclass
class FakeWorkspace:
    workdir: str = "/testbed"


@pytest.mark.parametrize(
    ("path", "relative"), [("pkg/a.py", "pkg/a.py"), ("/testbed/pkg/../a.py", "a.py"), ("", "."), ("/testbed", ".")]
)
def test_resolve_inside(path: str, relative: str) -> None:
    assert resolve(FakeWorkspace(), path).relative == relative  # type: ignore[arg-type]


@pytest.mark.parametrize("path", ["../etc/passwd", "/etc/passwd", "/testbedx/a", "pkg/../../x"])
def test_resolve_refuses_escapes(path: str) -> None:
    with pytest.raises(UsageError, match="outside the repository"):
        resolve(FakeWorkspace(), path)  # type: ignore[arg-type]


def test_replace_once() -> None:
    change = replace_once("a\nb\nc\n", "b\n", "B1\nB2\n", "f")
    assert change.text == "a\nB1\nB2\nc\n" and (change.first, change.last) == (2, 3)
    with pytest.raises(UsageError, match=r"occurs 2 times in f, at lines 1, 3"):
        replace_once("x = 1\ny\nx = 1\n", "x = 1", "x = 2", "f")
    with pytest.raises(UsageError, match=r"does not occur in f(.|\n)*\n2      def bump\(self\):$"):
        replace_once("class V:\n    def bump(self):\n", "def bumpp(self):", "x", "f")
    with pytest.raises(UsageError, match="the same"):
        replace_once("a", "a", "a", "f")


def test_insert_after() -> None:
    assert insert_after("a\nb\n", 0, "top").text == "top\na\nb\n"
    assert insert_after("a\nb\n", 2, "end\n").text == "a\nb\nend\n"
    assert insert_after("a\nb", 2, "end").text == "a\nb\nend\n"  # no newline at the end of the file
    assert insert_after("", 0, "x").text == "x\n"
    change = insert_after("a\nb\n", 1, "m1\nm2")
    assert change.text == "a\nm1\nm2\nb\n" and (change.first, change.last) == (2, 3)
    with pytest.raises(UsageError, match=r"between 0 .* and 2"):
        insert_after("a\nb\n", 3, "x")


def test_line_count_and_similar_lines() -> None:
    assert [line_count(t) for t in ("", "a", "a\n", "a\nb")] == [0, 1, 1, 2]
    assert similar_lines("    return x\n", "  return x  \n  pass") == [(1, "    return x")]
    assert similar_lines("abc\n", "\n  \n") == []


def test_syntax_problem_finds_missing_and_invalid_tokens() -> None:
    assert syntax_problem(b"def f(a):\n    return a\n") is None
    problem = syntax_problem(b"x = 1\ndef g(:\n    pass\n")
    assert problem == SyntaxProblem(2, 7, 'missing ")"')
    problem = syntax_problem("é = 1\nx = = 2\n".encode())
    assert problem is not None and (problem.line, problem.column) == (2, 5)
    assert excerpt("é = 1\nx = = 2\n", problem).split("\n")[1:3] == ["2  x = = 2", "       ^"]


def test_indentation_errors_are_caught_by_the_host_parser() -> None:
    assert syntax_problem(b"def f():\nreturn 1\n") is None  # tree-sitter is lenient here
    problem = parser_problem(b"def f():\n    x = 1\n      y = 2\n")
    assert problem is not None and problem.line == 3 and "indent" in problem.message


def test_new_problem_judges_only_files_that_parsed_before() -> None:
    good, broken = b"x = 1\n", b"x = (\n"
    assert new_problem(good, broken) is not None
    assert new_problem(broken, broken + b"y = (\n") is None
    assert new_problem(b"print 'py2'\n", b"print 'py2'\n  x = 1\n") is None  # the host cannot parse it anyway
    assert new_problem(good, b"x = '\\d'\n") is None  # warnings are not errors


NESTED = b"""\
class Outer(Base):
    class Inner:
        def method(self, a: int = 1) -> str:
            return ""

    @property
    def value(self):
        return 1


@decorator(arg)
async def fetch(url,
                timeout=3):
    pass

if TYPE_CHECKING:
    def typed(): ...
"""


def test_outline_of_nested_decorated_and_async_definitions() -> None:
    found = [("  " * d.depth) + d.describe() for d in definitions(NESTED)]
    assert found == [
        "1-8  class Outer(Base)",
        "  2-4  class Outer.Inner",
        "    3-4  def Outer.Inner.method(self, a: int = 1) -> str",
        "  6-8  @property def Outer.value(self)",
        "11-14  @decorator(arg) async def fetch(url, timeout=3)",
        "17-17  def typed()",
    ]


def test_build_tools() -> None:
    names = list(TOOL_CLASSES)
    assert names == ["bash", "submit", "find_files", "search", "symbols", "view", "edit", "run_tests"]
    tools = build_tools(names, command_timeout=7, tests=TestRunner("pytest -x"))
    assert [tool.name for tool in tools] == names
    run_tests = tools[-1]
    assert isinstance(run_tests, RunTestsTool) and run_tests.command(None) == "pytest -x" and run_tests.timeout == 7
    edits = [tool for tool in build_tools(["edit"]) + build_tools(["edit"]) if isinstance(tool, EditTool)]
    assert len(edits) == 2 and edits[0] is not edits[1]
    assert [tool.name for tool in default_tools()] == ["bash", "submit"]
    with pytest.raises(ValueError, match="unknown tool grep; known: bash, submit, find_files"):
        build_tools(["bash", "grep"])


def test_every_argument_is_described() -> None:
    for tool in build_tools(list(TOOL_CLASSES)):
        spec = tool.spec()
        assert tool.description and spec.name == tool.name
        for name, field in spec.parameters.get("properties", {}).items():
            assert field.get("description"), f"{tool.name}.{name}"
