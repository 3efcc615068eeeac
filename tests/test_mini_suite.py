"""The atlas-mini task repo: well formed, reproducible, and every task graded the way it claims.

Runs on the host without Docker: each task is replayed in a temp copy of its
repository, committed exactly as the task's Dockerfile commits it, so the base
commit in task.yaml is checked as well as the tests.json lists. The replay runs
the test command of the task's eval.sh and reads its output with the official
log parser the task names, as SWE-bench grading does.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
from swebench.harness.log_parsers import PARSER_REGISTRY
from swebench.task.checks import check_task_repo, expected_image
from swebench.task.repo import dump_tests, dump_yaml, load_config, load_yaml, task_dirs

MINI_DIR = Path(__file__).resolve().parent.parent / "atlas_agent" / "tasks" / "mini"
REPOS_DIR = MINI_DIR / "repos"
DATASET = "atlas-mini"
NAIVE_PATCH = "naive.patch"
# a repository that ships this runner is tested and graded the way SWE-bench tests Django
RUNTESTS = "tests/runtests.py"

# left out of the image's build context, so left out of the commit too
CACHE_PATTERNS = ("__pycache__", ".pytest_cache", "*.pyc")
COMMIT_DATE = "2026-01-01T00:00:00+0000"
INSTANCE_ID = re.compile(r"^atlas__(?P<repo>[a-z][a-z0-9]*)-(?P<number>[1-9][0-9]*)$")

DOCKERFILE_TEMPLATE = """\
FROM atlas/env:bookworm-py311
COPY repo/ /testbed/
WORKDIR /testbed
RUN chmod -R u=rwX,go=rX /testbed \\
 && git init -q \\
 && git add -A \\
 && GIT_AUTHOR_DATE="{date}" GIT_COMMITTER_DATE="{date}" \\
    git -c user.name=Atlas -c user.email=atlas@localhost -c commit.gpgsign=false commit -q -m "{repo} base" \\
 && test "$(git rev-parse HEAD)" = "{base_commit}" \\
 && rm -rf .git/logs .git/hooks .git/COMMIT_EDITMSG
STOPSIGNAL SIGKILL
"""
# the heredoc delimiter of the official harness's eval scripts
TEST_PATCH_DELIMITER = "EOF_114329324912"
# each runner's command as SWE-bench runs it, by the log parser that reads its output;
# eval.sh appends the test files (pytest) or their module labels (Django's runtests.py)
TEST_COMMANDS = {
    # -p no:cacheprovider: no .pytest_cache left in the repository
    "parse_log_pytest": "pytest -rA -p no:cacheprovider",
    "parse_log_django": "./tests/runtests.py --verbosity 2 --settings=test_sqlite --parallel 1",
}
# what Python 3.11's unittest prints for a test without a docstring, and so the name
# parse_log_django gives it: "test_x (app.tests.SomeTests.test_x)"
UNITTEST_NAME = re.compile(r"^(?P<method>\w+) \((?P<module>[\w.]+)\.\w+\.(?P=method)\)$")
# the conda activation every official eval script does twice (the image has a stand-in for conda)
ACTIVATE = ("source /opt/miniconda3/bin/activate", "conda activate testbed")


# --- helpers: how the image is built, and how the harness runs a task ---------------------------


def _git_env(**extra: str) -> dict[str, str]:
    """The environment of a bare image: no user or system git config, no GIT_* overrides."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_CONFIG_GLOBAL=os.devnull, GIT_CONFIG_NOSYSTEM="1", **extra)
    return env


