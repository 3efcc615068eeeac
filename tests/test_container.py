"""Task containers against a real engine: isolation, limits, labels, files, diffs, removal, gc, signals."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from docker.errors import NotFound

from atlas_agent.errors import AtlasError
from atlas_agent.runtime.container import ContainerLimits, TaskContainer
from atlas_agent.runtime.orphans import MANAGED_LABEL, list_containers, remove_containers

pytestmark = pytest.mark.docker

REPO_ROOT = Path(__file__).resolve().parent.parent
GIT_ENV = "export GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@e GIT_COMMITTER_NAME=t GIT_COMMITTER_EMAIL=t@e"


def wait_for_process(docker_client, container_id: str, command: str, timeout: float = 30) -> None:
    """Until `command` runs in the container (the signal must find it running)."""
    deadline = time.monotonic() + timeout
    while not any(command in " ".join(row) for row in docker_client.api.top(container_id)["Processes"] or []):
        assert time.monotonic() < deadline, f"{command!r} never started"
        time.sleep(0.05)


def exists(docker_client, container_id: str) -> bool:
    try:
        docker_client.api.inspect_container(container_id)
    except NotFound:
        return False
    return True


def test_network_is_none(docker_client, container: TaskContainer) -> None:
    assert docker_client.api.inspect_container(container.id)["HostConfig"]["NetworkMode"] == "none"
    connect = "python3 -c \"import socket; socket.create_connection(('1.1.1.1', 53), timeout=3)\""
    result = container.run(connect)
    assert result.exit_code != 0 and "unreachable" in result.output.lower()
    assert container.run("ls /sys/class/net").output.split() == ["lo"]


@pytest.mark.parametrize(
    "opening",
    ["socket.socket(socket.AF_PACKET, socket.SOCK_RAW)", "socket.socket(socket.AF_INET, socket.SOCK_RAW, 1)"],
    ids=["packet", "raw-icmp"],
)
def test_raw_and_packet_sockets_are_refused(container: TaskContainer, opening: str) -> None:
    result = container.run(f'python3 -c "import socket; {opening}"')
    assert result.exit_code != 0 and "PermissionError" in result.output, result.output
    assert container.run("mknod /tmp/dev c 1 3").exit_code != 0, "no device nodes either"


def test_limits_are_applied(docker_client, base_image: str) -> None:
    limits = ContainerLimits(memory="512m", cpus=1.0, pids=256)
    with TaskContainer(docker_client, base_image, run_id="test-container", instance_id="limits", limits=limits) as box:
        host = docker_client.api.inspect_container(box.id)["HostConfig"]
        assert (host["Memory"], host["NanoCpus"], host["PidsLimit"]) == (512 * 2**20, 10**9, 256)
        # cgroup v2 or v1, whichever the host has: the kernel enforces what the engine recorded.
        pids_max = box.run("cat /sys/fs/cgroup/pids.max /sys/fs/cgroup/pids/pids.max 2>/dev/null")
        assert pids_max.output.strip() == "256"


def test_default_limits(docker_client, container: TaskContainer) -> None:
    host = docker_client.api.inspect_container(container.id)["HostConfig"]
    cpus = min(2, docker_client.info()["NCPU"])
    assert (host["Memory"], host["NanoCpus"], host["PidsLimit"]) == (4 * 2**30, cpus * 10**9, 1024)


def test_labels_and_name(docker_client, container: TaskContainer) -> None:
    labels = docker_client.api.inspect_container(container.id)["Config"]["Labels"]
    assert labels[MANAGED_LABEL] == "1"
    assert labels["atlas.run_id"] == "test-container" and labels["atlas.instance_id"] == "org__repo-1"
    assert labels["atlas.pid"] == str(os.getpid()) and labels["atlas.host"] == socket.gethostname()
    assert container.name.startswith("atlas-test-container-org__repo-1-")


def test_instance_ids_are_sanitised_in_names(docker_client, base_image: str) -> None:
    with TaskContainer(docker_client, base_image, run_id="run 1", instance_id="a/b:c@d") as box:
        assert box.name.startswith("atlas-run-1-a-b-c-d-")
        assert docker_client.api.inspect_container(box.id)["Config"]["Labels"]["atlas.instance_id"] == "a/b:c@d"


def test_write_and_read_files(container: TaskContainer) -> None:
    blob = bytes(range(256)) * 64
    container.write_file("/work/deep/new/dir/blob.bin", blob, mode=0o600)
    assert container.read_file("/work/deep/new/dir/blob.bin") == blob
    assert container.run("stat -c %a /work/deep/new/dir/blob.bin").output == "600\n"
    container.write_file("/work/text.txt", "héllo\n")
    assert container.read_file("/work/text.txt") == "héllo\n".encode()
    container.write_file("/work/text.txt", "replaced")
    assert container.run("cat /work/text.txt").output == "replaced"
    container.run("ln -sf text.txt /work/link")
    assert container.read_file("/work/link") == b"replaced"


def test_relative_paths_are_under_the_workdir(container: TaskContainer) -> None:
    container.write_file("rel/file.txt", "x")
    assert container.read_file("/testbed/rel/file.txt") == b"x"


def test_read_errors(container: TaskContainer) -> None:
    with pytest.raises(FileNotFoundError, match="no such file"):
        container.read_file("/does/not/exist")
    with pytest.raises(IsADirectoryError):
        container.read_file("/etc")


def make_repo(box: TaskContainer, path: str) -> str:
    """A repository at `path` with a text and a binary file committed; returns the commit."""
    script = f"""
        {GIT_ENV}
        rm -rf {path} && mkdir -p {path} && cd {path} && git init -q
        printf 'one\\ntwo\\nthree\\n' > a.txt
        head -c 3000 /dev/urandom > data.bin
        git add -A && git commit -qm base && git rev-parse HEAD
    """
    result = box.run(textwrap.dedent(script))
    assert result.exit_code == 0, result.output
    return result.output.split()[-1]


def test_diff_includes_new_and_binary_files_and_leaves_the_index_alone(container: TaskContainer) -> None:
    repo = container.workdir
    base = make_repo(container, repo)
    # A staged and an unstaged edit, a new text file, a changed and a new binary file.
    container.run(f"cd {repo} && sed -i s/two/TWO/ a.txt && git add a.txt && echo four >> a.txt")
    container.run(f"cd {repo} && echo fresh > new.txt && head -c 500 /dev/urandom > data.bin")
    container.run(f"cd {repo} && printf '\\0\\1' > n.bin")
    status = container.run(f"cd {repo} && git status --porcelain").output
    index_sum = hashlib.sha256(container.read_file(f"{repo}/.git/index")).hexdigest()

    patch = container.diff(base)

    assert "a/a.txt" in patch and "+TWO" in patch and "+four" in patch
    assert "b/new.txt" in patch and "GIT binary patch" in patch and "b/n.bin" in patch
    assert patch.endswith("\n")
    assert container.run(f"cd {repo} && git status --porcelain").output == status
    assert hashlib.sha256(container.read_file(f"{repo}/.git/index")).hexdigest() == index_sum
    assert not container.run("ls /tmp/.atlas-* 2>/dev/null").output  # temporary files are gone

    container.write_file("/tmp/change.patch", patch)
    check = f"""
        rm -rf /tmp/fresh && git clone -q {repo} /tmp/fresh && cd /tmp/fresh && git checkout -q {base}
        git apply /tmp/change.patch
        for f in a.txt new.txt data.bin n.bin; do cmp $f {repo}/$f || exit 1; done
    """
    result = container.run(textwrap.dedent(check))
    assert result.exit_code == 0, result.output


def test_same_size_edits_right_after_an_index_write_are_seen(container: TaskContainer) -> None:
    """git's racily-clean entries: an edit of the same size in the same second as the index write."""
    repo = container.workdir
    base = make_repo(container, repo)
    for _ in range(5):
        container.run(f"cd {repo} && git checkout -q -- . && git status --porcelain >/dev/null")
        container.write_file(f"{repo}/a.txt", "one\nTWO\nthree\n")
        assert "+TWO" in container.diff(base)


