"""The task's test command taken apart and retargeted, and test output read with the official parsers
(pure: no container). The runners are the ones SWE-bench Verified's eval scripts use."""

from __future__ import annotations

import pytest

from atlas_agent.runtime.environment import setup_lines
from atlas_agent.tasks.task import test_command_of
from atlas_agent.tools.run_tests import RunTestsTool, summarize
from atlas_agent.tools.test_command import TargetError, parse_test_command
from atlas_agent.tools.test_runner import TestRun, TestRunner, official_parser

DJANGO = (
    "./tests/runtests.py --verbosity 2 --settings=test_sqlite --parallel 1 queries.tests model_fields.test_jsonfield"
)
SYMPY = (
    "PYTHONWARNINGS='ignore::UserWarning,ignore::SyntaxWarning' bin/test -C --verbose sympy/core/tests/test_basic.py"
)

EVAL_SCRIPT = """\
#!/bin/bash
set -uxo pipefail
source /opt/miniconda3/bin/activate
conda activate testbed
cd /testbed
git config --global --add safe.directory /testbed
cd /testbed
git status
git -c core.fileMode=false diff 0123abc
export LANG=en_US.UTF-8
source /opt/miniconda3/bin/activate
conda activate testbed
python -m pip install -e .
git checkout 0123abc -- tests/test_a.py
git apply -v - <<'EOF_114329324912'
diff --git a/tests/test_a.py b/tests/test_a.py
+cd /elsewhere
+export SECRET=1
EOF_114329324912
: '>>>>> Start Test Output'
pytest -rA -p no:cacheprovider tests/test_a.py
: '>>>>> End Test Output'
git checkout 0123abc -- tests/test_a.py
"""


def test_setup_lines_are_the_environment_part_of_the_eval_script() -> None:
    assert setup_lines(EVAL_SCRIPT) == [
        "source /opt/miniconda3/bin/activate",
        "conda activate testbed",
        "cd /testbed",
        "cd /testbed",
        "export LANG=en_US.UTF-8",
        "source /opt/miniconda3/bin/activate",
        "conda activate testbed",
    ]
    # a checkout elsewhere (the local runtime): cd into the task root goes to the checkout
    moved = setup_lines(EVAL_SCRIPT, workdir="/tmp/ws 1/testbed")
    assert moved[2] == "cd '/tmp/ws 1/testbed'" and moved[0] == "source /opt/miniconda3/bin/activate"
    assert setup_lines(None) == [] and setup_lines("cd /testbed\npytest\n") == ["cd /testbed"]


def test_the_test_command_of_an_eval_script() -> None:
    assert test_command_of(EVAL_SCRIPT) == "pytest -rA -p no:cacheprovider tests/test_a.py"
    assert test_command_of("echo hi\n") is None
    assert test_command_of(": '>>>>> Start Test Output'\n: '>>>>> End Test Output'\n") is None


@pytest.mark.parametrize(
    ("command", "kind", "target", "expected"),
    [
        (
            "pytest -rA -p no:cacheprovider tests/test_a.py",
            "pytest",
            "tests/test_a.py::t[1] tests/b.py",
            "pytest -rA -p no:cacheprovider 'tests/test_a.py::t[1]' tests/b.py",
        ),
        (
            "python -m pytest --no-header -rA --tb=no -p no:cacheprovider -k slow tests/x.py",
            "pytest",
            "tests/y.py",
            "python -m pytest --no-header -rA --tb=no -p no:cacheprovider -k slow tests/y.py",
        ),
        (
            DJANGO,
            "django",
            "queries.tests.QuerySetTests.test_x tests/model_fields/test_jsonfield.py::JSONFieldTests::test_y",
            "./tests/runtests.py --verbosity 2 --settings=test_sqlite --parallel 1 queries.tests.QuerySetTests.test_x "
            "model_fields.test_jsonfield.JSONFieldTests.test_y",
        ),
        (
            SYMPY,
            "sympy",
            "sympy/core/tests/test_expr.py::test_issue_1",
            "PYTHONWARNINGS=ignore::UserWarning,ignore::SyntaxWarning bin/test -C --verbose "
            "sympy/core/tests/test_expr.py -k test_issue_1",
        ),
        (
            "tox --current-env -epy39 -v -- tests/test_ext.py",
            "unknown",
            "tests/t.py",
            "tox --current-env -epy39 -v -- tests/t.py",
        ),
        (None, "pytest", "tests/a.py", "python -m pytest -rA -p no:cacheprovider tests/a.py"),
    ],
)
def test_a_target_keeps_the_runner_and_its_options(command, kind, target, expected) -> None:
    parsed = parse_test_command(command)
    assert parsed.kind == kind
    assert parsed.with_target(target) == expected
    assert parsed.render() == (command or "python -m pytest -rA -p no:cacheprovider")