def git(cwd: Path, *args: str, stdin: str | None = None, **env: str) -> str:
    proc = subprocess.run(
        ["git", *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        env=_git_env(**env),
    )
    if proc.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed in {cwd}:\n{proc.stderr}")
    return proc.stdout


def materialize_base(repo: str, dest: Path) -> str:
    """Copy repos/<repo> to `dest` and commit it as the task Dockerfile does; returns the commit.

    The same steps in the same order: copy without caches, `chmod -R u=rwX,go=rX`,
    `git init`, `git add -A`, and a commit with fixed author, dates and message, so
    the hash depends on nothing but the files.
    """
    shutil.copytree(REPOS_DIR / repo, dest, ignore=shutil.ignore_patterns(*CACHE_PATTERNS))
    subprocess.run(["chmod", "-R", "u=rwX,go=rX", str(dest)], check=True)
    git(dest, "init", "-q")
    git(dest, "add", "-A")
    git(
        dest,
        *("-c", "user.name=Atlas", "-c", "user.email=atlas@localhost", "-c", "commit.gpgsign=false"),
        *("commit", "-q", "-m", f"{repo} base"),
        GIT_AUTHOR_DATE=COMMIT_DATE,
        GIT_COMMITTER_DATE=COMMIT_DATE,
    )
    return git(dest, "rev-parse", "HEAD").strip()


@cache
def _scratch_dir() -> tempfile.TemporaryDirectory:
    # the cache keeps it alive for the whole run; it is removed at exit
    return tempfile.TemporaryDirectory(prefix="atlas-mini-")


@cache
def base_checkout(repo: str) -> Path:
    """A committed copy of repos/<repo>, made once; copy it rather than change it."""
    dest = Path(_scratch_dir().name) / "base" / repo
    materialize_base(repo, dest)
    return dest


def base_commit(repo: str) -> str:
    return git(base_checkout(repo), "rev-parse", "HEAD").strip()


def checkout_at_base(repo: str, dest: Path) -> Path:
    shutil.copytree(base_checkout(repo), dest)
    return dest


def render_dockerfile(repo: str, commit: str) -> str:
    return DOCKERFILE_TEMPLATE.format(date=COMMIT_DATE, repo=repo, base_commit=commit)


def patch_paths(patch: str) -> list[str]:
    """The files a `git diff` touches, in the order it lists them."""
    return re.findall(r"^diff --git a/\S+ b/(\S+)$", patch, flags=re.MULTILINE)


def is_test_file(path: str) -> bool:
    return path.split("/")[0] == "tests" or Path(path).name.startswith("test_")


def repo_parser(repo: str) -> str:
    return "parse_log_django" if (REPOS_DIR / repo / RUNTESTS).is_file() else "parse_log_pytest"


def django_label(path: str) -> str:
    """tests/<app>/tests.py -> <app>.tests: runtests.py takes modules relative to tests/."""
    return path.removeprefix("tests/").removesuffix(".py").replace("/", ".")


def test_command(parser: str, files: list[str]) -> str:
    """The command eval.sh runs for `files`; without files, the repository's whole suite."""
    targets = [django_label(f) for f in files] if parser == "parse_log_django" else files
    return " ".join([TEST_COMMANDS[parser], *targets])


test_command.__test__ = False  # a helper, not a test


def render_eval_script(repo: str, commit: str, test_patch: str, parser: str) -> str:
    """The official 5.x eval script: activation, status and diff for the log, then the tests.

    No `git show`: in a single-commit repository it prints the whole tree into every log.
    """
    files = patch_paths(test_patch)
    existing = [f for f in files if (REPOS_DIR / repo / f).is_file()]
    checkout = [f"git checkout {commit} -- {' '.join(existing)}"] if existing else []
    return "\n".join(
        [
            "#!/bin/bash",
            "set -uxo pipefail",
            *ACTIVATE,
            "cd /testbed",
            "git config --global --add safe.directory /testbed",
            "cd /testbed",
            "git status",
            f"git -c core.fileMode=false diff {commit}",
            *ACTIVATE,
            *checkout,
            f"git apply -v - <<'{TEST_PATCH_DELIMITER}'",
            test_patch + TEST_PATCH_DELIMITER,
            ": '>>>>> Start Test Output'",
            test_command(parser, files),
            ": '>>>>> End Test Output'",
            *checkout,
            "",
        ]
    )


@dataclass
class Run:
    """One run of a test command: the official parser's reading of it, its log and exit status."""

    results: dict[str, str]
    log: str
    exit_code: int


def run_tests(workdir: Path, command: str, parser: str) -> Run:
    """Run a test command as eval.sh does and parse its output as the harness does."""
    # nothing from the caller's environment steers the runner (HOARD_SETTINGS_MODULE: hoard's settings)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "PYTHON", "HOARD_"))}
    # this interpreter's bin directory stands in for the activated testbed env: its `pytest`
    # and `python` (the runner's shebang) come first, as `conda activate testbed` puts them
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", os.defpath)])
    # pytest alone, without whatever plugins this venv has; no bytecode left in the copy
    env.update(PYTEST_DISABLE_PLUGIN_AUTOLOAD="1", PYTHONDONTWRITEBYTECODE="1")
    proc = subprocess.run(["bash", "-c", command], cwd=workdir, capture_output=True, text=True, env=env, timeout=120)
    log = proc.stdout + proc.stderr
    return Run(PARSER_REGISTRY[parser](log, None), log, proc.returncode)


def reported_tests(run: Run, parser: str) -> set[str]:
    """The tests a run reports, by the names tests.json uses.

    parse_log_django also files each "FAIL: test_x (app.tests.C.test_x)" header under its
    second word, the bare method name; the test's own "... FAIL" line gives its real name.
    """
    if parser == "parse_log_django":
        return {name for name in run.results if not name.isidentifier()}
    return set(run.results)


# --- the tasks -------------------------------------------------------------------------------------


@dataclass
class Task:
    path: Path
    meta: dict
    tests: dict[str, list[str]]

    @property
    def id(self) -> str:
        return self.path.name

    @property
    def repo(self) -> str:
        return self.meta["repo"].removeprefix("atlas/")

    def read(self, name: str) -> str:
        with open(self.path / name, newline="") as fh:
            return fh.read()

    @property
    def parser(self) -> str:
        return self.meta["log_parser"]

    @property
    def test_files(self) -> list[str]:
        return patch_paths(self.read("test.patch"))

    @property
    def test_command(self) -> str:
        return test_command(self.parser, self.test_files)

    @property
    def naive_patch(self) -> str | None:
        return self.read(NAIVE_PATCH) if (self.path / NAIVE_PATCH).is_file() else None


def load_tasks() -> list[Task]:
    tasks = []
    for task_dir in task_dirs(MINI_DIR):
        meta = load_yaml(task_dir / "task.yaml")
        tests = json.loads((task_dir / "tests.json").read_text())
        tasks.append(Task(task_dir, meta, tests))
    return tasks


TASKS = load_tasks()
TASK_IDS = [t.id for t in TASKS]
REPOS = sorted({t.repo for t in TASKS})


def by_id(instance_id: str) -> Task:
    return next(t for t in TASKS if t.id == instance_id)


@dataclass
class Outcome:
    """The runs with the test patch applied: at base, with gold, with the naive fix."""

    base: Run | None = None
    gold: Run | None = None
    naive: Run | None = None
    error: str | None = None


def evaluate(task: Task) -> Outcome:
    outcome = Outcome()
    with tempfile.TemporaryDirectory(prefix=f"mini-{task.id}-") as tmp:
        work = Path(tmp) / task.repo
        try:
            checkout_at_base(task.repo, work)
            git(work, "apply", "-", stdin=task.read("test.patch"))
            outcome.base = run_tests(work, task.test_command, task.parser)
            git(work, "apply", "-", stdin=task.read("gold.patch"))
            outcome.gold = run_tests(work, task.test_command, task.parser)
            if task.naive_patch is not None:
                git(work, "apply", "-R", "-", stdin=task.read("gold.patch"))
                git(work, "apply", "-", stdin=task.naive_patch)
                outcome.naive = run_tests(work, task.test_command, task.parser)
        except (RuntimeError, subprocess.SubprocessError) as exc:
            outcome.error = str(exc)
    return outcome


def run_suite_at_base(repo: str) -> Run:
    with tempfile.TemporaryDirectory(prefix=f"mini-{repo}-") as tmp:
        parser = repo_parser(repo)
        return run_tests(checkout_at_base(repo, Path(tmp) / repo), test_command(parser, []), parser)


@dataclass
class Replays:
    tasks: dict[str, Outcome]
    suites: dict[str, Run]


@pytest.fixture(scope="module")
def replays() -> Replays:
    # every replay is a few pytest subprocesses; run them side by side
    for repo in REPOS:
        base_checkout(repo)
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 1)) as pool:
        suites = {repo: pool.submit(run_suite_at_base, repo) for repo in REPOS}
        tasks = {t.id: pool.submit(evaluate, t) for t in TASKS}
        return Replays(
            tasks={k: f.result() for k, f in tasks.items()},
            suites={k: f.result() for k, f in suites.items()},
        )