def test_python_never_runs_a_stale_bytecode_cache(container: TaskContainer) -> None:
    """An edit of the same size within a second of an import must take effect on the next run."""
    container.run("mkdir -p /tmp/pyc && cd /tmp/pyc && echo 'VALUE = 1' > mod.py")
    for expected in ("1", "2", "3"):
        container.write_file("/tmp/pyc/mod.py", f"VALUE = {expected}\n")
        assert container.run("cd /tmp/pyc && python3 -c 'import mod; print(mod.VALUE)'").output.strip() == expected


def test_diff_is_empty_without_changes(container: TaskContainer) -> None:
    base = make_repo(container, container.workdir)
    assert container.diff(base) == ""


def test_diff_of_a_bad_commit_is_one_clear_error(container: TaskContainer) -> None:
    make_repo(container, container.workdir)
    with pytest.raises(AtlasError, match="cannot diff") as caught:
        container.diff("0" * 40)
    assert "\n" not in str(caught.value)


def test_remove_is_idempotent(docker_client, base_image: str) -> None:
    box = TaskContainer(docker_client, base_image, run_id="test-container", instance_id="remove")
    box.start()
    started = time.monotonic()
    box.remove()
    box.remove()
    assert time.monotonic() - started < 5  # no stop timeout
    assert not exists(docker_client, box.id)


