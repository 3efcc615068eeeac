"""A persistent bash session: one long-lived bash (in a container or on the host), many commands.

Each command is one line on the exec's stdin: it sources the command text (bash `$'...'` quoting, so
nothing forks to decode it) with stdin from /dev/null, then prints a sentinel with the exit status
and cwd. Sourced in the session's own shell, `cd`, `export` and functions persist, a syntax error
fails only that command, and the session's SIGINT trap (`return 137`) can abort it anywhere: that is
how a timed-out command is interrupted without losing the session.
"""

from __future__ import annotations

import secrets
import threading
import time
from typing import Protocol

from atlas_agent.errors import AtlasError
from atlas_agent.runtime.environment import RC_FILES
from atlas_agent.vocabulary import CommandResult, SetupStep, ShellEnvironment

TIMEOUT_EXIT_CODE = 137
# After interrupting a timed-out command, how long to wait for its sentinel before restarting.
INTERRUPT_GRACE_S = 2.0

# stderr joins stdout so their order is kept. The trap fires between two commands of the sourced
# text (or when the running child dies) and returns from `.`; outside `.` it fails silently.
_SETUP = "exec 2>&1\ntrap 'return 137 2>/dev/null' INT\n"

# Start-up files that exist, one per line.
_RC_LIST = " ".join(f'"{path}"' for path in RC_FILES)
_FIND_RC = f'for f in {_RC_LIST}; do [ -f "$f" ] && printf \'%s\\n\' "$f"; done; :'
# The interpreter the environment puts first, and its sys.prefix; in a subshell, so no variable lingers.
_PROBE_PYTHON = (
    "(p=$(command -v python || command -v python3) && printf '%s\\n' \"$p\""
    " && \"$p\" -c 'import sys; print(sys.prefix)')"
)
# An rc file that never finishes (it waits on something) is a broken image, not a slow one.
SETUP_TIMEOUT_S = 60.0

# Run beside the shell (a separate exec or process): SIGINT the shell (mode int) or stop it for
# good (mode kill), then freeze and kill every descendant. Found by walking /proc/*/stat because
# images need not have procps.
# Descendants are stopped before anything is killed, so none is reparented away mid-walk.
_KILL_TREE = r"""
exec 2>/dev/null
root=$1 mode=$2
descendants() {
  local -A kids=(); local f line fields queue=("$root") p c
  for f in /proc/[0-9]*/stat; do
    read -r line 2>/dev/null <"$f" || continue
    fields=(${line##*) }) p=${f#/proc/} && kids[${fields[1]}]+=" ${p%/stat}"
  done
  while ((${#queue[@]})); do
    p=${queue[0]} queue=("${queue[@]:1}")
    for c in ${kids[$p]}; do echo "$c"; queue+=("$c"); done
  done
}
declare -A doomed=()
if [[ $mode == kill ]]; then kill -STOP "$root"; doomed[$root]=1; else kill -INT "$root"; fi
for round in 1 2 3; do
  fresh=0
  for p in $(descendants); do [[ -n ${doomed[$p]} ]] || { doomed[$p]=1 fresh=1; kill -STOP "$p"; }; done
  ((fresh)) || break
done
((${#doomed[@]})) && kill -KILL "${!doomed[@]}"
"""

# `$'...'` escapes: NUL cannot live in a bash string, so it is dropped.
_QUOTE_TABLE: dict[int, str | None] = {i: f"\\x{i:02x}" for i in range(0x20)}
_QUOTE_TABLE.update({0: None, 0x7F: "\\x7f", 0x5C: "\\\\", 0x27: "\\'", 0x0A: "\\n", 0x09: "\\t"})


class ShellDied(AtlasError):
    """The shell cannot go on: its container stopped or disappeared, or it was closed."""