def outcome_of(replays: Replays, task: Task) -> Outcome:
    outcome = replays.tasks[task.id]
    assert outcome.error is None, outcome.error
    assert outcome.base is not None and outcome.gold is not None
    return outcome


def statuses(results: dict[str, str], names: list[str]) -> dict[str, str]:
    return {name: results.get(name, "MISSING") for name in names}


def changed_lines(patch: str) -> tuple[int, int]:
    """How many lines a diff removes and adds, not counting its headers."""
    removed = added = 0
    in_hunk = False
    for line in patch.splitlines():
        if line.startswith("diff --git "):
            in_hunk = False
        elif line.startswith("@@"):
            in_hunk = True
        elif in_hunk and line.startswith("-"):
            removed += 1
        elif in_hunk and line.startswith("+"):
            added += 1
    return removed, added


def repo_files(repo: str) -> Iterator[Path]:
    """Everything in repos/<repo> that goes into the image."""
    for path in sorted((REPOS_DIR / repo).rglob("*")):
        cached = any(part in ("__pycache__", ".pytest_cache") for part in path.parts)
        if not cached and path.suffix != ".pyc":
            yield path


# --- the task repo as a whole --------------------------------------------------------------------


def test_task_repo_passes_the_official_checks():
    assert [str(p) for p in check_task_repo(MINI_DIR)] == []