def test_targets_that_cannot_be_run() -> None:
    with pytest.raises(TargetError, match="shell pipeline"):
        parse_test_command("make test | tee log").with_target("tests/a.py")
    with pytest.raises(TargetError, match="quotation"):
        parse_test_command("pytest tests").with_target("'unclosed")
    tool = RunTestsTool(TestRunner("make test"))
    assert tool.command("") == "make test" and tool.command(None) == "make test"


def test_a_runner_implies_its_official_parser_unless_the_row_names_one() -> None:
    assert TestRunner(DJANGO).parser == "parse_log_django"
    assert TestRunner(SYMPY).parser == "parse_log_sympy"
    assert TestRunner("pytest tests", "parse_log_pytest_v2").parser == "parse_log_pytest_v2"
    assert TestRunner("make test").parser is None
    assert official_parser("parse_log_nope") is None and official_parser("parse_log_django") is not None


PYTEST_OUTPUT = """\
.F.                                                                      [100%]
=================================== FAILURES ===================================
___________________________________ test_b ____________________________________
E       assert 1 == 2
=========================== short test summary info ============================
PASSED tests/test_x.py::test_a
PASSED tests/test_x.py::test_c[1]
FAILED tests/test_x.py::test_b - assert 1 == 2
========================= 1 failed, 2 passed in 0.05s ==========================
"""

DJANGO_OUTPUT = """\
Testing against Django installed in '/testbed/django'
test_inverse (ranges.tests.SpanTests.test_inverse) ... ok
test_merge (ranges.tests.SpanTests.test_merge) ... FAIL
test_skip (ranges.tests.SpanTests.test_skip) ... skipped 'later'

======================================================================
FAIL: test_merge (ranges.tests.SpanTests.test_merge)
----------------------------------------------------------------------
Traceback (most recent call last):
AssertionError: 1 != 2

----------------------------------------------------------------------
Ran 3 tests in 0.002s

FAILED (failures=1, skipped=1)
"""


def read(log: str, parser: str | None, exit_code: int = 1) -> str:
    found = official_parser(parser)
    statuses = dict(found(log, None)) if found else None
    return summarize(TestRun(command="x", log=log, exit_code=exit_code, parser=parser, statuses=statuses), parser)


def test_pytest_output_read_as_grading_reads_it() -> None:
    text = read(PYTEST_OUTPUT, "parse_log_pytest")
    assert text.startswith("exit code 1: 1 failed, 2 passed (read by parse_log_pytest, as grading reads it)\n")
    assert "failed (1): tests/test_x.py::test_b\n" in text
    assert "passed (2): tests/test_x.py::test_a, tests/test_x.py::test_c[1]\n" in text
    assert "E       assert 1 == 2" in text and "short test summary" not in text


def test_django_output_names_the_real_tests() -> None:
    text = read(DJANGO_OUTPUT, "parse_log_django")
    # the official parser also files the `FAIL: test_merge (...)` header under its first word
    assert text.startswith("exit code 1: 2 failed, 1 passed, 1 skipped (read by parse_log_django")
    assert "failed (2): test_merge (ranges.tests.SpanTests.test_merge), test_merge\n" in text
    assert "passed (1): test_inverse (ranges.tests.SpanTests.test_inverse)" in text
    assert "(failures=1" not in text.split("--- output ---")[0]


def test_an_unknown_runner_is_judged_by_exit_code_and_says_so() -> None:
    text = read("all good\n", None, exit_code=0)
    assert text.startswith("exit code 0: this runner's output is not read test by test (no official log parser")
    assert text.endswith("--- output ---\nall good")
    assert "no test results found" in read("nothing\n", "parse_log_pytest")
