"""hoard's tests/runtests.py, the atlas-mini runner that stands in for Django's.

It must take Django's command line and print what Django's runner prints, so that the
official `parse_log_django` reads every status back; agents also run it by hand with
narrower labels, which must select what Django's would.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from swebench.harness.log_parsers import PARSER_REGISTRY

HOARD = Path(__file__).resolve().parent.parent / "atlas_agent" / "tasks" / "mini" / "repos" / "hoard"
DJANGO_ARGS = ("--verbosity", "2", "--settings=test_sqlite", "--parallel", "1")
parse_log_django = PARSER_REGISTRY["parse_log_django"]

# one test of each outcome, the failing one with a docstring as well
PROBE_TESTS = '''\
import unittest


class ProbeTests(unittest.TestCase):
    def test_passes(self):
        pass

    def test_fails(self):
        self.assertEqual(1, 2)

    def test_errors(self):
        raise KeyError("boom")

    @unittest.skip("not on this platform")
    def test_skipped(self):
        pass

    def test_documented_failure(self):
        """A failing test with a docstring."""
        self.fail("documented")
'''


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of hoard with one more test app, `probe`."""
    root = tmp_path_factory.mktemp("runner") / "hoard"
    shutil.copytree(HOARD, root, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    probe = root / "tests" / "probe"
    probe.mkdir()
    (probe / "__init__.py").write_text("")
    (probe / "tests.py").write_text(PROBE_TESTS)
    return root


def runtests(root: Path, *args: str) -> tuple[dict[str, str], str, int]:
    """Run ./tests/runtests.py as eval.sh does; the official parser's reading, the log, the exit status."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "HOARD_"))}
    # the shebang's `python` is this interpreter, as the activated testbed env's is in an image
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", os.defpath)])
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    proc = subprocess.run(["./tests/runtests.py", *args], cwd=root, capture_output=True, text=True, env=env, timeout=60)
    log = proc.stdout + proc.stderr
    return parse_log_django(log, None), log, proc.returncode


def test_every_status_reads_back(checkout: Path):
    results, log, code = runtests(checkout, *DJANGO_ARGS, "probe.tests")
    assert results == {
        # a test with a docstring goes by the docstring's first line
        "A failing test with a docstring.": "FAILED",
        "test_errors (probe.tests.ProbeTests.test_errors)": "ERROR",
        "test_fails (probe.tests.ProbeTests.test_fails)": "FAILED",
        "test_passes (probe.tests.ProbeTests.test_passes)": "PASSED",
        "test_skipped (probe.tests.ProbeTests.test_skipped)": "SKIPPED",
        # parse_log_django also files each FAIL:/ERROR: header under its second word
        "test_documented_failure": "FAILED",
        "test_errors": "ERROR",
        "test_fails": "FAILED",
    }, log
    assert "\nRan 5 tests in " in log
    assert log.rstrip().endswith("\n\nFAILED (failures=2, errors=1, skipped=1)"), log
    assert code == 1


def test_a_green_run(checkout: Path):
    results, log, code = runtests(checkout, *DJANGO_ARGS, "keys.tests", "handlers.tests")
    assert results and set(results.values()) == {"PASSED"}, log
    assert log.rstrip().endswith("\n\nOK") and code == 0, log


@pytest.mark.parametrize(
    ("label", "prefix"),
    [
        ("cache", "(cache.tests."),
        ("cache.tests", "(cache.tests."),
        ("cache.tests.SQLiteFileTests", "(cache.tests.SQLiteFileTests."),
        ("cache.tests.SQLiteFileTests.test_table_option", "(cache.tests.SQLiteFileTests.test_table_option)"),
    ],
)
def test_labels_select_like_django(checkout: Path, label: str, prefix: str):
    results, log, code = runtests(checkout, *DJANGO_ARGS, label)
    assert results and all(prefix in name for name in results), log
    assert code == 0, log
    if label.count(".") == 3:
        assert len(results) == 1


def test_an_app_label_runs_what_its_module_label_runs(checkout: Path):
    by_app, _, _ = runtests(checkout, *DJANGO_ARGS, "cache")
    by_module, _, _ = runtests(checkout, *DJANGO_ARGS, "cache.tests")
    assert by_app == by_module


def test_no_label_runs_every_app(checkout: Path):
    results, log, _ = runtests(checkout, "--verbosity", "2")
    apps = {name.split("(")[1].split(".")[0] for name in results if "(" in name}
    assert apps == {"cache", "handlers", "keys", "probe"}, log


def test_settings_module(checkout: Path):
    # without --settings the suite's own test_sqlite is used, as Django's runtests.py defaults to it
    results, log, code = runtests(checkout, "--verbosity", "2", "handlers.tests")
    assert code == 0 and results["test_settings_module (handlers.tests.SettingsTests.test_settings_module)"], log
    _, log, code = runtests(checkout, "--settings=no_such_settings", "handlers")
    assert code != 0 and "cannot import settings module 'no_such_settings'" in log


def test_failfast_and_name_patterns(checkout: Path):
    _, log, code = runtests(checkout, "--verbosity", "2", "--failfast", "probe")
    assert "\nRan 1 test in " in log and code == 1, log
    results, log, code = runtests(checkout, *DJANGO_ARGS, "-k", "passes", "-k", "skipped", "probe")
    assert set(results.values()) == {"PASSED", "SKIPPED"} and len(results) == 2, log
    assert code == 0


@pytest.mark.parametrize("value", ["auto", "4"])
def test_parallel_is_accepted(checkout: Path, value: str):
    results, log, code = runtests(checkout, "--verbosity", "2", "--parallel", value, "keys")
    assert results and code == 0, log
