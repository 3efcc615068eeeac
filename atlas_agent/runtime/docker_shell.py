"""The transport of a persistent shell inside a container: one `docker exec` with its stdin and
multiplexed output on a raw socket; helper scripts run as separate execs."""

from __future__ import annotations

import contextlib
import socket
import struct
import time
from typing import Any

import docker
from docker.errors import APIError, NotFound

from atlas_agent.errors import AtlasError
from atlas_agent.runtime.shell import ShellDied

_HEADER = struct.Struct(">BxxxL")
_RECV_BYTES = 1 << 16
# Processes this close to the container's pids limit mean a runaway: helpers could not even start.
PIDS_HEADROOM = 8


def _raw_socket(wrapper: object) -> socket.socket:
    """The socket under the SDK's wrapper: reading frames from it directly avoids a buffer layer."""
    sock = getattr(wrapper, "_sock", wrapper)
    if not isinstance(sock, socket.socket):
        raise AtlasError("the Docker connection has no plain socket: use a unix:// or tcp:// DOCKER_HOST")
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # one-line writes must not wait
    return sock


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


class DockerExecChannel:
    """A `ShellChannel` over the Docker engine: the shell is an exec in `container_id`."""

    def __init__(self, client: docker.DockerClient, container_id: str, env: dict[str, str] | None = None) -> None:
        self._client = client
        self._container_id = container_id
        self._env = dict(env or {})
        self._exec_id = ""
        self._sock: socket.socket | None = None
        self._wrapper: Any = None  # the SDK's socket object; it keeps the HTTP response alive
        self._reader: _FrameReader | None = None

    @property
    def where(self) -> str:
        return f"container {self._container_id[:12]}"

    def open(self, argv: list[str]) -> None:
        api = self._client.api
        try:
            self._exec_id = api.exec_create(
                self._container_id, argv, stdin=True, tty=False, environment=self._env or None
            )["Id"]
            wrapper = api.exec_start(self._exec_id, socket=True)
        except APIError as exc:
            raise self._died(exc) from None
        sock = _raw_socket(wrapper)
        self._sock, self._wrapper, self._reader = sock, wrapper, _FrameReader(sock)

    def send(self, data: bytes) -> bool:
        if self._sock is None:
            return False
        try:
            self._sock.sendall(data)
        except OSError:
            return False
        return True

    def read(self, deadline: float) -> bytes | None:
        return self._reader.read(deadline) if self._reader else None

    def disconnect(self) -> None:
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

    def run_helper(self, argv: list[str]) -> None:
        try:
            exec_id = self._client.api.exec_create(self._container_id, argv, stdin=False, tty=False)["Id"]
            self._client.api.exec_start(exec_id)
        except APIError as exc:
            raise self._died(exc) from None

    def exit_status(self) -> int:
        """The shell's exit status once its exec ended; ShellDied when the container went with it."""
        self.check_alive()
        for _ in range(100):  # the engine records the exit a moment after the socket closes
            try:
                info = self._client.api.exec_inspect(self._exec_id)
            except APIError as exc:
                raise self._died(exc) from None
            if not info.get("Running") and info.get("ExitCode") is not None:
                return int(info["ExitCode"])
            time.sleep(0.02)
        return -1

    def check_alive(self) -> None:
        try:
            state = self._client.api.inspect_container(self._container_id)["State"]
        except APIError as exc:
            raise self._died(exc) from None
        if not state.get("Running"):
            oom = ", out of memory" if state.get("OOMKilled") else ""
            code = f"{state.get('Status')}, exit code {state.get('ExitCode')}{oom}"
            raise ShellDied(f"container {self._container_id[:12]} stopped ({code}): its shell is gone")

    def escaped(self) -> int:
        # Asked of the engine, which lists the container's processes from outside: inside, a fork
        # bomb leaves no pid to start `ps` with. Task containers run docker-init (`init=True`):
        # its first child is the container's idle command, any other child an orphan that escaped.
        api = self._client.api
        try:
            state, host = (info := api.inspect_container(self._container_id))["State"], info["HostConfig"]
            top = api.top(self._container_id)
        except APIError as exc:
            raise self._died(exc) from None
        rows = top.get("Processes") or []
        pid_at, ppid_at = top["Titles"].index("PID"), top["Titles"].index("PPID")
        children = sorted(int(row[pid_at]) for row in rows if int(row[ppid_at]) == state.get("Pid"))
        limit = host.get("PidsLimit") or 0
        if limit > 0 and len(rows) >= limit - PIDS_HEADROOM:
            return len(rows)
        return max(0, len(children) - 1)

    def reset(self) -> None:
        """SIGKILL to the container's init, which takes every process of its namespace with it; the
        container then starts again with its filesystem as it was."""
        api = self._client.api
        try:
            with contextlib.suppress(APIError):  # 409: it stopped on its own meanwhile
                api.kill(self._container_id)
            api.wait(self._container_id, timeout=60)
            api.start(self._container_id)
        except APIError as exc:
            raise self._died(exc) from None

    def _died(self, exc: APIError) -> ShellDied:
        if isinstance(exc, NotFound):
            return ShellDied(f"container {self._container_id[:12]} no longer exists: its shell is gone")
        reason = " ".join(str(exc.explanation or exc).split())
        return ShellDied(f"the shell in container {self._container_id[:12]} is gone: {reason}")
