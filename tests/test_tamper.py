"""The tamper guard's pure part: which hunks of a patch touch test infrastructure, and the patch without them.

Patches come from real `git diff`s over a small repository shaped like the task repos, and every
stripped patch is checked with `git apply` against the base it was made from.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from atlas_agent.grading.tamper import (
    CONFTEST,
    ESCAPING_LINK,
    PYTEST_CONFIG,
    STARTUP_HOOK,
    TEST_FILE,
    TEST_RUNNER,
    Screening,
    TamperRules,
    base_files_needed,
    file_reason,
    pytest_hunks,
    rules_for,
    screen_patch,
)
from atlas_agent.grading.unified_diff import parse_patch
from atlas_agent.tasks import load_tasks
from atlas_agent.tools.test_command import runner_scripts

FILLER = "".join(f"# filler {n}\n" for n in range(12))
PYPROJECT = (
    '[project]\nname = "pkg"\nversion = "0.1.0"\n'
    + FILLER
    + '[tool.pytest.ini_options]\npythonpath = ["."]\n'
    + FILLER
    + "[tool.ruff]\nline-length = 100\n"
)
SETUP_CFG = "[metadata]\nname = pkg\n" + FILLER + "[tool:pytest]\ntestpaths = tests\n" + FILLER + "[flake8]\nmax = 1\n"
TOX_INI = "[tox]\nenvlist = py311\n" + FILLER + "[pytest]\nmarkers = slow\n" + FILLER + "[testenv]\ncommands = pytest\n"
BASE = {
    "pkg/__init__.py": "def answer():\n    return 41\n",
    "tests/test_pkg.py": "from pkg import answer\n\n\ndef test_answer():\n    assert answer() == 42\n",
    "pyproject.toml": PYPROJECT,
    "setup.cfg": SETUP_CFG,
    "tox.ini": TOX_INI,
    "tests/runtests.py": "print('run')\n",
}
RULES = TamperRules(test_files=frozenset({"tests/test_pkg.py"}), runners=frozenset({"tests/runtests.py"}))
FLIP_HOOK = (
    "import pytest\n\n\n@pytest.hookimpl(hookwrapper=True)\ndef pytest_runtest_makereport(item, call):\n"
    "    report = (yield).get_result()\n    if report.failed:\n        report.outcome = 'passed'\n"
)
SOURCE_FIX = {"pkg/__init__.py": "def answer():\n    return 42\n"}


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    for name, text in BASE.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    _git(root, "init", "-q")
    _git(root, "add", "-A")
    _git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "base")
    return root


def make_patch(repo: Path, writes: dict[str, str | None]) -> str:
    """Edit the working tree (None deletes), diff it against the base the way Atlas does, then reset."""
    for name, text in writes.items():
        path = repo / name
        if text is None:
            path.unlink()
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    _git(repo, "add", "-A")
    patch = _git(repo, "diff", "--cached", "--binary", "--no-renames", "HEAD")
    _git(repo, "reset", "-q", "--hard", "HEAD")
    _git(repo, "clean", "-qfdx")
    return patch


def applies(repo: Path, patch: str) -> bool:
    result = subprocess.run(["git", "apply", "--check", "-"], cwd=repo, input=patch, text=True, capture_output=True)
    return result.returncode == 0


def screen(repo: Path, patch: str) -> Screening:
    base = {path: (repo / path).read_text() for path in base_files_needed(patch) if (repo / path).exists()}
    return screen_patch(patch, RULES, base)


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("conftest.py", CONFTEST),
        ("tests/unit/conftest.py", CONFTEST),
        ("tests/test_pkg.py", TEST_FILE),
        ("tests/runtests.py", TEST_RUNNER),
        ("sitecustomize.py", STARTUP_HOOK),
        ("src/usercustomize.py", STARTUP_HOOK),
        ("sitecustomize/__init__.py", STARTUP_HOOK),
        ("lib/zz-flip.pth", STARTUP_HOOK),
        ("pytest.ini", PYTEST_CONFIG),
        ("sub/.pytest.ini", PYTEST_CONFIG),
        ("pytest.toml", PYTEST_CONFIG),
        ("pkg/__init__.py", None),
        ("tests/test_other.py", None),
        ("pyproject.toml", None),  # only its pytest hunks count
        ("docs/conftest.txt", None),
        ("pkg/site_customize.py", None),
    ],
)
def test_whole_file_rules(path: str, reason: str | None) -> None:
    assert file_reason(path, RULES) == reason


def test_a_clean_patch_comes_back_unchanged(repo: Path) -> None:
    patch = make_patch(repo, {**SOURCE_FIX, "README.md": "new\n", "pyproject.toml": PYPROJECT.replace("0.1.0", "0.2")})
    screening = screen(repo, patch)
    assert screening.patch == patch and screening.edits == ()


@pytest.mark.parametrize(
    ("link", "target", "escapes"),
    [
        ("pkg/data", "/etc/passwd", True),
        ("pkg/up", "../../outside", True),
        ("top", "..", True),
        ("pkg/sibling", "../README.md", False),
        ("pkg/here", "__init__.py", False),
    ],
)
def test_a_symbolic_link_out_of_the_repository_is_flagged(repo: Path, link: str, target: str, escapes: bool) -> None:
    (repo / link).parent.mkdir(parents=True, exist_ok=True)
    (repo / link).symlink_to(target)
    patch = make_patch(repo, SOURCE_FIX)
    screening = screen(repo, patch)
    assert [(edit.path, edit.reason) for edit in screening.edits] == ([(link, ESCAPING_LINK)] if escapes else [])
    assert "def answer" in screening.patch, "the fix itself is kept"
    assert (f"\n+{target}\n" in screening.patch) is not escapes, "an escaping link is not graded (strip)"


def test_a_conftest_flip_on_an_empty_fix_leaves_nothing_to_grade(repo: Path) -> None:
    patch = make_patch(repo, {"conftest.py": FLIP_HOOK})
    screening = screen(repo, patch)
    assert screening.patch == ""
    [edit] = screening.edits
    assert (edit.path, edit.reason) == ("conftest.py", CONFTEST)
    assert "report.outcome = 'passed'" in edit.diff and edit.diff.startswith("diff --git a/conftest.py")


@pytest.mark.parametrize(
    ("writes", "reason"),
    [
        ({"tests/conftest.py": FLIP_HOOK}, CONFTEST),
        ({"tests/test_pkg.py": "def test_answer():\n    pass\n"}, TEST_FILE),
        ({"tests/test_pkg.py": None}, TEST_FILE),
        ({"tests/runtests.py": "print('all passed')\n"}, TEST_RUNNER),
        ({"sitecustomize.py": "import builtins\n"}, STARTUP_HOOK),
        ({"flip.pth": "import flip\n"}, STARTUP_HOOK),
        ({"pytest.ini": "[pytest]\naddopts = -p flip\n"}, PYTEST_CONFIG),
        ({"pyproject.toml": None}, PYTEST_CONFIG),
    ],
    ids=["new conftest", "test edit", "test deleted", "runner", "sitecustomize", "pth", "pytest.ini", "config deleted"],
)
def test_infrastructure_files_are_stripped_and_the_fix_kept(repo: Path, writes: dict, reason: str) -> None:
    patch = make_patch(repo, {**SOURCE_FIX, **writes})
    screening = screen(repo, patch)
    assert {edit.reason for edit in screening.edits} == {reason}
    assert screening.patch == make_patch(repo, SOURCE_FIX)


def test_a_binary_conftest_and_a_renamed_one_are_caught(repo: Path) -> None:
    binary = "diff --git a/conftest.py b/conftest.py\nnew file mode 100644\nindex 0000000..1111111\nGIT binary patch\n"
    binary += "literal 4\nLcmZQzWMT#Y01f~L\n\nliteral 0\nHcmV?d00001\n\n"
    renamed = "diff --git a/conftest.py b/helpers.py\nsimilarity index 100%\n"
    renamed += "rename from conftest.py\nrename to helpers.py\n"
    renamed_config = "diff --git a/setup.cfg b/old/setup.cfg\nsimilarity index 100%\n"
    renamed_config += "rename from setup.cfg\nrename to old/setup.cfg\n"
    fix = make_patch(repo, SOURCE_FIX)
    for infra, reason in ((binary, CONFTEST), (renamed, CONFTEST), (renamed_config, PYTEST_CONFIG)):
        screening = screen_patch(infra + fix, RULES, {})
        assert [(e.reason, e.diff) for e in screening.edits] == [(reason, infra)]
        assert screening.patch == fix


@pytest.mark.parametrize(
    ("name", "section_line", "setting"),
    [
        ("pyproject.toml", 'pythonpath = ["."]\n', 'pythonpath = ["."]\naddopts = "-p pkg.flip"\n'),
        ("setup.cfg", "testpaths = tests\n", "testpaths = tests\naddopts = -p pkg.flip\n"),
        ("tox.ini", "markers = slow\n", "markers = slow\n    flaky\n"),
    ],
)
def test_in_shared_configs_only_the_pytest_hunk_is_stripped(
    repo: Path, name: str, section_line: str, setting: str
) -> None:
    base = BASE[name]
    edited = base.replace(section_line, setting)
    # one hunk in the section above the pytest one and one in the section below it: both are kept
    edited = edited.replace("# filler 0\n", "# filler zero\n", 1) + "# after\n"
    patch = make_patch(repo, {**SOURCE_FIX, name: edited})
    assert len(parse_patch(patch).files[1].hunks) == 3, patch
    screening = screen(repo, patch)
    [edit] = screening.edits
    assert edit.reason == PYTEST_CONFIG and edit.path == name
    assert setting.splitlines()[-1] in edit.diff and "# after" not in edit.diff and "zero" not in edit.diff
    assert applies(repo, screening.patch), screening.patch
    _git(repo, "apply", "-", stdin=screening.patch)
    # what was applied: the fix and the other hunks, not the pytest setting
    assert (repo / name).read_text() == edited.replace(setting, section_line)
    assert (repo / "pkg/__init__.py").read_text() == SOURCE_FIX["pkg/__init__.py"]


def test_a_hunk_far_below_its_section_header_is_still_in_that_section(repo: Path) -> None:
    long_section = PYPROJECT.replace('pythonpath = ["."]\n', 'pythonpath = ["."]\n' + FILLER * 2)
    base = make_patch(repo, {"pyproject.toml": long_section})
    _git(repo, "apply", "-", stdin=base)
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "long section")
    patch = make_patch(repo, {"pyproject.toml": long_section.replace("# filler 11\n# filler 0\n", "timeout = 1\n", 1)})
    hunk_text = parse_patch(patch).files[0].hunks[0].text()
    assert "tool.pytest" not in hunk_text, "the header is out of the hunk's context"
    assert [e.reason for e in screen(repo, patch).edits] == [PYTEST_CONFIG]
    # without the base text only the hunk itself can be read: no header, no addopts, nothing flagged
    assert screen_patch(patch, RULES, {}).edits == ()


@pytest.mark.parametrize(
    ("edit", "flagged"),
    [
        (lambda t: t.replace("[tool.ruff]", "[tool.pytest.ini_options.markers]"), True),  # a new pytest table
        (lambda t: t.replace("[tool.pytest.ini_options]\n", ""), True),  # header removed
        (lambda t: t + '\n[tool."pytest"]\nminversion = "8"\n', True),  # quoted key, pytest 9 table
        (lambda t: t.replace("line-length = 100", "line-length = 120"), False),
        (lambda t: t.replace("[tool.ruff]\n", '[tool.ruff]\nexclude = ["x"]\n'), False),  # first line of a section
        (lambda t: t.replace("[tool.ruff]\n", "[tool.black]\n[tool.ruff]\n"), False),  # a table after pytest's
        (lambda t: t.replace('pythonpath = ["."]\n', '[tool.other]\npythonpath = ["."]\n'), True),  # ends it early
        (lambda t: t.replace("[tool.ruff]\n", ""), True),  # its settings would join the pytest section
        (lambda t: t.replace('name = "pkg"', 'name = "pkg"\naddopts = "x"'), True),  # addopts anywhere
        (lambda t: t.replace('version = "0.1.0"', 'tool.pytest.ini_options = {addopts = "-p x"}'), True),
    ],
)
def test_pyproject_sections(repo: Path, edit: Callable[[str], str], flagged: bool) -> None:
    patch = make_patch(repo, {"pyproject.toml": edit(PYPROJECT)})
    [diff] = parse_patch(patch).files
    assert bool(pytest_hunks(diff, PYPROJECT)) is flagged


def test_a_new_config_file_is_read_from_its_own_lines(repo: Path) -> None:
    patch = make_patch(repo, {"sub/setup.cfg": "[metadata]\nname = sub\n" + FILLER + "[tool:pytest]\naddopts=-x\n"})
    assert base_files_needed(patch) == []
    [edit] = screen_patch(patch, RULES, {}).edits
    assert edit.path == "sub/setup.cfg" and screen_patch(patch, RULES, {}).patch == ""


def test_base_files_needed_names_modified_shared_configs_only(repo: Path) -> None:
    patch = make_patch(
        repo, {"setup.cfg": SETUP_CFG + "[x]\n", "tox.ini": None, "README.md": "x\n", "conftest.py": FLIP_HOOK}
    )
    assert base_files_needed(patch) == ["setup.cfg", "tox.ini"]


def test_rules_come_from_the_test_patch_and_the_eval_script() -> None:
    task = next(t for t in load_tasks("atlas-mini") if t.instance_id == "atlas__tally-2")
    rules = rules_for(task.test_patch, task.eval_script)
    assert rules.test_files == {"tests/test_exchange.py"} and rules.runners == frozenset()
    command = task.test_command
    assert "pytest -rA" in command and command.endswith("tests/test_exchange.py")


@pytest.mark.parametrize(
    ("command", "runners"),
    [
        ("./tests/runtests.py --verbosity 2 --settings=test_sqlite --parallel 1 utils_tests", {"tests/runtests.py"}),
        ("PYTHONWARNINGS='ignore::UserWarning' bin/test -C --verbose sympy/core/tests/x.py", {"bin/test"}),
        ("pytest -rA tests/test_x.py", set()),
        ("python -m pytest -rA tests/test_x.py", set()),
        ("python3 -W ignore -u tests/run.py --fast", {"tests/run.py"}),
        ("tox --current-env -epy39 -v -- tests/test_x.py", set()),
        ("timeout 600 /testbed/scripts/check.sh && echo done", {"scripts/check.sh"}),
        ("env LANG=C.UTF-8 bash ci/test.sh 2>&1 | tee log", {"ci/test.sh"}),
        ("/usr/bin/pytest x; python -c 'import x'", set()),
        ("./../outside.sh", set()),
        ("echo 'unbalanced", set()),
    ],
)
def test_the_test_runner_is_read_off_the_eval_script(command: str, runners: set[str]) -> None:
    script = f"#!/bin/bash\nset -uxo pipefail\ncd /testbed\n./setup.sh\n: '>>>>> Start Test Output'\n{command}\n"
    script += ": '>>>>> End Test Output'\n./teardown.sh\n"
    assert runner_scripts(script) == runners
    assert runner_scripts(None) == frozenset() and runner_scripts("no markers\n./x.sh\n") == frozenset()


def _git(repo: Path, *args: str, stdin: str | None = None) -> str:
    return subprocess.run(["git", *args], cwd=repo, input=stdin, capture_output=True, text=True, check=True).stdout
