"""The local runtime: a task's checkout in a temporary directory of this machine, driven through a
persistent bash on the host. For machines without a Docker engine (GPU nodes, laptops without
root); commands run as the current user, without isolation or limits, so use it only with models
and tasks you trust. Predictions are graded elsewhere with the official harness (`atlas eval`).

The checkout comes from a task repo that ships its repository source (`repos/<name>/`, as Atlas's
suites do) and is committed here with a fixed identity and date; its hash matches the task's base
commit when the suite's images commit the same way, and either way its tree is the task's, so
patches against it apply to the task image unchanged.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
from pathlib import Path

import git

from atlas_agent.errors import AtlasError
from atlas_agent.runtime import cleanup
from atlas_agent.runtime.diff import diff_against
from atlas_agent.runtime.environment import setup_lines
from atlas_agent.runtime.images import CONTEXT_IGNORE
from atlas_agent.runtime.shell import PersistentShell, ShellDied
from atlas_agent.vocabulary import CommandResult, ShellEnvironment

_READ_BYTES = 1 << 16
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
# Fixed identity and dates: the same source gives the same commit in every workspace of a run.
_COMMIT_ENV = {
    "GIT_AUTHOR_NAME": "Atlas",
    "GIT_AUTHOR_EMAIL": "atlas@localhost",
    "GIT_COMMITTER_NAME": "Atlas",
    "GIT_COMMITTER_EMAIL": "atlas@localhost",
    "GIT_AUTHOR_DATE": "2026-01-01T00:00:00+0000",
    "GIT_COMMITTER_DATE": "2026-01-01T00:00:00+0000",
}


class LocalProcessChannel:
    """A `ShellChannel` to a bash child of this process, in a session (and process group) of its own."""

    def __init__(self, cwd: str, env: dict[str, str]) -> None:
        self._cwd = cwd
        self._env = env
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def where(self) -> str:
        return f"the local workspace {self._cwd}"

    def open(self, argv: list[str]) -> None:
        try:
            self._proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                cwd=self._cwd,
                env=self._env,
                start_new_session=True,  # Ctrl-C at the terminal reaches Atlas, not the agent's commands
                preexec_fn=_default_interrupts,
            )
        except OSError as exc:
            raise ShellDied(f"cannot start {argv[0]} on this machine: {exc.strerror}") from None

    def send(self, data: bytes) -> bool:
        stdin = self._proc.stdin if self._proc else None
        if stdin is None:
            return False
        try:
            stdin.write(data)
            stdin.flush()
        except (OSError, ValueError):  # ValueError: closed by another thread
            return False
        return True

    def read(self, deadline: float) -> bytes | None:
        stdout = self._proc.stdout if self._proc else None
        if stdout is None:
            return None
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        try:
            ready, _, _ = select.select([stdout], [], [], remaining)
            data = os.read(stdout.fileno(), _READ_BYTES) if ready else None
        except (OSError, ValueError):  # closed under us: the same as EOF
            return None
        if data is None:
            raise TimeoutError
        return data or None

    def disconnect(self) -> None:
        proc = self._proc
        if proc is None:
            return
        for stream in (proc.stdin, proc.stdout):
            with contextlib.suppress(OSError, ValueError):
                if stream is not None:
                    stream.close()

    def run_helper(self, argv: list[str]) -> None:
        subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, timeout=60, check=False)

    def exit_status(self) -> int:
        if self._proc is None:
            return -1
        try:
            code = self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return -1
        return 128 - code if code < 0 else code  # killed by signal N: 128 + N, as bash reports it

    def check_alive(self) -> None:
        """The host outlives its shells: nothing to check."""

    def escaped(self) -> int:
        """Processes of the shell's session that left its process tree (their parent exited)."""
        if self._proc is None:
            return 0
        members = _session_members(self._proc.pid)
        tree, grew = {self._proc.pid}, True
        while grew:
            grown = tree | {pid for pid, parent in members.items() if parent in tree}
            tree, grew = grown, grown != tree
        return len(members.keys() - tree)

    def reset(self) -> None:
        """SIGKILL to every process of the shell's session, whichever group or parent it has."""
        if self._proc is None:
            return
        for pid in _session_members(self._proc.pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._proc.wait(timeout=5)

    def kill_group(self) -> None:
        """SIGKILL to the shell's process group: bash and every job it started that kept its group."""
        if self._proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._proc.wait(timeout=5)


def _session_members(session: int) -> dict[int, int]:
    """pid → parent pid of every process in `session`, read from /proc."""
    members: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            # after the command name in parentheses: state, ppid, pgrp, session
            fields = stat.read_text().rpartition(")")[2].split()
            if int(fields[3]) == session:
                members[int(stat.parent.name)] = int(fields[1])
    return members


def _default_interrupts() -> None:
    """In the shell's child process, before bash starts: SIGINT and SIGQUIT back to their defaults.
    Atlas started in the background (`cmd &`, nohup, some CI runners) inherits them ignored, and bash
    can neither trap nor reset a signal ignored on entry: timed-out commands could not be interrupted."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGQUIT, signal.SIG_DFL)


class LocalWorkspace(cleanup.Scoped):
    """A task checkout on the host with the same interface as a task container."""

    def __init__(
        self, source: Path, *, run_id: str, instance_id: str, root: Path | None = None, eval_script: str | None = None
    ) -> None:
        """`eval_script`: the task's; its environment set-up lines (activation, exports, `cd` into the
        checkout) run in the shell before any command. This machine's own rc files are not the task's."""
        self.source = source
        self.eval_script = eval_script
        self.run_id = run_id
        self.instance_id = instance_id
        self._root = root
        self._dir: Path | None = None
        self.workdir = ""
        self.base = ""  # the checkout's own commit holding the task's base tree
        self._channel: LocalProcessChannel | None = None
        self._shell: PersistentShell | None = None
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self.workdir or f"local workspace for {self.instance_id}"

    def start(self) -> None:
        """Copies the source, commits it, and opens the shell there; removes it all again on failure."""
        if self._dir is not None:
            raise AtlasError(f"{self.name} was already started")
        cleanup.register(self)
        try:
            prefix = f"atlas-{_UNSAFE.sub('-', self.run_id)[:40]}-{_UNSAFE.sub('-', self.instance_id)[:80]}-"
            self._dir = Path(tempfile.mkdtemp(prefix=prefix, dir=self._root))
            testbed = self._dir / "testbed"
            shutil.copytree(self.source, testbed, symlinks=True, ignore=CONTEXT_IGNORE)
            self.workdir = str(testbed)
            self.base = commit_tree(testbed, f"{self.source.name} base")
            self._channel = LocalProcessChannel(self.workdir, shell_environment())
            setup = setup_lines(self.eval_script, workdir=self.workdir)
            self._shell = PersistentShell(self._channel, workdir=self.workdir, setup=setup)
            self._shell.start()
        except BaseException:
            self.remove()
            raise

    @property
    def environment(self) -> ShellEnvironment | None:
        """How the shell's environment was established (None before start)."""
        return self._shell.environment if self._shell else None

    def run(self, command: str, timeout: float = 120.0) -> CommandResult:
        if self._shell is None:
            raise AtlasError(f"{self.name} is not running: start() it first")
        return self._shell.run(command, timeout=timeout)

    def read_file(self, path: str) -> bytes:
        """The file's bytes; symlinks are followed. FileNotFoundError / IsADirectoryError."""
        return Path(self._abspath(path)).read_bytes()

    def write_file(self, path: str, data: bytes | str, mode: int = 0o644) -> None:
        target = Path(self._abspath(path))
        payload = data.encode() if isinstance(data, str) else data
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(payload)
            target.chmod(mode)
        except OSError as exc:
            raise AtlasError(f"cannot write {path} in {self.name}: {exc.strerror}") from None

    def diff(self, base_commit: str) -> str:
        """The working tree against the checkout's base (the tree of `base_commit`) as a binary-safe patch."""
        return diff_against(self, self.base or base_commit, where=self.name)

    def remove(self) -> None:
        """Ends the shell and everything in its process group, and deletes the checkout. Idempotent."""
        with self._lock:
            shell, channel, folder = self._shell, self._channel, self._dir
            self._shell = self._channel = None
        if shell is not None:
            shell.close()
        if channel is not None:
            channel.kill_group()
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
        cleanup.unregister(self)

    def _abspath(self, path: str) -> str:
        return posixpath.normpath(posixpath.join(self.workdir, path))


