"""The edit tool against a real container: replacements, insertions, creation, undo, the syntax
check that refuses a broken edit, and the mistakes the model makes."""

from __future__ import annotations

import time

import pytest

from atlas_agent.runtime.container import TaskContainer
from atlas_agent.tools.edit import EditTool
from atlas_agent.vocabulary import Observation

pytestmark = pytest.mark.docker

MODULE = """\
def add(a, b):
    return a + b


def twice(x):
    return add(x, x)
"""


@pytest.fixture(scope="module")
def box(container: TaskContainer) -> TaskContainer:
    return container


@pytest.fixture
def editor(box: TaskContainer) -> EditTool:
    box.write_file("mod.py", MODULE)
    return EditTool()


def edit(editor: EditTool, box: TaskContainer, **arguments: object) -> Observation:
    return editor.run(editor.parse(arguments), box)


def content(box: TaskContainer, path: str = "mod.py") -> str:
    return box.read_file(path).decode()


def test_str_replace_shows_the_changed_lines(editor: EditTool, box: TaskContainer) -> None:
    out = edit(
        editor, box, command="str_replace", path="mod.py", old_str="    return a + b", new_str="    return b + a"
    )
    assert content(box) == MODULE.replace("a + b", "b + a")
    assert out.output == (
        "Edited mod.py: replaced 1 occurrence. Lines 1-6 now read:\n"
        "1  def add(a, b):\n2      return b + a\n3  \n4  \n5  def twice(x):\n6      return add(x, x)"
    )


def test_str_replace_keeps_the_mode_and_follows_paths(editor: EditTool, box: TaskContainer) -> None:
    box.write_file("bin/run.sh", "#!/bin/sh\necho one\n", mode=0o755)
    out = edit(editor, box, command="str_replace", path="/testbed/bin/run.sh", old_str="one", new_str="two")
    assert out.output.startswith("Edited bin/run.sh")
    assert content(box, "bin/run.sh") == "#!/bin/sh\necho two\n"
    assert box.run("stat -c %a /testbed/bin/run.sh").output.strip() == "755"


def test_str_replace_with_several_matches_lists_them(editor: EditTool, box: TaskContainer) -> None:
    out = edit(editor, box, command="str_replace", path="mod.py", old_str="return", new_str="yield").output
    assert out.startswith("old_str occurs 2 times in mod.py, at lines 2, 6. No change was made")
    assert out.endswith("  line 2: return a + b\n  line 6: return add(x, x)")
    assert content(box) == MODULE


def test_str_replace_without_a_match_shows_similar_lines(editor: EditTool, box: TaskContainer) -> None:
    out = edit(editor, box, command="str_replace", path="mod.py", old_str="def twice(y):", new_str="x").output
    assert out.startswith("old_str does not occur in mod.py; no change was made.")
    assert out.endswith("Lines that look similar:\n5  def twice(x):")
    out = edit(editor, box, command="str_replace", path="mod.py", old_str="return a+b", new_str="x").output
    assert out.endswith("Lines that look similar:\n2      return a + b\n6      return add(x, x)")
    assert content(box) == MODULE


def test_insert_at_the_top_and_the_end(editor: EditTool, box: TaskContainer) -> None:
    out = edit(editor, box, command="insert", path="mod.py", insert_line=0, new_str='"""Math."""\n').output
    assert out.startswith('Edited mod.py: inserted 1 line after line 0. Lines 1-5 now read:\n1  """Math."""')
    edit(editor, box, command="insert", path="mod.py", insert_line=7, new_str="\n\ndef none():\n    pass")
    assert content(box) == '"""Math."""\n' + MODULE + "\n\ndef none():\n    pass\n"
    out = edit(editor, box, command="insert", path="mod.py", insert_line=99, new_str="x = 1").output
    assert out == "insert_line must be between 0 (the top) and 11 (the end); got 99."
    assert "needs insert_line" in edit(editor, box, command="insert", path="mod.py", new_str="x").output


def test_create_refuses_an_existing_file_and_undo_removes_a_new_one(editor: EditTool, box: TaskContainer) -> None:
    out = edit(editor, box, command="create", path="mod.py", file_text="x = 1\n").output
    assert out == "mod.py already exists: view it and change it with str_replace or insert."
    assert edit(editor, box, command="create", path="pkg/new.py", file_text="a = 1\nb = 2\n").output == (
        "Created pkg/new.py (2 lines)."
    )
    assert content(box, "pkg/new.py") == "a = 1\nb = 2\n"
    assert box.run("stat -c %a /testbed/pkg/new.py").output.strip() == "644"
    assert "needs file_text" in edit(editor, box, command="create", path="other.py").output
    assert "removed" in edit(editor, box, command="undo", path="pkg/new.py").output
    assert box.run("test -e /testbed/pkg/new.py").exit_code == 1


