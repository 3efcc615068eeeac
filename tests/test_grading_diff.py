"""Splitting patches into files and hunks: every kind of git diff, and text that is no diff at all."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from atlas_agent.grading.unified_diff import parse_patch, split_lines

MODIFY = """\
diff --git a/pkg/mod.py b/pkg/mod.py
index 1111111..2222222 100644
--- a/pkg/mod.py
+++ b/pkg/mod.py
@@ -1,3 +1,3 @@ def top():
 a = 1
-b = 2
+b = 3
 c = 4
@@ -10 +10,2 @@ class Thing:
 x = 1
+y = 2
"""
NEW_FILE = """\
diff --git a/conftest.py b/conftest.py
new file mode 100644
index 0000000..3333333
--- /dev/null
+++ b/conftest.py
@@ -0,0 +1,2 @@
+import pytest
+-- not a header, a line that starts with "--"
"""
DELETED = """\
diff --git a/old.txt b/old.txt
deleted file mode 100644
index 4444444..0000000
--- a/old.txt
+++ /dev/null
@@ -1,2 +0,0 @@
-one
-two
"""
RENAME = """\
diff --git a/tests/conftest.py b/tests/helpers.py
similarity index 100%
rename from tests/conftest.py
rename to tests/helpers.py
"""
BINARY = """\
diff --git a/data/blob.bin b/data/blob.bin
new file mode 100644
index 0000000000000000000000000000000000000000..5555555555555555555555555555555555555555
GIT binary patch
literal 4
LcmZQzWMT#Y01f~L

literal 0
HcmV?d00001

"""
BINARY_SHORT = "diff --git a/x.png b/x.png\nindex 1..2 100644\nBinary files a/x.png and b/x.png differ\n"
MODE_ONLY = "diff --git a/bin/test b/bin/test\nold mode 100644\nnew mode 100755\n"
NO_NEWLINE = """\
diff --git a/a.txt b/a.txt
--- a/a.txt
+++ b/a.txt
@@ -1 +1 @@
-old
\\ No newline at end of file
+new
\\ No newline at end of file
"""
PLAIN = """\
--- a/setup.cfg\t2024-01-01 00:00:00
+++ b/setup.cfg\t2024-01-02 00:00:00
@@ -1,2 +1,2 @@
 [metadata]