class ShellChannel(Protocol):
    """Where the bash runs and how bytes reach it: a `docker exec`, or a process on the host."""

    @property
    def where(self) -> str:
        """Names the place in messages: "container 1a2b3c4d5e6f"."""
        ...

    def open(self, argv: list[str]) -> None:
        """Starts `argv` with stdin from `send` and stdout+stderr to `read`; ShellDied if it cannot."""
        ...

    def send(self, data: bytes) -> bool:
        """False once the shell's stdin is gone."""
        ...

    def read(self, deadline: float) -> bytes | None:
        """More output; None on EOF; TimeoutError at the deadline (time.monotonic)."""
        ...

    def disconnect(self) -> None:
        """Closes the shell's stdin and output (bash sees EOF); a blocked `read` wakes."""
        ...

    def run_helper(self, argv: list[str]) -> None:
        """Runs a short command beside the shell, in the same process namespace, and waits for it."""
        ...

    def exit_status(self) -> int:
        """The ended shell's exit status; ShellDied when its whole environment is gone."""
        ...

    def check_alive(self) -> None:
        """ShellDied when the environment the shell lives in has ended."""
        ...

    def escaped(self) -> int:
        """How many processes got out of the shell's process tree (a detached daemon, a fork bomb's
        orphans), or all of them when so many run that the environment is out of pids."""
        ...

    def reset(self) -> None:
        """Stops every process of the environment, files kept, so that a fresh shell can open."""
        ...


def ansi_c_quote(text: str) -> str:
    """`text` as one bash `$'...'` word: a single line, whatever the text holds."""
    return "$'" + text.translate(_QUOTE_TABLE) + "'"


class _Collector:
    """Splits the stream into a command's output, of which the first and last bytes are kept and
    the rest counted, and its sentinel line `\\n<marker> <status> <cwd>\\n`."""

    def __init__(self, limit: int) -> None:
        self.token = secrets.token_hex(8)
        self.marker = f"\n__atlas_{self.token}__ ".encode()
        self.head_limit, self.tail_limit = limit // 2, limit - limit // 2
        self.head, self.tail, self.pending = bytearray(), bytearray(), bytearray()
        self.total = self.status = 0
        self.cwd = ""

    def feed(self, data: bytes) -> bool:
        """Takes more of the stream; True once the sentinel line is complete."""
        self.pending += data
        start = self.pending.find(self.marker)
        if start < 0:
            keep = len(self.marker) - 1  # a marker may straddle two chunks
            if len(self.pending) > keep:
                self._add(self.pending[:-keep])
                del self.pending[:-keep]
            return False
        self._add(self.pending[:start])
        del self.pending[:start]
        end = self.pending.find(b"\n", len(self.marker))
        if end < 0:
            return False
        status, _, cwd = self.pending[len(self.marker) : end].decode("utf-8", "replace").partition(" ")
        self.status, self.cwd = int(status), cwd
        self.pending.clear()  # late output of background jobs goes with the sentinel
        return True

    def flush(self) -> None:
        """On EOF the held-back bytes are output too."""
        self._add(self.pending)
        self.pending.clear()

    def _add(self, data: bytes | bytearray) -> None:
        self.total += len(data)
        room = self.head_limit - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if data:
            self.tail += data
            # Trim in batches: one memmove per tail_limit bytes rather than one per chunk.
            if len(self.tail) > 2 * self.tail_limit:
                del self.tail[: len(self.tail) - self.tail_limit]

    def render(self) -> tuple[str, bool]:
        """The output as text, and whether bytes were elided from its middle."""
        tail = self.tail[len(self.tail) - self.tail_limit :] if len(self.tail) > self.tail_limit else self.tail
        elided = self.total - len(self.head) - len(tail)
        if elided <= 0:
            return (self.head + tail).decode("utf-8", "replace"), False
        note = f"\n[... {elided} bytes elided ...]\n"
        return self.head.decode("utf-8", "replace") + note + tail.decode("utf-8", "replace"), True