def test_config_publishes_one_dataset():
    config = load_config(MINI_DIR)
    assert config == {"datasets": [DATASET], "splits": ["test"]}
    assert (MINI_DIR / "sweb.yaml").read_text() == dump_yaml(config)


def test_readme_lists_every_task():
    readme = (MINI_DIR / "README.md").read_text()
    for instance_id in TASK_IDS:
        assert f"`{instance_id}`" in readme


def test_the_mix():
    assert len(REPOS) >= 4
    assert {repo_parser(repo) for repo in REPOS} == set(TEST_COMMANDS), "a runner no repository uses"
    assert len(TASKS) >= 8
    for repo in REPOS:
        assert sum(t.repo == repo for t in TASKS) >= 3, repo

    golds = [t.read("gold.patch") for t in TASKS]
    assert any(len(patch_paths(p)) >= 2 for p in golds), "no gold patch spans two source files"
    assert any(changed_lines(p) == (1, 1) for p in golds), "no one-line fix"
    assert any(t.naive_patch is not None for t in TASKS), "no task whose obvious fix is a trap"


# --- the repositories ----------------------------------------------------------------------------


def test_repos_are_the_ones_the_tasks_use():
    assert sorted(d.name for d in REPOS_DIR.iterdir() if d.is_dir()) == REPOS