def test_undo_goes_back_one_edit_at_a_time(editor: EditTool, box: TaskContainer) -> None:
    edit(editor, box, command="str_replace", path="mod.py", old_str="a + b", new_str="a - b")
    edit(editor, box, command="str_replace", path="mod.py", old_str="add(x, x)", new_str="add(x, 2 * x)")
    out = edit(editor, box, command="undo", path="mod.py").output
    assert out.startswith("Undid the last edit of mod.py. Lines 2-6 now read:") and out.endswith("return add(x, x)")
    assert content(box) == MODULE.replace("a + b", "a - b")
    edit(editor, box, command="undo", path="mod.py")
    assert content(box) == MODULE
    assert edit(editor, box, command="undo", path="mod.py").output == "There is no edit of mod.py to undo."
    assert EditTool().run(EditTool.Args(command="undo", path="mod.py"), box).output.startswith("There is no edit")


def test_an_edit_that_breaks_the_syntax_is_not_applied(editor: EditTool, box: TaskContainer) -> None:
    out = edit(editor, box, command="str_replace", path="mod.py", old_str="def twice(x):", new_str="def twice(x:")
    assert out.output.startswith(
        "The edit was not applied: it would leave a syntax error in mod.py at line 5, column 10: "
        "'(' was never closed.\n"
    )
    assert "5  def twice(x:\n            ^\n" in out.output and out.output.endswith(
        "The file is unchanged; fix the edit and try again."
    )
    out = edit(editor, box, command="insert", path="mod.py", insert_line=2, new_str="      oops = 1")
    assert "line 3, column 6: unexpected indent" in out.output
    assert content(box) == MODULE
    assert edit(editor, box, command="undo", path="mod.py").output == "There is no edit of mod.py to undo."
    # A file that was broken already may be edited: the edit may be the first step of a fix.
    box.write_file("broken.py", "def f(:\n    pass\n")
    out = edit(editor, box, command="str_replace", path="broken.py", old_str="pass", new_str="return 1")
    assert out.output.startswith("Edited broken.py")
    assert "syntax error" in edit(editor, box, command="create", path="new_broken.py", file_text="x = (\n").output
    # Other files are not checked.
    assert edit(editor, box, command="create", path="notes.txt", file_text="x = (\n").output.startswith("Created")


def test_mistakes_are_observations(editor: EditTool, box: TaskContainer) -> None:
    box.write_file("blob.bin", b"\0\1\2" * 10)
    box.write_file("latin.txt", "caf\xe9\n".encode("latin-1"))
    cases = {
        "missing.py": "missing.py: no such file; use command=create to make a new one.",
        "pkg": "pkg is a directory; give a file.",
        "blob.bin": "blob.bin is a binary file; it cannot be edited with this tool.",
        "latin.txt": "latin.txt is not UTF-8 text; edit it with bash instead.",
        "../etc/passwd": "../etc/passwd: outside the repository (/testbed); give a path inside it.",
    }
    box.run("mkdir -p /testbed/pkg")
    for path, message in cases.items():
        assert edit(editor, box, command="str_replace", path=path, old_str="a", new_str="b").output == message
    assert "needs old_str" in edit(editor, box, command="str_replace", path="mod.py", new_str="b").output


def test_edits_of_a_huge_file(editor: EditTool, box: TaskContainer) -> None:
    lines = [f"value_{i} = {i}  # {'padding ' * 6}" for i in range(90_000)]
    box.write_file("big.py", "\n".join(lines) + "\n")
    started = time.monotonic()
    out = edit(editor, box, command="str_replace", path="big.py", old_str="value_89990 = 89990", new_str="value = 0")
    assert time.monotonic() - started < 10
    assert "\n89991  value = 0  # padding" in out.output and len(out.output) < 2000
    assert box.run("sed -n 89991p /testbed/big.py").output.startswith("value = 0  #")
    out = edit(editor, box, command="insert", path="big.py", insert_line=90_000, new_str="tail = 1")
    assert box.run("tail -n 1 /testbed/big.py").output == "tail = 1\n" and out.output.endswith("90001  tail = 1")
