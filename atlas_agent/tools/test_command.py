"""A task's test command, understood well enough to run it on other targets.

SWE-bench eval scripts run each repository's own runner: `pytest -rA FILES`, Django's
`./tests/runtests.py --verbosity 2 --settings=test_sqlite --parallel 1 LABELS`, SymPy's
`bin/test -C --verbose FILES`, ... Running "the same tests, but only this one" means keeping the
runner, its environment assignments and its options, and replacing the trailing targets.
"""

from __future__ import annotations

import posixpath
import re
import shlex
from dataclasses import dataclass, field
from typing import Literal

from atlas_agent.tasks.task import test_command_of

RunnerKind = Literal["pytest", "django", "sympy", "unknown"]

# The command used where a task names none (rows without an eval script).
DEFAULT_PYTEST = "python -m pytest -rA -p no:cacheprovider"
# The official parser for each runner, for rows that name none.
DEFAULT_PARSERS: dict[RunnerKind, str] = {
    "pytest": "parse_log_pytest",
    "django": "parse_log_django",
    "sympy": "parse_log_sympy",
}
# Options whose value is the next word: that word is not a target.
_VALUE_OPTIONS: dict[RunnerKind, frozenset[str]] = {
    "pytest": frozenset(
        {"-p", "-k", "-m", "-o", "-c", "-W", "-n", "--rootdir", "--ignore", "--deselect", "--tb", "--durations"}
        | {"--maxfail", "--confcutdir", "--basetemp", "--timeout", "--import-mode", "--cov", "-r"}
    ),
    "django": frozenset({"--verbosity", "-v", "--settings", "--parallel", "--tag", "--exclude-tag", "-k"}),
    "sympy": frozenset({"-k", "--seed", "--timeout", "--split"}),
    "unknown": frozenset(),
}
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_SHELL_OPERATORS = re.compile(r"[;&|<>`]|\$\(")
_PYTHON = re.compile(r"^(?:.*/)?python(?:\d+(?:\.\d+)?)?$")


class TargetError(ValueError):
    """A target this task's runner cannot be given."""


@dataclass
class TestCommand:
    """The last line of a test command split into what stays and what a target replaces."""

    __test__ = False  # not a test class, whatever pytest thinks of the name

    kind: RunnerKind
    before: list[str] = field(default_factory=list)  # earlier lines of a multi-line command, kept as they are
    assignments: list[str] = field(default_factory=list)  # NAME=value words before the runner
    runner: list[str] = field(default_factory=list)  # e.g. ["python", "-m", "pytest"], ["./tests/runtests.py"]
    options: list[str] = field(default_factory=list)
    targets: list[str] = field(default_factory=list)
    line: str = ""  # the runner line as the task wrote it

    def render(self, targets: list[str] | None = None) -> str:
        """The command with `targets` in place of the task's own (the task's command when None)."""
        if targets is None:
            return "\n".join([*self.before, self.line])
        words = [_quote_assignment(a) for a in self.assignments] + [shlex.quote(w) for w in self.runner + self.options]
        words += [shlex.quote(target) for target in targets]
        return "\n".join([*self.before, " ".join(words)])

    def with_target(self, target: str) -> str:
        """The command run on `target` (space-separated names, in the forms the model knows)."""
        try:
            names = shlex.split(target)
        except ValueError as exc:
            raise TargetError(str(exc)) from None
        if not names:
            return self.render()
        if self.kind == "unknown" and _SHELL_OPERATORS.search(self.line):
            raise TargetError("this task's test command is a shell pipeline; run it without a target, or use bash")
        if self.kind == "django":
            names = [django_label(name) for name in names]
        elif self.kind == "sympy":
            names = sympy_targets(names)
        return self.render(names)


def parse_test_command(command: str | None) -> TestCommand:
    """Splits a task's test command; a task without one gets pytest."""
    lines = [line for line in (command or DEFAULT_PYTEST).splitlines() if line.strip()]
    line = lines[-1].strip()
    parsed = TestCommand(kind="unknown", before=lines[:-1], line=line)
    try:
        words = shlex.split(line)
    except ValueError:
        return parsed
    while words and _ASSIGNMENT.match(words[0]):
        parsed.assignments.append(words.pop(0))
    parsed.kind, parsed.runner = _runner(words)
    _split_arguments(parsed, words[len(parsed.runner) :])
    return parsed


def _runner(words: list[str]) -> tuple[RunnerKind, list[str]]:
    # `python -m pytest`, `python tests/runtests.py`, or the script itself
    start = 0
    if words and _PYTHON.match(words[0]):
        start = 1
        if words[1:3] == ["-m", "pytest"]:
            return "pytest", words[:3]
    head = words[start] if len(words) > start else ""
    name = head.rsplit("/", 1)[-1]
    if name in ("pytest", "py.test"):
        return "pytest", words[: start + 1]
    if name == "runtests.py":
        return "django", words[: start + 1]
    if head.endswith("bin/test"):
        return "sympy", words[: start + 1]
    return "unknown", words[: start + 1]


