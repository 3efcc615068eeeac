"""The tamper guard: find the hunks of a model patch that touch test infrastructure.

A patch can turn failing tests into passing ones without fixing anything: a `conftest.py` hook
that rewrites failed reports, pytest settings (`addopts = -p my_plugin`), interpreter start-up
hooks (`sitecustomize.py`, `usercustomize.py`, `*.pth`), the repository's test runner, or the
test files the task's own test patch brings, or a symbolic link that points out of the
repository (at the test environment's files, or the grader's). The official harness grades such a patch as
written. Atlas finds those hunks before grading; the caller strips them, refuses the instance,
or grades as written, and reports them either way.

Whole files count for every rule except the configuration files that hold more than test
settings (pyproject.toml, setup.cfg, tox.ini): there only the hunks that change a pytest
section (`[tool.pytest…]`, `[tool:pytest]`, `[pytest]`) or mention `addopts` count.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel

from atlas_agent.grading.unified_diff import FileDiff, Hunk, Patch, parse_patch, split_lines
from atlas_agent.tools.test_command import runner_scripts

TamperMode = Literal["strip", "refuse", "off"]

TEST_FILE = "test file of the task"
CONFTEST = "conftest.py"
PYTEST_CONFIG = "pytest settings"
STARTUP_HOOK = "interpreter start-up hook"
TEST_RUNNER = "test runner of the task"
ESCAPING_LINK = "symbolic link out of the repository"

# files that hold test settings and nothing else
PYTEST_ONLY_CONFIGS = frozenset({"pytest.ini", ".pytest.ini", "pytest.toml", ".pytest.toml"})
# files whose pytest sections are test settings, the rest not
SHARED_CONFIGS = frozenset({"pyproject.toml", "setup.cfg", "tox.ini"})
STARTUP_MODULES = frozenset({"sitecustomize", "usercustomize"})
_SECTION = re.compile(r"^\s*\[\[?([^\[\]]+)\]\]?\s*(?:[#;].*)?$")
_PYTEST_WORDS = re.compile(r"addopts|tool[.:]pytest")


@dataclass(frozen=True)
class TamperRules:
    """What counts as test infrastructure for one task, beside the fixed rules."""

    test_files: frozenset[str] = frozenset()
    runners: frozenset[str] = frozenset()


class InfraEdit(BaseModel):
    """One piece of a patch that touches test infrastructure: a whole file's diff, or one hunk."""

    path: str
    reason: str
    diff: str


@dataclass(frozen=True)
class Screening:
    patch: str  # the patch without its infrastructure edits; the input itself when there are none
    edits: tuple[InfraEdit, ...]


def rules_for(test_patch: str, eval_script: str | None) -> TamperRules:
    touched = {path for diff in parse_patch(test_patch).files for path in diff.paths}
    return TamperRules(test_files=frozenset(touched), runners=runner_scripts(eval_script))


def file_reason(path: str, rules: TamperRules) -> str | None:
    """Why a whole file is test infrastructure, or None when it is not (or only partly)."""
    name = posixpath.basename(path)
    parents = path.split("/")[:-1]
    if path in rules.test_files:
        return TEST_FILE
    if path in rules.runners:
        return TEST_RUNNER
    if name == "conftest.py":
        return CONFTEST
    if name.removesuffix(".py") in STARTUP_MODULES or name.endswith(".pth") or STARTUP_MODULES & set(parents):
        return STARTUP_HOOK
    if name in PYTEST_ONLY_CONFIGS:
        return PYTEST_CONFIG
    return None


def link_escapes(diff: FileDiff) -> bool:
    """Whether the diff makes a symbolic link (git mode 120000) whose target is absolute or climbs
    out of the repository."""
    if not any(line.startswith(("new file mode 120000", "new mode 120000")) for line in diff.header):
        return False
    added = [line[1:].rstrip("\n") for hunk in diff.hunks for line in hunk.lines if line.startswith("+")]
    target = added[0] if added else ""
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(diff.path), target))
    return posixpath.isabs(target) or resolved == ".." or resolved.startswith("../")


def base_files_needed(patch: str) -> list[str]:
    """Files whose text at the base commit `screen_patch` needs: modified shared configuration files."""
    return sorted(
        {
            diff.old_path
            for diff in parse_patch(patch).files
            if diff.old_path and diff.hunks and posixpath.basename(diff.old_path) in SHARED_CONFIGS
        }
    )


def screen_patch(patch: str, rules: TamperRules, base_texts: Mapping[str, str]) -> Screening:
    """Split `patch` into what may be graded and the edits of test infrastructure.

    `base_texts` holds the base commit's text of the files `base_files_needed` names; without
    one, sections are read from the hunks alone.
    """
    parsed = parse_patch(patch)
    kept: list[FileDiff] = []
    edits: list[InfraEdit] = []
    for diff in parsed.files:
        reason = next((r for p in diff.paths if (r := file_reason(p, rules)) is not None), None)
        if reason is None and link_escapes(diff):
            reason = ESCAPING_LINK
        if reason is None and _is_shared_config(diff) and not _analysable(diff):
            reason = PYTEST_CONFIG
        if reason is not None:
            edits.append(InfraEdit(path=diff.path, reason=reason, diff=diff.text()))
            continue
        flagged = pytest_hunks(diff, base_texts.get(diff.old_path or "")) if _is_shared_config(diff) else set()
        edits.extend(
            InfraEdit(path=diff.path, reason=PYTEST_CONFIG, diff=diff.head_text() + diff.hunks[i].text())
            for i in sorted(flagged)
        )
        remaining = without_hunks(diff, flagged)
        if remaining is not None:
            kept.append(remaining)
    if not edits:
        return Screening(patch=patch, edits=())
    text = Patch(parsed.preamble, tuple(kept)).text() if kept else ""
    return Screening(patch=text, edits=tuple(edits))


