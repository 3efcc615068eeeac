"""A task container: no network, bounded memory/CPU/pids, labelled for cleanup, driven through one
persistent shell; files move in and out as tar archives, so binary content is safe."""

from __future__ import annotations

import contextlib
import io
import posixpath
import re
import secrets
import tarfile
import time
from collections.abc import Iterator

import docker
import requests
from docker.errors import APIError, ImageNotFound, NotFound
from pydantic import BaseModel

from atlas_agent.errors import AtlasError, EngineLost, ImageMissing
from atlas_agent.runtime import cleanup
from atlas_agent.runtime.diff import diff_against
from atlas_agent.runtime.docker_client import engine_reason
from atlas_agent.runtime.docker_shell import DockerExecChannel
from atlas_agent.runtime.environment import setup_lines
from atlas_agent.runtime.orphans import INSTANCE_LABEL, owner_labels
from atlas_agent.runtime.shell import PersistentShell
from atlas_agent.vocabulary import CommandResult, ShellEnvironment

_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
_S_IFDIR, _S_IFLNK = 1 << 31, 1 << 27  # Go's os.FileMode bits in the engine's path stat
_ENGINE_CPUS: dict[str, int] = {}
# No bytecode caches: a .pyc written in the same second as a same-size edit of its source looks
# valid to Python, and the edit would silently not take effect in the next test run.
CONTAINER_ENV = {"PYTHONDONTWRITEBYTECODE": "1"}
# Of Docker's default capabilities, those no repository's tests need: raw and packet sockets (a
# network of their own, even without an interface), device nodes, the audit log, file capabilities.
DROPPED_CAPABILITIES = ["NET_RAW", "MKNOD", "AUDIT_WRITE", "SETFCAP"]


class ContainerLimits(BaseModel):
    memory: str = "4g"
    cpus: float = 2.0
    pids: int = 1024


def container_name(run_id: str, instance_id: str) -> str:
    """`atlas-<run>-<instance>-<random>`, reduced to the characters Docker allows in names."""

    def clean(text: str, limit: int) -> str:
        return _NAME_UNSAFE.sub("-", text).strip("-.")[:limit] or "x"

    return f"atlas-{clean(run_id, 40)}-{clean(instance_id, 80)}-{secrets.token_hex(3)}"