def _split_arguments(parsed: TestCommand, arguments: list[str]) -> None:
    """Options (with their values) stay; the words after the last option are the targets."""
    value_options = _VALUE_OPTIONS[parsed.kind]
    last_option_end = 0
    index = 0
    while index < len(arguments):
        word = arguments[index]
        if word == "--":
            last_option_end = index + 1
            break
        if word.startswith("-"):
            takes_value = word in value_options and "=" not in word
            index += 2 if takes_value else 1
            last_option_end = index
        else:
            index += 1
    parsed.options = arguments[:last_option_end]
    parsed.targets = arguments[last_option_end:]


def django_label(name: str) -> str:
    """`tests/app/tests.py::Class::test` (a path, as pytest names it) → `app.tests.Class.test`."""
    path, _, rest = name.partition("::")
    if not path.endswith(".py"):
        return name
    module = path.removesuffix(".py").removeprefix("./").removeprefix("tests/").replace("/", ".")
    return ".".join([module, *filter(None, rest.split("::"))])


def sympy_targets(names: list[str]) -> list[str]:
    """`path.py::test_x` → the file, then `-k test_x` (how SymPy's runner selects a test)."""
    files, keywords = [], []
    for name in names:
        path, _, test = name.partition("::")
        files.append(path)
        if test:
            keywords += ["-k", test.split("::")[-1]]
    return files + keywords


def _quote_assignment(word: str) -> str:
    name, _, value = word.partition("=")
    return f"{name}={shlex.quote(value)}"


# Which repository files the test command executes: a patch that edits them changes how tests are judged.

TASK_ROOT = "/testbed"
_INTERPRETER = re.compile(r"^(python[0-9.]*|pypy[0-9.]*|bash|sh|perl|ruby|node)$")
# wrappers that run the command after them, and how many arguments of their own they take
_WRAPPERS = {"env": 0, "exec": 0, "time": 0, "nice": 0, "command": 0, "timeout": 1, "xvfb-run": 0}
# python options that take a value ("-W ignore"); -m and -c end the search for a script
_PYTHON_VALUE_OPTIONS = {"-W", "-X", "-Q"}
_SEPARATORS = {";", "&&", "||", "|", "&", "(", ")"}


def runner_scripts(eval_script: str | None) -> frozenset[str]:
    """Repository paths that the test command executes (e.g. `tests/runtests.py`, `bin/test`)."""
    found: set[str] = set()
    test_command = test_command_of((eval_script or "").replace("\\\n", " ")) or ""
    for line in test_command.splitlines():
        for words in _simple_commands(line):
            script = _script_of(words)
            if script is not None:
                found.add(script)
    return frozenset(found)


def _simple_commands(line: str) -> list[list[str]]:
    try:
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        tokens = list(lexer)
    except ValueError:  # unbalanced quotes: not a command we can read
        return []
    commands: list[list[str]] = [[]]
    for token in tokens:
        if token in _SEPARATORS:
            commands.append([])
        else:
            commands[-1].append(token)
    return [command for command in commands if command]


def _script_of(command: list[str]) -> str | None:
    words = _skip_prefixes(command)
    if not words:
        return None
    if _INTERPRETER.match(posixpath.basename(words[0])):
        return _interpreted_script(words[1:])
    # a bare name is looked up on PATH; a name with a slash is a file
    return _repo_path(words[0]) if "/" in words[0] else None


def _skip_prefixes(words: list[str]) -> list[str]:
    i = 0
    while i < len(words):
        if _ASSIGNMENT.match(words[i]):
            i += 1
        elif words[i] in _WRAPPERS:
            i += 1 + _WRAPPERS[words[i]]
        else:
            break
    return words[i:]


def _interpreted_script(args: list[str]) -> str | None:
    i = 0
    while i < len(args):
        arg = args[i]
        if arg.startswith(("-m", "-c")):
            return None  # a module or inline code, not a file
        if arg in _PYTHON_VALUE_OPTIONS:
            i += 2
        elif arg.startswith("-"):
            i += 1
        else:
            return _repo_path(arg)
    return None


def _repo_path(word: str) -> str | None:
    """`word` as a path inside the repository, or None when it points outside it."""
    if word.startswith("/"):
        if not word.startswith(TASK_ROOT + "/"):
            return None
        word = word[len(TASK_ROOT) + 1 :]
    path = posixpath.normpath(word)
    return None if path.startswith("..") or path == "." else path