def _is_shared_config(diff: FileDiff) -> bool:
    return any(posixpath.basename(path) in SHARED_CONFIGS for path in diff.paths)


def _analysable(diff: FileDiff) -> bool:
    """Text edits of one file in place; a binary diff, rename or copy of a config counts whole."""
    binary = any(line.startswith(("GIT binary patch", "Binary files ")) for line in diff.header)
    moved = diff.old_path is not None and diff.new_path is not None and diff.old_path != diff.new_path
    return not binary and not moved


def without_hunks(diff: FileDiff, dropped: set[int]) -> FileDiff | None:
    """`diff` less the hunks at `dropped`, later ones renumbered; None when no hunk is left."""
    if not dropped:
        return diff
    hunks: list[Hunk] = []
    shift = 0
    for index, hunk in enumerate(diff.hunks):
        if index in dropped:
            shift += hunk.new_len - hunk.old_len
        else:
            hunks.append(hunk.moved_to(hunk.new_start - shift) if shift else hunk)
    if not hunks:
        return None
    return FileDiff(diff.header, tuple(hunks), diff.trailer, diff.old_path, diff.new_path)


def pytest_hunks(diff: FileDiff, base: str | None) -> set[int]:
    """Indexes of the hunks that change what the pytest sections hold.

    A changed line counts when it lies in a pytest section on its side, or when it sits where one
    is on the other side (a header added inside a pytest section ends it early; a header removed
    after one extends it); an unchanged line counts when the hunk moves it into or out of one.
    """
    old_lines = split_lines(base) if base is not None else _lines_seen_in(diff.hunks)
    new_lines, new_starts = _apply(old_lines, diff.hunks)
    old_marks, new_marks = _sections(old_lines), _sections(new_lines)
    flagged: set[int] = set()
    for index, hunk in enumerate(diff.hunks):
        old_at, new_at = _old_begin(hunk), new_starts[index]
        for line in hunk.lines:
            old_mark, new_mark = _at(old_marks, old_at), _at(new_marks, new_at)
            if line.startswith("\\"):
                continue
            if line.startswith(("-", "+")):
                hit = old_mark or new_mark or _PYTEST_WORDS.search(line) is not None
            else:
                hit = old_mark != new_mark
            if hit:
                flagged.add(index)
                break
            old_at += not line.startswith("+")
            new_at += not line.startswith("-")
    return flagged


def _old_begin(hunk: Hunk) -> int:
    """0-based index of the hunk's first old line ("-5,0" inserts after line 5)."""
    return hunk.old_start if hunk.old_len == 0 else hunk.old_start - 1


def _is_context(line: str) -> bool:
    return line[:1] in (" ", "\n", "\r")


def _lines_seen_in(hunks: Sequence[Hunk]) -> list[str]:
    """A stand-in for an unknown base text: the old lines the hunks show, blanks elsewhere."""
    lines: list[str] = []
    for hunk in hunks:
        at = _old_begin(hunk)
        for line in hunk.lines:
            if _is_context(line) or line.startswith("-"):
                lines.extend([""] * (at + 1 - len(lines)))
                lines[at] = line[1:]
                at += 1
    return lines


def _apply(old: list[str], hunks: Sequence[Hunk]) -> tuple[list[str], list[int]]:
    """The new text's lines, and where each hunk begins in it (0-based)."""
    new: list[str] = []
    starts: list[int] = []
    cursor = 0
    for hunk in hunks:
        begin = max(_old_begin(hunk), cursor)
        new.extend(old[cursor:begin])
        starts.append(len(new))
        new.extend(line[1:] for line in hunk.lines if _is_context(line) or line.startswith("+"))
        cursor = begin + sum(1 for line in hunk.lines if _is_context(line) or line.startswith("-"))
    new.extend(old[cursor:])
    return new, starts


def _sections(lines: list[str]) -> list[bool]:
    """Per line: whether it lies in (or heads) a pytest section."""
    inside = False
    marks: list[bool] = []
    for line in lines:
        match = _SECTION.match(line)
        if match:
            inside = _is_pytest_section(match.group(1))
        marks.append(inside)
    return marks


def _is_pytest_section(name: str) -> bool:
    key = re.sub(r"\s*\.\s*", ".", name.replace('"', "").replace("'", "").strip())
    return key in ("pytest", "tool:pytest", "tool.pytest") or key.startswith("tool.pytest.")


def _at(marks: list[bool], index: int) -> bool:
    return 0 <= index < len(marks) and marks[index]
