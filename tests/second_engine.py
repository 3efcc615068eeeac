"""A second Docker engine that fault-injection tests stop, kill and restart without touching the main one.

Debian's dockerd (docker.io 20.10) supervises a containerd of its own unless a system containerd's
socket exists at /run/containerd/containerd.sock. There is none here (the main engine runs its own),
so the second engine gets its own containerd too, with its socket, state and content under its
exec-root and data-root. On a host with a system containerd both engines would attach to it; the
second engine's own containerd namespaces keep its containers, tasks and snapshots apart.

What dockerd does to containers without --live-restore:
- SIGTERM (a service stop or restart): every running container is stopped with its stop signal, which
  is SIGKILL in Atlas images, so they exit with 137; they stay on the engine, exited, across the restart.
- SIGKILL (a crash): containerd goes down with dockerd, but the containers' shims keep the containers
  running until dockerd starts again, which kills them while it restores its state (exit 137 as well).
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing, suppress
from pathlib import Path

import docker
import pytest
import requests

ENGINE_FLAGS = ("--bridge=none", "--iptables=false", "--ip-masq=false")  # as scripts/setup.sh starts the main engine
NAMESPACE = "atlas-second-engine"
DEFAULT_INSTANCE = "atlas__tally-1"
START_TIMEOUT_S = 60.0
# dockerd gives running containers up to its shutdown timeout (15 s) before it stops containerd
STOP_TIMEOUT_S = 60.0
POLL_S = 0.05
# sun_path holds 108 bytes with the trailing NUL; the ttrpc socket is the deepest one dockerd creates
SOCKET_PATH_LIMIT = 107
DEEPEST_SOCKET = "exec/containerd/containerd.sock.ttrpc"
MNT_DETACH = 2


class SecondEngine:
    """A dockerd with its own data-root, exec-root, pidfile, socket and containerd, all under `root`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data_root = root / "data"
        self.exec_root = root / "exec"
        self.socket = root / "docker.sock"
        self.log_path = root / "dockerd.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._restarts = ThreadPoolExecutor(max_workers=1, thread_name_prefix="second-engine-restart")
        self._pending_restart: Future[None] | None = None

    @classmethod
    def create(cls) -> SecondEngine:
        """An engine, not started yet, in a fresh directory short enough for its sockets' paths."""
        return cls(_short_root())

    @property
    def docker_host(self) -> str:
        """The DOCKER_HOST value that points a subprocess at this engine."""
        return f"unix://{self.socket}"

    @property
    def answers(self) -> bool:
        """Whether the engine answers a ping now."""
        return _answers(self.docker_host)

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def client(self, timeout: int = 120) -> docker.DockerClient:
        """A new SDK client (the caller closes it): pooled connections do not survive a restart.

        Making it contacts the engine, so it raises DockerException while the engine is down."""
        return docker.DockerClient(base_url=self.docker_host, timeout=timeout)

    def start(self) -> None:
        """Start dockerd on the existing data-root and wait until it answers."""
        if self.running:
            raise RuntimeError("the second engine is already running")
        command = [
            "dockerd",
            *ENGINE_FLAGS,
            f"--config-file={self._empty_config()}",  # never the host's /etc/docker/daemon.json
            f"--data-root={self.data_root}",
            f"--exec-root={self.exec_root}",
            f"--pidfile={self.root / 'dockerd.pid'}",
            f"--host={self.docker_host}",
            f"--containerd-namespace={NAMESPACE}",
            f"--containerd-plugins-namespace={NAMESPACE}-plugins",
        ]
        with self.log_path.open("ab") as log:
            # a session of its own: a Ctrl-C meant for pytest must not stop the engine behind the fixture's back
            self._process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self._wait_until_answering()

    def stop(self) -> None:
        """SIGTERM dockerd, as a service stop does, and wait until it and its containerd have exited."""
        self._signal_and_wait(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL dockerd, as a crash would; wait until it and its containerd are gone (shims survive)."""
        self._signal_and_wait(signal.SIGKILL)

    def restart(self, down_for_s: float) -> Future[None]:
        """Stop, stay down for `down_for_s`, start again, in the background; the future says when it is up."""
        if self._pending_restart is not None and not self._pending_restart.done():
            raise RuntimeError("the second engine is already restarting")
        self._pending_restart = self._restarts.submit(self._restart, down_for_s)
        return self._pending_restart

    def settle(self) -> None:
        """Wait for a restart in flight (raising its error) and leave the engine running."""
        pending, self._pending_restart = self._pending_restart, None
        try:
            if pending is not None:
                pending.result(timeout=START_TIMEOUT_S + STOP_TIMEOUT_S)
        finally:
            if not self.running:
                self.start()

    def load_image(self, image: str, source: docker.DockerClient) -> None:
        """Copy `image` from the `source` engine unless this engine has it (`docker save | docker load`)."""
        with closing(self.client()) as client:
            if _has_image(client, image):
                return
            # saved by name, not by id, so that the loaded image keeps its tag
            client.images.load(source.api.get_image(image))

    def remove_all_containers(self) -> list[str]:
        """Remove every container, running or not; return their names."""
        with closing(self.client()) as client:
            containers = client.containers.list(all=True)
            for container in containers:
                container.remove(force=True, v=True)
        return sorted(container.name for container in containers)

    def close(self) -> None:
        """Remove every container, stop the engine, unmount what it left mounted and delete its directories."""
        try:
            self.settle()  # after kill() the containers still run; a start kills them
            self.remove_all_containers()
            self.stop()
        finally:
            self._restarts.shutdown(wait=True)
            survivors = _reap_processes_under(self.root)
            _unmount_under(self.root)
            shutil.rmtree(self.root)
        if survivors:
            raise RuntimeError(f"processes of the second engine outlived its stop and were killed: {survivors}")

    def _restart(self, down_for_s: float) -> None:
        self.stop()
        time.sleep(down_for_s)
        self.start()

    def _empty_config(self) -> Path:
        path = self.root / "daemon.json"
        path.write_text("{}\n")
        return path

    def _wait_until_answering(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if not self.running:
                raise RuntimeError(f"the second dockerd exited while starting: {self._log_tail()}")
            if self.answers:
                return
            time.sleep(POLL_S)
        raise RuntimeError(f"the second dockerd did not answer in {START_TIMEOUT_S:.0f} s: {self._log_tail()}")

    def _signal_and_wait(self, signum: signal.Signals) -> None:
        if self._process is None or not self.running:
            raise RuntimeError("the second engine is not running")
        self._process.send_signal(signum)
        self._process.wait(timeout=STOP_TIMEOUT_S)
        # dockerd takes any process at the pid in containerd.pid for its containerd, a zombie included, and
        # then waits in vain for its socket: the next start must wait until the old one is reaped
        containerd = self._containerd_pid()
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while containerd is not None and _still_holds_pid(containerd, self.root):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the second engine's containerd (pid {containerd}) was not reaped in time")
            time.sleep(POLL_S)

    def _containerd_pid(self) -> int | None:
        try:
            return int((self.exec_root / "containerd" / "containerd.pid").read_text())
        except (FileNotFoundError, ValueError):
            return None

    def _log_tail(self, lines: int = 5) -> str:
        tail = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        return " | ".join(tail) + f" (log: {self.log_path})"


def _answers(docker_host: str) -> bool:
    try:
        # the client asks the engine for its API version as it is made: that is the first contact
        with closing(docker.DockerClient(base_url=docker_host, timeout=5)) as client:
            return bool(client.ping())
    except (docker.errors.DockerException, requests.RequestException):  # no socket (yet, or any more)
        return False


def _has_image(client: docker.DockerClient, image: str) -> bool:
    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        return False
    return True


def _process(pid: int) -> tuple[str, str] | None:
    """The state letter and command line of `pid`, or None when there is no such process."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    return state, command.replace(b"\0", b" ").decode(errors="replace")


def _still_holds_pid(pid: int, root: Path) -> bool:
    """Whether `pid` is still the engine's process (running, or a zombie not reaped yet), not a later one."""
    process = _process(pid)
    return process is not None and (process[0] == "Z" or str(root) in process[1])


def _reap_processes_under(root: Path) -> list[str]:
    """SIGKILL what still runs with `root` on its command line (dockerd, containerd, shims); say what it was."""
    survivors = []
    for pid in (int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()):
        process = _process(pid)
        if process is not None and process[0] != "Z" and f"{root}/" in process[1] and pid != os.getpid():
            with suppress(ProcessLookupError):  # it exited meanwhile
                os.kill(pid, signal.SIGKILL)
            survivors.append(process[1])
    return survivors


def _mount_points_under(root: Path) -> list[str]:
    prefix = f"{root}/"
    with open("/proc/self/mountinfo") as mountinfo:
        points = [line.split()[4] for line in mountinfo]
    # deepest first: an overlay under the data-root before the data-root's own bind mount
    return sorted((p for p in points if p == str(root) or p.startswith(prefix)), key=len, reverse=True)


def _unmount_under(root: Path) -> None:
    """Detach every mount under `root`: overlays, network namespaces, the data-root's bind mount."""
    libc = ctypes.CDLL(None, use_errno=True)
    # stacked mounts share a mount point; each pass takes off the top one
    for _ in range(10):
        points = _mount_points_under(root)
        if not points:
            return
        for point in points:
            if libc.umount2(point.encode(), MNT_DETACH) != 0 and ctypes.get_errno() != 22:  # EINVAL: gone already
                raise OSError(ctypes.get_errno(), f"cannot unmount {point}")
    raise RuntimeError(f"mounts under {root} would not go: {_mount_points_under(root)}")


def _short_root() -> Path:
    """A fresh directory whose deepest socket path fits in sun_path; /tmp when TMPDIR is too deep."""
    base = tempfile.gettempdir()
    headroom = SOCKET_PATH_LIMIT - len("/atlas-engine-xxxxxxxx/") - len(DEEPEST_SOCKET)
    return Path(tempfile.mkdtemp(prefix="atlas-engine-", dir=base if len(base) <= headroom else "/tmp"))


@pytest.fixture(scope="session")
def second_engine_session() -> Iterator[SecondEngine]:
    """One second engine for the whole session; tests use `second_engine`, which checks what they leave."""
    if os.geteuid() != 0:
        pytest.skip("a second Docker engine needs root (dockerd mounts and makes network namespaces)")
    if shutil.which("dockerd") is None:
        pytest.skip("no dockerd to start a second Docker engine: install docker.io")
    engine = SecondEngine.create()
    try:
        engine.start()
        yield engine
    finally:
        engine.close()


@pytest.fixture
def second_engine(second_engine_session: SecondEngine) -> Iterator[SecondEngine]:
    """The running second engine; afterwards it runs again and holds no container (a leftover fails the test)."""
    yield second_engine_session
    second_engine_session.settle()
    fail_on_leftovers(second_engine_session)


def fail_on_leftovers(engine: SecondEngine) -> None:
    """Fail, naming them, when containers are left on the engine; they are removed either way."""
    leftovers = engine.remove_all_containers()
    if leftovers:
        pytest.fail(f"containers left on the second engine (removed now): {', '.join(leftovers)}")


@pytest.fixture
def second_engine_image(
    second_engine: SecondEngine, docker_client: docker.DockerClient, request: pytest.FixtureRequest
) -> str:
    """The image of an atlas-mini task, loaded into the second engine once a session.

    The task is `atlas__tally-1` unless a test names another one:
    `@pytest.mark.parametrize("second_engine_image", ["atlas__hoard-2"], indirect=True)`.
    """
    from atlas_agent.runtime.task_images import prepare_images
    from atlas_agent.tasks import MINI_SUITE_DIR, load_tasks

    instance_id = getattr(request, "param", DEFAULT_INSTANCE)
    suite = load_tasks("atlas-mini")
    tasks = [task for task in suite if task.instance_id == instance_id]
    if not tasks:
        raise ValueError(f"no atlas-mini task {instance_id}: name one of {', '.join(t.instance_id for t in suite)}")
    prepare_images(docker_client, tasks, MINI_SUITE_DIR)  # built on the main engine when missing
    second_engine.load_image(tasks[0].image, docker_client)
    return tasks[0].image
