"""A persistent bash session inside a container: one `docker exec`, many commands.

Each command is one line on the exec's stdin: it sources the command text (bash `$'...'` quoting, so
nothing forks to decode it) with stdin from /dev/null, then prints a sentinel with the exit status
and cwd. Sourced in the session's own shell, `cd`, `export` and functions persist, a syntax error
fails only that command, and the session's SIGINT trap (`return 137`) can abort it anywhere: that is
how a timed-out command is interrupted without losing the session.
"""

from __future__ import annotations

import contextlib
import secrets
import socket
import struct
import threading
import time
from typing import Any

import docker
from docker.errors import APIError, NotFound
from pydantic import BaseModel

from atlas_agent.errors import AtlasError

TIMEOUT_EXIT_CODE = 137
# After interrupting a timed-out command, how long to wait for its sentinel before restarting.
INTERRUPT_GRACE_S = 2.0
_HEADER = struct.Struct(">BxxxL")
_RECV_BYTES = 1 << 16

# stderr joins stdout so their order is kept. The trap fires between two commands of the sourced
# text (or when the running child dies) and returns from `.`; outside `.` it fails silently.
_SETUP = "exec 2>&1\ntrap 'return 137 2>/dev/null' INT\n"

# Run in a separate exec: SIGINT the shell (mode int) or stop it for good (mode kill), then freeze
# and kill every descendant. Found by walking /proc/*/stat because images need not have procps.
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
    """The shell's exec ended because its container stopped or disappeared."""


class CommandResult(BaseModel):
    output: str
    exit_code: int
    timed_out: bool = False
    truncated: bool = False
    total_bytes: int
    duration_s: float


def ansi_c_quote(text: str) -> str:
    """`text` as one bash `$'...'` word: a single line, whatever the text holds."""
    return "$'" + text.translate(_QUOTE_TABLE) + "'"


def _raw_socket(wrapper: object) -> socket.socket:
    """The socket under the SDK's wrapper: reading frames from it directly avoids a buffer layer."""
    sock = getattr(wrapper, "_sock", wrapper)
    if not isinstance(sock, socket.socket):
        raise AtlasError("the Docker connection has no plain socket: use a unix:// or tcp:// DOCKER_HOST")
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # one-line writes must not wait
    return sock


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