def commit_tree(folder: Path, message: str) -> str:
    """`git init` + one commit of everything in `folder`; its hash."""
    try:
        repo = git.Repo.init(folder)
        repo.git.add("-A")
        repo.git(c="commit.gpgsign=false").commit("-q", "--no-verify", "-m", message, env=_COMMIT_ENV)
        return repo.head.commit.hexsha
    except (git.GitCommandError, git.GitCommandNotFound, OSError) as exc:
        reason = str(getattr(exc, "stderr", "") or exc).strip().splitlines()
        raise AtlasError(f"cannot commit the checkout in {folder}: {reason[-1] if reason else exc}") from None


def shell_environment() -> dict[str, str]:
    """This process's environment; the Python running Atlas comes first on PATH (`python -m pytest`)."""
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def checkout_source(task_repo: Path | None, repo: str) -> Path:
    """Where the local runtime copies `repo` from; a one-line AtlasError when the task repo ships none."""
    name = repo.split("/")[-1]
    if task_repo is None or not (task_repo / "repos" / name).is_dir():
        where = f"{task_repo}/repos/{name}" if task_repo else "a task repo's repos/ folder"
        raise AtlasError(
            f"the local runtime needs the source of {repo} in {where}; this dataset ships none: use --runtime docker"
        )
    return task_repo / "repos" / name


def check_sources(task_repo: Path | None, repos: Iterable[str]) -> None:
    for repo in sorted(set(repos)):
        checkout_source(task_repo, repo)