class PersistentShell:
    """One long-lived bash: a command costs a round trip on its channel, not a new process."""

    def __init__(
        self,
        channel: ShellChannel,
        *,
        workdir: str = "/testbed",
        max_output_bytes: int = 100_000,
        rc_files: bool = False,
        setup: list[str] | None = None,
    ) -> None:
        """`rc_files`: source the start-up files an interactive bash reads; `setup`: shell lines that
        establish the task's environment. Both run at every (re)start, before the first command."""
        self._channel = channel
        self.workdir = workdir
        self._max_output = max_output_bytes
        self._rc_files = rc_files
        self._setup = list(setup or [])
        # what the first start ran, and the interpreter it left first on PATH
        self.environment: ShellEnvironment | None = None
        self._lock = threading.Lock()
        self._open_now = False
        self._closed = False
        self.pid = 0  # the shell's pid where it runs
        self.cwd = ""  # the working directory after the last finished command

    def start(self) -> None:
        """Opens the session in `workdir` when it exists (else the environment's working dir)."""
        with self._lock:
            if not self._open_now:
                self._closed = False
                self._open(self.workdir)

    def run(self, command: str, timeout: float = 120.0) -> CommandResult:
        with self._lock:
            if not self._open_now:
                raise AtlasError("the shell is not running: call start() first")
            started = time.monotonic()
            collector = _Collector(self._max_output)
            outcome = self._exchange(collector, command, started + timeout)
            if outcome == "timeout":
                return self._interrupt(collector, timeout, started)
            if outcome == "eof":
                # Closed from another thread (e.g. by signal cleanup): _restart raises ShellDied at once.
                status = -1 if self._closed else self._channel.exit_status()
                self._restart()
                note = f"[the shell exited with status {status}; a fresh shell was started in {self.cwd}]"
                return self._result(collector, status, note, False, started)
            self.cwd = collector.cwd
            return self._result(collector, collector.status, "", False, started)

    def close(self) -> None:
        """Ends the session (bash sees EOF); safe to call twice or after its environment ended."""
        self._closed = True
        self._disconnect()

    def _interrupt(self, collector: _Collector, timeout: float, started: float) -> CommandResult:
        """Kills what the timed-out command started; restarts the shell if that does not end it, and
        the whole environment when processes escaped the command's tree."""
        escaped = self._channel.escaped()
        if not escaped:
            try:
                self._kill_tree("int", self.pid)
            except ShellDied:
                self._channel.check_alive()  # alive, yet no helper could start: out of pids
                escaped = self._channel.escaped() or 1
        if escaped:
            return self._contain(collector, timeout, started, escaped)
        outcome = self._collect(collector, time.monotonic() + INTERRUPT_GRACE_S)
        if outcome == "done":
            # bash 5.2 defers the next SIGINT trap after one that fired while it waited for a child,
            # until it forks again: fork once now, so a builtin loop run next stays interruptible.
            self.cwd = collector.cwd
            outcome = self._exchange(_Collector(0), "(:)", time.monotonic() + INTERRUPT_GRACE_S)
        if escaped := self._channel.escaped():  # detached while it was being stopped
            return self._contain(collector, timeout, started, escaped)
        if outcome == "done":
            note = f"[timed out after {timeout:g}s: the command was interrupted and its processes killed]"
        else:
            self._restart()
            note = (
                f"[timed out after {timeout:g}s and could not be interrupted: a fresh shell was started"
                f" in {self.cwd}; shell variables, functions and background jobs were lost]"
            )
        return self._result(collector, TIMEOUT_EXIT_CODE, note, True, started)

    def _contain(self, collector: _Collector, timeout: float, started: float, escaped: int) -> CommandResult:
        """Stops every process of the environment and opens a fresh shell: what escaped the command's
        tree cannot be found through it, and a fork bomb leaves no pid to run a helper with."""
        self._disconnect()
        self._channel.reset()
        self.pid = 0
        self._open(self.cwd or self.workdir)
        note = (
            f"[timed out after {timeout:g}s; {escaped} process(es) had escaped the command (detached daemons"
            f" or a fork bomb), so every process of {self._channel.where} was stopped and a fresh shell"
            f" restarted in {self.cwd}: files are kept; shell variables, functions and background jobs were lost]"
        )
        return self._result(collector, TIMEOUT_EXIT_CODE, note, True, started)

    def _open(self, cwd: str) -> None:
        self._channel.open(["/bin/bash", "--noprofile", "--norc"])
        self._open_now = True
        collector = _Collector(self._max_output)
        setup = f"{_SETUP}cd -- {ansi_c_quote(cwd)} 2>/dev/null\n"
        if not self._send(setup) or self._exchange(collector, "echo $$", time.monotonic() + 60) != "done":
            self._disconnect()
            self._channel.check_alive()
            raise ShellDied(f"bash did not start in {self._channel.where}: is /bin/bash there?")
        self.pid = int(collector.render()[0].strip())
        self.cwd = collector.cwd
        environment = self._establish()
        if self.environment is None:
            self.environment = environment
        self._setup_command(f"cd -- {ansi_c_quote(cwd)} 2>/dev/null; :")  # set-up lines may have moved it

    def _establish(self) -> ShellEnvironment:
        """Sources the start-up files, then runs the set-up lines; each is recorded with its status."""
        commands: list[tuple[str, str]] = []
        if self._rc_files:
            # PS1 set while it runs: many rc files return at once when it is empty (not interactive).
            found = self._setup_command(_FIND_RC).output.split("\n")
            commands += [(f"source {path}", f"PS1='$ ' . {ansi_c_quote(path)}") for path in found if path]
        commands += [(line, line) for line in self._setup]
        steps = []
        for shown, command in commands:
            result = self._setup_command(command)
            steps.append(SetupStep(command=shown, exit_code=result.exit_code, output=result.output.strip()))
        python, _, prefix = self._setup_command(_PROBE_PYTHON).output.strip().partition("\n")
        return ShellEnvironment(steps=steps, python=python, python_prefix=prefix.strip())

    def _setup_command(self, command: str) -> CommandResult:
        collector = _Collector(self._max_output)
        started = time.monotonic()
        if self._exchange(collector, command, started + SETUP_TIMEOUT_S) != "done":
            self._disconnect()
            self._channel.check_alive()
            raise ShellDied(f"setting up the shell in {self._channel.where} did not finish: `{command}`")
        self.cwd = collector.cwd
        return self._result(collector, collector.status, "", False, started)

    def _disconnect(self) -> None:
        self._open_now = False
        self._channel.disconnect()

    def _restart(self) -> None:
        old_pid = self.pid
        self._disconnect()
        if self._closed:
            raise ShellDied(f"the shell in {self._channel.where} was closed")
        self._channel.check_alive()
        if old_pid:
            self._kill_tree("kill", old_pid)
        self._open(self.cwd or self.workdir)

    def _send(self, text: str) -> bool:
        return self._open_now and self._channel.send(text.encode("utf-8", "replace"))  # "replace": lone surrogates

    def _exchange(self, collector: _Collector, command: str, deadline: float) -> str:
        """Sends one command; "done", "timeout" or "eof"."""
        # `.` reads the whole text before running it; stdin from /dev/null keeps `cat` off the
        # protocol. The marker is assembled by printf, so an echo of this line (set -x, set -v)
        # never contains it.
        line = (
            f". /dev/fd/3 3<<<{ansi_c_quote(command)} </dev/null;"
            f' printf \'\\n__atlas_%s__ %d %s\\n\' {collector.token} "$?" "$PWD"\n'
        )
        if not self._send(line):
            return "eof"
        return self._collect(collector, deadline)

    def _collect(self, collector: _Collector, deadline: float) -> str:
        while True:
            try:
                data = self._channel.read(deadline) if self._open_now else None
            except TimeoutError:
                return "timeout"
            if data is None:
                collector.flush()
                return "eof"
            if collector.feed(data):
                return "done"

    def _result(self, collector: _Collector, status: int, note: str, timed_out: bool, started: float) -> CommandResult:
        output, truncated = collector.render()
        if note:
            output += ("\n" if output and not output.endswith("\n") else "") + note
        return CommandResult(
            output=output,
            exit_code=status,
            timed_out=timed_out,
            truncated=truncated,
            total_bytes=collector.total,
            duration_s=round(time.monotonic() - started, 4),
        )

    def _kill_tree(self, mode: str, pid: int) -> None:
        """mode "int": interrupt the running command; "kill": end the shell and all it started."""
        self._channel.run_helper(["/bin/bash", "-c", _KILL_TREE, "atlas-kill", str(pid), mode])