@pytest.mark.parametrize("repo", REPOS)
def test_repo_layout(repo: str):
    root = REPOS_DIR / repo
    for name in (".gitignore", "pyproject.toml", "README.md", f"{repo}/__init__.py"):
        assert (root / name).is_file(), name
    assert not (root / "tests" / "__init__.py").exists()
    assert not (root / "conftest.py").exists()
    if repo_parser(repo) == "parse_log_pytest":
        assert list((root / "tests").glob("test_*.py"))
        assert 'pythonpath = ["."]' in (root / "pyproject.toml").read_text()
        return
    # Django's layout: test apps tests/<app>/tests.py, settings tests/test_sqlite.py, and
    # tests/runtests.py run as `./tests/runtests.py` (executable, the env's python)
    runner = root / RUNTESTS
    assert runner.read_text().startswith("#!/usr/bin/env python\n")
    assert runner.stat().st_mode & 0o111 == 0o111
    assert (root / "tests" / "test_sqlite.py").is_file()
    apps = [d for d in (root / "tests").iterdir() if d.is_dir() and d.name != "__pycache__"]
    assert apps
    for app in apps:
        assert (app / "__init__.py").is_file(), app
        assert (app / "tests.py").is_file(), app


@pytest.mark.parametrize("repo", REPOS)
def test_repo_files_are_plain_text(repo: str):
    for path in repo_files(repo):
        assert not path.is_symlink(), path
        if path.is_dir():
            continue
        if path != REPOS_DIR / repo / RUNTESTS:
            assert not path.stat().st_mode & 0o111, f"{path} is executable"
        data = path.read_bytes()
        assert b"\0" not in data, f"{path} is binary"
        data.decode("utf-8")


@pytest.mark.parametrize("repo", REPOS)
def test_base_commit_is_reproducible(repo: str, tmp_path: Path):
    commit = materialize_base(repo, tmp_path / repo)
    assert commit == base_commit(repo)
    assert re.fullmatch(r"[0-9a-f]{40}", commit)
    for task in TASKS:
        if task.repo == repo:
            assert task.meta["base_commit"] == commit, task.id
            assert task.meta["environment_setup_commit"] == commit, task.id
            assert task.read("Dockerfile") == render_dockerfile(repo, commit), task.id


@pytest.mark.parametrize("repo", REPOS)
def test_repo_suite_passes_at_base(repo: str, replays: Replays):
    # every task's PASS_TO_PASS relies on the untouched suite being green
    run = replays.suites[repo]
    assert run.results, run.log
    assert {name: status for name, status in run.results.items() if status != "PASSED"} == {}
    assert run.exit_code == 0, run.log


# --- each task -----------------------------------------------------------------------------------


@pytest.mark.parametrize("instance_id", TASK_IDS)
def test_task_metadata(instance_id: str):
    task = by_id(instance_id)
    match = INSTANCE_ID.match(instance_id)
    assert match, instance_id
    assert (REPOS_DIR / match["repo"]).is_dir()
    assert task.meta == {
        "instance_id": instance_id,
        "repo": f"atlas/{match['repo']}",
        "version": "0.1",
        "base_commit": task.meta["base_commit"],
        "environment_setup_commit": task.meta["base_commit"],
        "created_at": task.meta["created_at"],
        "split": "test",
        "datasets": [DATASET],
        "image": expected_image(instance_id),
        "log_parser": repo_parser(match["repo"]),
        "eval_type": "pass_and_fail",
    }
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", task.meta["created_at"])
    assert task.read("task.yaml") == dump_yaml(task.meta)
    assert task.read("tests.json") == dump_tests(task.tests)
    assert task.read("problem_statement.md").strip()


@pytest.mark.parametrize("instance_id", TASK_IDS)
def test_patches_touch_the_right_files(instance_id: str):
    task = by_id(instance_id)
    patches = {"gold.patch": task.read("gold.patch"), "test.patch": task.read("test.patch")}
    if task.naive_patch is not None:
        patches[NAIVE_PATCH] = task.naive_patch
    for name, patch in patches.items():
        assert patch.startswith("diff --git a/"), name
        assert patch.endswith("\n"), name
        assert patch_paths(patch), name
    assert not [p for p in patch_paths(patches["gold.patch"]) if is_test_file(p)]
    assert not [p for p in patch_paths(patches.get(NAIVE_PATCH, "")) if is_test_file(p)]
    assert all(is_test_file(p) for p in task.test_files)
    assert TEST_PATCH_DELIMITER not in patches["test.patch"]