class _FrameReader:
    """Reads docker's multiplexed stream (8-byte header: stream id, size) from a raw socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()

    def read(self, deadline: float) -> bytes | None:
        """The payload of every complete frame received so far; None on EOF; TimeoutError at deadline."""
        while True:
            payload = self._parse()
            if payload:
                return payload
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(_RECV_BYTES)
            except TimeoutError:
                raise
            except OSError:  # reset or closed under us: the same as EOF
                data = b""
            if not data:
                return None
            self.buf += data

    def _parse(self) -> bytes:
        chunks: list[bytes] = []
        offset = 0
        while len(self.buf) - offset >= _HEADER.size:
            _, size = _HEADER.unpack_from(self.buf, offset)
            end = offset + _HEADER.size + size
            if end > len(self.buf):
                break
            chunks.append(bytes(self.buf[offset + _HEADER.size : end]))
            offset = end
        if offset:
            del self.buf[:offset]
        return b"".join(chunks)


class PersistentShell:
    """One long-lived bash in a container: a command costs a socket round trip, not a new exec."""

    def __init__(
        self,
        client: docker.DockerClient,
        container_id: str,
        *,
        workdir: str = "/testbed",
        env: dict[str, str] | None = None,
        max_output_bytes: int = 100_000,
    ) -> None:
        self._client = client
        self._container_id = container_id
        self.workdir = workdir
        self._env = dict(env or {})
        self._max_output = max_output_bytes
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._wrapper: Any = None  # the SDK's socket object; it keeps the HTTP response alive
        self._reader: _FrameReader | None = None
        self._exec_id = ""
        self._closed = False
        self.pid = 0  # the shell's pid inside the container
        self.cwd = ""  # the working directory after the last finished command

    def start(self) -> None:
        """Opens the session in `workdir` when the image has it (else the image's working dir)."""
        with self._lock:
            if self._sock is None:
                self._closed = False
                self._open(self.workdir)

    def run(self, command: str, timeout: float = 120.0) -> CommandResult:
        with self._lock:
            if self._sock is None:
                raise AtlasError("the shell is not running: call start() first")
            started = time.monotonic()
            collector = _Collector(self._max_output)
            outcome = self._exchange(collector, command, started + timeout)
            if outcome == "timeout":
                return self._interrupt(collector, timeout, started)
            if outcome == "eof":
                # Closed from another thread (e.g. by signal cleanup): _restart raises ShellDied at once.
                status = -1 if self._closed else self._exit_status()
                self._restart()
                note = f"[the shell exited with status {status}; a fresh shell was started in {self.cwd}]"
                return self._result(collector, status, note, False, started)
            self.cwd = collector.cwd
            return self._result(collector, collector.status, "", False, started)

    def close(self) -> None:
        """Ends the session (bash sees EOF); safe to call twice or on a dead container."""
        self._closed = True
        self._disconnect()

    def _interrupt(self, collector: _Collector, timeout: float, started: float) -> CommandResult:
        """Kills what the timed-out command started; restarts the shell if that does not end it."""
        self._kill_tree("int", self.pid)
        outcome = self._collect(collector, time.monotonic() + INTERRUPT_GRACE_S)
        if outcome == "done":
            # bash 5.2 defers the next SIGINT trap after one that fired while it waited for a child,
            # until it forks again: fork once now, so a builtin loop run next stays interruptible.
            self.cwd = collector.cwd
            outcome = self._exchange(_Collector(0), "(:)", time.monotonic() + INTERRUPT_GRACE_S)
        if outcome == "done":
            note = f"[timed out after {timeout:g}s: the command was interrupted and its processes killed]"
        else:
            self._restart()
            note = (
                f"[timed out after {timeout:g}s and could not be interrupted: a fresh shell was started"
                f" in {self.cwd}; shell variables, functions and background jobs were lost]"
            )
        return self._result(collector, TIMEOUT_EXIT_CODE, note, True, started)

    def _open(self, cwd: str) -> None:
        api = self._client.api
        argv = ["/bin/bash", "--noprofile", "--norc"]
        try:
            self._exec_id = api.exec_create(
                self._container_id, argv, stdin=True, tty=False, environment=self._env or None
            )["Id"]
            wrapper = api.exec_start(self._exec_id, socket=True)
        except APIError as exc:
            raise self._died(exc) from None
        sock = _raw_socket(wrapper)
        self._sock, self._wrapper, self._reader = sock, wrapper, _FrameReader(sock)
        collector = _Collector(self._max_output)
        setup = f"{_SETUP}cd -- {ansi_c_quote(cwd)} 2>/dev/null\n"
        if not self._send(setup) or self._exchange(collector, "echo $$", time.monotonic() + 60) != "done":
            self._disconnect()
            self._check_container()
            raise ShellDied(f"bash did not start in container {self._container_id[:12]}: is /bin/bash there?")
        self.pid = int(collector.render()[0].strip())
        self.cwd = collector.cwd

    def _disconnect(self) -> None:
        sock, wrapper = self._sock, self._wrapper
        self._sock = self._wrapper = self._reader = None
        if sock is None:
            return
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)  # bash reads EOF; a recv blocked in another thread wakes
        # The SDK's wrapper holds a reference to the socket: the fd closes when both let go.
        for closable in (wrapper, sock):
            with contextlib.suppress(OSError):
                closable.close()

    def _restart(self) -> None:
        old_pid = self.pid
        self._disconnect()
        if self._closed:
            raise ShellDied(f"the shell in container {self._container_id[:12]} was closed")
        self._check_container()
        if old_pid:
            self._kill_tree("kill", old_pid)
        self._open(self.cwd or self.workdir)

    def _send(self, text: str) -> bool:
        if self._sock is None:
            return False
        try:
            self._sock.sendall(text.encode("utf-8", "replace"))  # "replace": lone surrogates
        except OSError:
            return False
        return True

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
                data = self._reader.read(deadline) if self._reader else None
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
        api = self._client.api
        argv = ["/bin/bash", "-c", _KILL_TREE, "atlas-kill", str(pid), mode]
        try:
            exec_id = api.exec_create(self._container_id, argv, stdin=False, tty=False)["Id"]
            api.exec_start(exec_id)
        except APIError as exc:
            raise self._died(exc) from None

    def _exit_status(self) -> int:
        """The shell's exit status once its exec ended; ShellDied when the container went with it."""
        self._check_container()
        for _ in range(100):  # the engine records the exit a moment after the socket closes
            try:
                info = self._client.api.exec_inspect(self._exec_id)
            except APIError as exc:
                raise self._died(exc) from None
            if not info.get("Running") and info.get("ExitCode") is not None:
                return int(info["ExitCode"])
            time.sleep(0.02)
        return -1

    def _check_container(self) -> None:
        try:
            state = self._client.api.inspect_container(self._container_id)["State"]
        except APIError as exc:
            raise self._died(exc) from None
        if not state.get("Running"):
            oom = ", out of memory" if state.get("OOMKilled") else ""
            code = f"{state.get('Status')}, exit code {state.get('ExitCode')}{oom}"
            raise ShellDied(f"container {self._container_id[:12]} stopped ({code}): its shell is gone")

    def _died(self, exc: APIError) -> ShellDied:
        if isinstance(exc, NotFound):
            return ShellDied(f"container {self._container_id[:12]} no longer exists: its shell is gone")
        reason = " ".join(str(exc.explanation or exc).split())
        return ShellDied(f"the shell in container {self._container_id[:12]} is gone: {reason}")