-name = x
+name = y
"""
QUOTED = """\
diff --git "a/dir/caf\\303\\251 file.py" "b/dir/caf\\303\\251 file.py"
new file mode 100644
--- /dev/null
+++ "b/dir/caf\\303\\251 file.py"
@@ -0,0 +1 @@
+x = 1
"""
QUOTED_BINARY = 'diff --git "a/caf\\303\\251.bin" "b/caf\\303\\251.bin"\nindex 1..2 100644\nBinary files differ\n'
SPACED_MODE_ONLY = "diff --git a/my dir/run tests.sh b/my dir/run tests.sh\nold mode 100644\nnew mode 100755\n"
CASES = {
    "modify": MODIFY,
    "new file": NEW_FILE,
    "deleted": DELETED,
    "rename": RENAME,
    "binary": BINARY,
    "binary (no data)": BINARY_SHORT,
    "mode only": MODE_ONLY,
    "no newline": NO_NEWLINE,
    "plain unified": PLAIN,
    "quoted path": QUOTED,
    "spaces, no hunk": SPACED_MODE_ONLY,
    "quoted, no hunk": QUOTED_BINARY,
}


@pytest.mark.parametrize("text", CASES.values(), ids=CASES.keys())
def test_parsing_then_rendering_gives_the_text_back(text: str) -> None:
    assert parse_patch(text).text() == text


def test_everything_at_once_and_odd_input_round_trip() -> None:
    combined = "From abc Mon Sep 17 00:00:00 2001\nSubject: fix\n\n" + "".join(CASES.values()) + "-- \n2.39.5\n"
    parsed = parse_patch(combined)
    assert parsed.text() == combined
    assert len(parsed.files) == len(CASES)
    assert parsed.preamble[1] == "Subject: fix\n"
    for text in ("", "no diff here\n", "@@ -1 +1 @@\n-a\n+b\n", "diff --git a/x b/x\n", "x\r\ny\r\n", "a\fb\n"):
        assert parse_patch(text).text() == text


def test_paths_of_every_kind() -> None:
    paths = {name: (f.old_path, f.new_path) for name, text in CASES.items() for f in parse_patch(text).files}
    assert paths == {
        "modify": ("pkg/mod.py", "pkg/mod.py"),
        "new file": (None, "conftest.py"),
        "deleted": ("old.txt", None),
        "rename": ("tests/conftest.py", "tests/helpers.py"),
        "binary": (None, "data/blob.bin"),
        "binary (no data)": ("x.png", "x.png"),
        "mode only": ("bin/test", "bin/test"),
        "no newline": ("a.txt", "a.txt"),
        "plain unified": ("setup.cfg", "setup.cfg"),
        "quoted path": (None, "dir/café file.py"),
        "spaces, no hunk": ("my dir/run tests.sh", "my dir/run tests.sh"),
        "quoted, no hunk": ("café.bin", "café.bin"),
    }
    assert parse_patch(RENAME).files[0].paths == ("tests/conftest.py", "tests/helpers.py")


def test_hunks_are_counted_not_guessed() -> None:
    [modify] = parse_patch(MODIFY).files
    assert [(h.old_start, h.old_len, h.new_start, h.new_len) for h in modify.hunks] == [(1, 3, 1, 3), (10, 1, 10, 2)]
    [new] = parse_patch(NEW_FILE).files
    # a body line that starts with "--" is a removed or added line, never a new file header
    assert len(new.hunks) == 1 and new.hunks[0].lines[-1].startswith("+-- not a header")
    [nonl] = parse_patch(NO_NEWLINE).files
    assert nonl.hunks[0].lines[-1] == "\\ No newline at end of file\n" and not nonl.trailer
    [binary] = parse_patch(BINARY).files
    assert not binary.hunks and "GIT binary patch\n" in binary.header


def test_renumbering_a_hunk_keeps_the_rest_of_its_header() -> None:
    hunk = parse_patch(MODIFY).files[0].hunks[1]
    moved = hunk.moved_to(7)
    assert moved.header == "@@ -10 +7,2 @@ class Thing:\n" and moved.new_start == 7 and moved.lines == hunk.lines


def test_lines_split_only_at_newlines() -> None:
    assert split_lines("a\r\nb\x0cc\nd") == ["a\r\n", "b\x0cc\n", "d"]
    assert split_lines("") == []


def test_a_real_git_diff_with_every_change_kind_round_trips(tmp_path: Path) -> None:
    repo = _git_repo(tmp_path, {"keep.py": "a = 1\n" * 20, "gone.txt": "bye\n", "moved.py": "m = 1\n"})
    (repo / "keep.py").write_text("a = 1\n" * 5 + "a = 2\n" + "a = 1\n" * 14)
    (repo / "gone.txt").unlink()
    (repo / "moved.py").rename(repo / "renamed.py")
    (repo / "new.bin").write_bytes(bytes(range(256)))
    (repo / "script.sh").write_text("#!/bin/sh\n")
    (repo / "script.sh").chmod(0o755)
    patch = _git(repo, "add", "-A") or _git(repo, "diff", "--cached", "--binary", "-M", "HEAD")
    parsed = parse_patch(patch)
    assert parsed.text() == patch
    assert {f.path for f in parsed.files} == {"keep.py", "gone.txt", "renamed.py", "new.bin", "script.sh"}


def _git_repo(root: Path, files: dict[str, str]) -> Path:
    repo = root / "repo"
    repo.mkdir()
    for name, text in files.items():
        (repo / name).write_text(text)
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "base")
    return repo


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True).stdout