@pytest.mark.parametrize("instance_id", TASK_IDS)
def test_eval_script(instance_id: str):
    task = by_id(instance_id)
    expected = render_eval_script(task.repo, task.meta["base_commit"], task.read("test.patch"), task.parser)
    assert task.read("eval.sh") == expected


@pytest.mark.parametrize("instance_id", TASK_IDS)
def test_graded_tests_live_in_the_test_files(instance_id: str):
    task = by_id(instance_id)
    f2p, p2p = task.tests["FAIL_TO_PASS"], task.tests["PASS_TO_PASS"]
    assert f2p
    assert not set(f2p) & set(p2p)
    assert len(set(f2p + p2p)) == len(f2p + p2p)
    for name in f2p + p2p:
        if task.parser == "parse_log_pytest":
            assert name.split("::")[0] in task.test_files, name
        elif match := UNITTEST_NAME.match(name):
            assert match["module"] in [django_label(f) for f in task.test_files], name
        else:
            # a test with a docstring goes by the docstring's first line, as in SWE-bench's Django rows
            sources = [task.read("test.patch")]
            sources += [(REPOS_DIR / task.repo / f).read_text() for f in task.test_files]
            assert any(f'"""{name}' in source for source in sources), name


@pytest.mark.parametrize("instance_id", TASK_IDS)
def test_gold_patch_resolves(instance_id: str, replays: Replays):
    task = by_id(instance_id)
    outcome = outcome_of(replays, task)
    f2p, p2p = task.tests["FAIL_TO_PASS"], task.tests["PASS_TO_PASS"]

    base, gold = outcome.base, outcome.gold
    # the empty patch resolves nothing: every FAIL_TO_PASS test fails at base
    at_base = statuses(base.results, f2p)
    assert set(at_base.values()) <= {"FAILED", "ERROR"}, (at_base, base.log)
    assert set(statuses(base.results, p2p).values()) <= {"PASSED"}, base.log
    # every test the files run is graded one way or the other
    assert reported_tests(base, task.parser) == set(f2p) | set(p2p), base.log
    # the runner's exit status agrees with its report (the harness cross-checks the two)
    assert base.exit_code == 1, base.log

    with_gold = statuses(gold.results, f2p + p2p)
    assert set(with_gold.values()) == {"PASSED"}, (with_gold, gold.log)
    assert gold.exit_code == 0, gold.log


@pytest.mark.parametrize("instance_id", [t.id for t in TASKS if t.naive_patch is not None])
def test_naive_fix_breaks_a_pass_to_pass_test(instance_id: str, replays: Replays):
    """The obvious fix makes the issue's tests pass and breaks one that used to pass."""
    task = by_id(instance_id)
    outcome = outcome_of(replays, task)
    assert outcome.naive is not None
    f2p, p2p = task.tests["FAIL_TO_PASS"], task.tests["PASS_TO_PASS"]
    assert set(statuses(outcome.naive.results, f2p).values()) == {"PASSED"}, outcome.naive.log
    broken = [name for name, status in statuses(outcome.naive.results, p2p).items() if status != "PASSED"]
    assert broken, outcome.naive.log


@pytest.mark.parametrize("instance_id", [t.id for t in TASKS if t.parser == "parse_log_django"])
def test_django_runner_output(instance_id: str, replays: Replays):
    """Django's summary: every graded test ran, and the verdict is the last line."""
    task = by_id(instance_id)
    outcome = outcome_of(replays, task)
    graded = len(task.tests["FAIL_TO_PASS"] + task.tests["PASS_TO_PASS"])
    for run, verdict in ((outcome.base, "FAILED (failures="), (outcome.gold, "OK")):
        assert re.search(rf"^Ran {graded} tests in \d", run.log, flags=re.MULTILINE), run.log
        assert run.log.rstrip().splitlines()[-1].startswith(verdict), run.log