class TaskContainer(cleanup.Scoped):
    def __init__(
        self,
        client: docker.DockerClient,
        image: str,
        *,
        run_id: str,
        instance_id: str,
        workdir: str = "/testbed",
        limits: ContainerLimits | None = None,
        eval_script: str | None = None,
    ) -> None:
        """`eval_script`: the task's; its environment set-up lines run in the shell before any command."""
        self._client = client
        self.image = image
        self.run_id = run_id
        self.instance_id = instance_id
        self.workdir = workdir
        self.limits = limits or ContainerLimits()
        self._name = container_name(run_id, instance_id)
        self._setup = setup_lines(eval_script, workdir=workdir)
        self._id = ""
        self._shell: PersistentShell | None = None
        self._created = self._removed = False

    @property
    def id(self) -> str:
        return self._id

    @property
    def name(self) -> str:
        return self._name

    def start(self) -> None:
        """Creates and starts the container, then opens its shell; removes it again on failure."""
        if self._created:
            raise AtlasError(f"container {self._name} was already started")
        # Registered before it exists: a signal arriving mid-create still finds it by name.
        cleanup.register(self)
        self._created = True
        try:
            with self._engine():
                self._create()
            if self._removed:  # removed (e.g. on Ctrl-C) while the engine was still creating it
                self._client.api.remove_container(self._id, force=True, v=True)
                raise AtlasError(f"container {self._name} was removed while starting")
            channel = DockerExecChannel(self._client, self._id)
            # the image's own start-up files, then the eval script's set-up: the tests' environment
            self._shell = PersistentShell(channel, workdir=self.workdir, rc_files=True, setup=self._setup)
            with self._engine():
                self._client.api.start(self._id)
                self._shell.start()
        except BaseException:
            with contextlib.suppress(EngineLost):  # it stays registered, for the sweep after reconnecting
                self.remove()
            raise

    @property
    def environment(self) -> ShellEnvironment | None:
        """How the shell's environment was established (None before start)."""
        return self._shell.environment if self._shell else None

    def run(self, command: str, timeout: float = 120.0) -> CommandResult:
        if self._shell is None or self._removed:
            raise AtlasError(f"container {self._name} is not running: start() it first")
        with self._engine():
            return self._shell.run(command, timeout=timeout)

    def read_file(self, path: str) -> bytes:
        """The file's bytes; symlinks are followed. FileNotFoundError / IsADirectoryError."""
        target = self._abspath(path)
        for _ in range(16):
            try:
                with self._engine():
                    stream, stat = self._client.api.get_archive(self._id, target)
            except NotFound:
                raise FileNotFoundError(f"{path}: no such file in container {self._name}") from None
            mode = int(stat.get("mode", 0))
            if mode & (_S_IFDIR | _S_IFLNK):
                stream.close()  # never pull a whole directory tree
                if mode & _S_IFDIR:
                    raise IsADirectoryError(f"{path}: is a directory in container {self._name}")
                target = posixpath.join(posixpath.dirname(target), stat.get("linkTarget", ""))
                continue
            return _single_file(b"".join(stream))
        raise AtlasError(f"{path}: too many levels of symbolic links in container {self._name}")

    def write_file(self, path: str, data: bytes | str, mode: int = 0o644) -> None:
        """Writes the file, creating missing parent directories (owned by root, mode 755)."""
        payload = data.encode() if isinstance(data, str) else data
        info = tarfile.TarInfo(self._abspath(path).lstrip("/"))
        info.size, info.mode, info.mtime = len(payload), mode, int(time.time())
        archive = io.BytesIO()
        with tarfile.open(fileobj=archive, mode="w") as tar:
            tar.addfile(info, io.BytesIO(payload))
        try:
            with self._engine():
                self._client.api.put_archive(self._id, "/", archive.getvalue())
        except APIError as exc:
            raise AtlasError(f"cannot write {path} in container {self._name}: {_reason(exc)}") from None

    def diff(self, base_commit: str) -> str:
        """The working tree against `base_commit` as a binary-safe patch, new files included; "" if none."""
        return diff_against(self, base_commit, where=self._name)

    def remove(self) -> None:
        """Force-removes the container (SIGKILL, no stop timeout). Idempotent."""
        if self._removed:
            return
        self._removed = True
        if self._shell is not None:
            self._shell.close()
        if self._created:
            try:
                with self._engine():
                    self._client.api.remove_container(self._id or self._name, force=True, v=True)
            except EngineLost:
                self._removed = False  # still registered: removed once the engine is back
                raise
            except NotFound:
                pass
            except APIError as exc:
                if exc.status_code != 409:  # 409: a removal is already in progress
                    self._removed = False
                    raise AtlasError(f"cannot remove container {self._name}: {_reason(exc)}") from None
        cleanup.unregister(self)

    @contextlib.contextmanager
    def _engine(self) -> Iterator[None]:
        """A connection to the engine that fails or breaks is EngineLost, named in one line."""
        try:
            yield
        except requests.exceptions.ConnectionError as exc:
            where = self._client.api.base_url
            raise EngineLost(
                f"lost the Docker engine at {where} while using container {self._name}: {engine_reason(exc)}"
            ) from None

    def _create(self) -> None:
        labels = {**owner_labels(self.run_id), INSTANCE_LABEL: self.instance_id}
        cpus = min(self.limits.cpus, _engine_cpus(self._client))
        try:
            created = self._client.api.create_container(
                self.image,
                command=["infinity"],
                entrypoint=["sleep"],  # whatever the image's entrypoint, the container just idles
                name=self._name,
                labels=labels,
                environment=CONTAINER_ENV,
                host_config=self._client.api.create_host_config(
                    network_mode="none",  # task containers never reach a network
                    mem_limit=self.limits.memory,
                    nano_cpus=int(cpus * 1e9),
                    pids_limit=self.limits.pids,
                    init=True,  # reaps the orphans that killed commands leave behind
                    cap_drop=DROPPED_CAPABILITIES,
                    security_opt=["no-new-privileges"],  # setuid binaries gain nothing
                ),
            )
        except ImageNotFound:
            raise ImageMissing(f"image {self.image} is not present: build or pull it (`atlas images build`)") from None
        except APIError as exc:
            raise AtlasError(f"cannot create a container from {self.image}: {_reason(exc)}") from None
        self._id = created["Id"]

    def _abspath(self, path: str) -> str:
        return posixpath.normpath(posixpath.join(self.workdir, path))


def _single_file(archive: bytes) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        member = tar.next()
        content = tar.extractfile(member) if member is not None else None
        if content is None:
            raise AtlasError("the engine returned an archive without a regular file")
        return content.read()


def _engine_cpus(client: docker.DockerClient) -> int:
    """The engine rejects a CPU limit above its CPU count; asked once per engine."""
    url = client.api.base_url
    if url not in _ENGINE_CPUS:
        _ENGINE_CPUS[url] = int(client.info().get("NCPU") or 1)
    return _ENGINE_CPUS[url]


def _reason(exc: APIError) -> str:
    return " ".join(str(exc.explanation or exc).split())
