#!/usr/bin/env python
"""Run hoard's test suite.

    ./tests/runtests.py [-v N] [--settings MODULE] [--parallel N] [--failfast] [-k PATTERN] [label ...]

Test apps are the packages in this directory (tests/<app>/tests.py). A label is an app
(`cache`), a module (`cache.tests`), a class (`cache.tests.SQLiteCacheTests`) or one test
(`cache.tests.SQLiteCacheTests.test_set_and_get`); without labels every app runs. The
options are Django's runtests.py options, so tools that drive one drive the other.
"""

import argparse
import importlib
import os
import sys
import unittest

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT_DIR = os.path.dirname(TESTS_DIR)


def test_apps():
    return sorted(
        name for name in os.listdir(TESTS_DIR) if os.path.isfile(os.path.join(TESTS_DIR, name, "__init__.py"))
    )


def parallel(value):
    if value == "auto":
        return value
    try:
        processes = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not 'auto' or a number") from None
    if processes < 1:
        raise argparse.ArgumentTypeError("--parallel needs at least one process")
    return processes


def parse_args(argv):
    parser = argparse.ArgumentParser(description="Run the hoard test suite.")
    parser.add_argument("labels", nargs="*", metavar="label", help="apps, modules, classes or tests to run")
    parser.add_argument("-v", "--verbosity", type=int, choices=[0, 1, 2, 3], default=1)
    parser.add_argument(
        "--settings",
        default=os.environ.get("HOARD_SETTINGS_MODULE", "test_sqlite"),
        help="settings module, importable from this directory (default: test_sqlite)",
    )
    # the suite is small enough for one process; the option is accepted so Django-style commands work
    parser.add_argument("--parallel", type=parallel, default=1, help="accepted for compatibility; tests run serially")
    parser.add_argument("--failfast", action="store_true", help="stop at the first failure or error")
    parser.add_argument(
        "-k", dest="patterns", action="append", default=[], help="only tests whose name contains this substring"
    )
    return parser.parse_args(argv)


def load_suite(labels, patterns, verbosity):
    loader = unittest.TestLoader()
    if patterns:
        loader.testNamePatterns = [f"*{pattern}*" for pattern in patterns]
    apps = test_apps()
    suite = unittest.TestSuite()
    imported = set()
    for label in labels or apps:
        app = label.split(".")[0]
        if verbosity >= 2 and app not in imported and app in apps:
            print(f"Importing application {app}", flush=True)
            imported.add(app)
        if label in apps:
            suite.addTests(loader.discover(os.path.join(TESTS_DIR, label), "test*.py", top_level_dir=TESTS_DIR))
        else:
            suite.addTests(loader.loadTestsFromName(label))
    return suite


def main(argv=None):
    options = parse_args(sys.argv[1:] if argv is None else argv)
    # test apps and the settings module import from here; hoard from the checkout unless installed
    sys.path[:0] = [TESTS_DIR, ROOT_DIR]
    os.environ["HOARD_SETTINGS_MODULE"] = options.settings
    try:
        importlib.import_module(options.settings)
    except ImportError as e:
        sys.exit(f"runtests.py: cannot import settings module {options.settings!r}: {e}")

    import hoard

    print(f"Testing against hoard installed in {os.path.dirname(hoard.__file__)!r}", flush=True)
    suite = load_suite(options.labels, options.patterns, options.verbosity)
    if options.verbosity >= 1:
        print(f"Found {suite.countTestCases()} test(s).", flush=True)
    runner = unittest.TextTestRunner(verbosity=options.verbosity, failfast=options.failfast)
    result = runner.run(suite)
    hoard.caches.close_all()
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
