"""Find and remove Atlas containers, in particular those whose owning process is gone (SIGKILL, crash)."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable, Mapping

import docker
from docker.errors import APIError, NotFound
from docker.models.containers import Container

from atlas_agent.errors import AtlasError

MANAGED_LABEL = "atlas.managed"
RUN_ID_LABEL = "atlas.run_id"
INSTANCE_LABEL = "atlas.instance_id"
PID_LABEL = "atlas.pid"
HOST_LABEL = "atlas.host"


def owner_labels(run_id: str) -> dict[str, str]:
    """The labels that mark a container as Atlas's and name the process responsible for removing it."""
    return {
        MANAGED_LABEL: "1",
        RUN_ID_LABEL: run_id,
        PID_LABEL: str(os.getpid()),
        HOST_LABEL: socket.gethostname(),
    }


def list_containers(
    client: docker.DockerClient, *, run_id: str | None = None, only_orphans: bool = False
) -> list[Container]:
    """Atlas containers in any state, optionally of one run, optionally only those nobody owns."""
    labels = [f"{MANAGED_LABEL}=1"]
    if run_id is not None:
        labels.append(f"{RUN_ID_LABEL}={run_id}")
    found = client.containers.list(all=True, filters={"label": labels}, ignore_removed=True)
    return [container for container in found if not only_orphans or is_orphan(container.labels)]


def is_orphan(labels: Mapping[str, str]) -> bool:
    """Owned by a process that is gone, or made on another host, where this one cannot check."""
    if labels.get(HOST_LABEL) != socket.gethostname():
        return True
    try:
        pid = int(labels.get(PID_LABEL, ""))
    except ValueError:
        return True
    return not pid_alive(pid)


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, just someone else's
        return True
    return True


def remove_containers(client: docker.DockerClient, containers: Iterable[Container]) -> int:
    """Force-removes each container (no stop timeout); returns how many this call removed."""
    removed = 0
    for container in containers:
        if container.id is None:
            continue
        try:
            client.api.remove_container(container.id, force=True, v=True)
        except NotFound:
            continue
        except APIError as exc:
            if exc.status_code == 409:  # a removal already in progress elsewhere
                continue
            reason = " ".join(str(exc.explanation or exc).split())
            raise AtlasError(f"cannot remove container {container.name}: {reason}") from None
        removed += 1
    return removed


def remove_stopped(client: docker.DockerClient, run_id: str) -> int:
    """Removes the run's containers that ended: an engine that restarted stopped them all. One another
    worker is creating right now ("created") is left alone."""
    stopped = [c for c in list_containers(client, run_id=run_id) if c.status in ("exited", "dead")]
    return remove_containers(client, stopped)