def test_with_block_removes_on_exception(docker_client, base_image: str) -> None:
    with (
        pytest.raises(RuntimeError),
        TaskContainer(docker_client, base_image, run_id="test-container", instance_id="boom") as box,
    ):
        container_id = box.id
        raise RuntimeError("boom")
    assert not exists(docker_client, container_id)


def dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_gc_finds_orphans_and_spares_live_owners(docker_client, base_image: str) -> None:
    run_id = f"test-gc-{os.getpid()}"
    orphans = []
    for pid, host in ((dead_pid(), socket.gethostname()), (os.getpid(), "another-host")):
        labels = {MANAGED_LABEL: "1", "atlas.run_id": run_id, "atlas.pid": str(pid), "atlas.host": host}
        orphans.append(docker_client.containers.create(base_image, ["sleep", "1"], labels=labels, network_mode="none"))
    try:
        with TaskContainer(docker_client, base_image, run_id=run_id, instance_id="alive") as alive:
            found = {c.id for c in list_containers(docker_client, run_id=run_id, only_orphans=True)}
            assert found == {orphan.id for orphan in orphans}
            assert len(list_containers(docker_client, run_id=run_id)) == 3
            assert remove_containers(docker_client, orphans) == 2
            assert [c.id for c in list_containers(docker_client, run_id=run_id)] == [alive.id]
    finally:
        remove_containers(docker_client, orphans)
    assert not list_containers(docker_client, run_id=run_id)


SIGTERM_SCRIPT = """
import sys, threading, time
from atlas_agent.runtime import cleanup
from atlas_agent.errors import AtlasError
from atlas_agent.runtime.container import TaskContainer
from atlas_agent.runtime.docker_client import connect

def work():
    with TaskContainer(connect(), sys.argv[1], run_id="test-sigterm", instance_id="sig") as box:
        print(box.id, flush=True)
        box.run("sleep 120", timeout=300)

cleanup.install_signal_handlers()
if sys.argv[2] == "thread":
    worker = threading.Thread(target=work)
    worker.start()
    worker.join()
else:
    work()
"""


@pytest.mark.parametrize("where", ["main", "thread"])
def test_sigterm_removes_the_container(docker_client, base_image: str, where: str) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", SIGTERM_SCRIPT, base_image, where], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        container_id = proc.stdout.readline().strip()
        assert container_id and exists(docker_client, container_id)
        wait_for_process(docker_client, container_id, "sleep 120")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 128 + signal.SIGTERM
    finally:
        proc.kill()
    assert not exists(docker_client, container_id)
