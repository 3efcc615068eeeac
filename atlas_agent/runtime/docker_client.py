"""The one way Atlas talks to Docker: a client that is known to answer, or a one-line error."""

from __future__ import annotations

import os

import docker

from atlas_agent.errors import DockerUnavailable

DEFAULT_HOST = "unix:///var/run/docker.sock"


def connect(timeout: int = 120) -> docker.DockerClient:
    """A client for the engine at DOCKER_HOST (or the default socket) that has answered a ping."""
    host = os.environ.get("DOCKER_HOST") or DEFAULT_HOST
    try:
        # from_env already contacts the engine to negotiate the API version; ping covers pinned versions.
        client = docker.from_env(timeout=timeout)
        client.ping()
    except Exception as exc:
        raise DockerUnavailable(f"cannot reach the Docker engine at {host} ({_reason(exc)}): {_advice(exc)}") from None
    return client


def _root_cause(exc: BaseException) -> BaseException:
    """The innermost exception: requests and urllib3 wrap the OSError several layers deep."""
    seen: set[int] = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        candidates = [exc.__cause__, exc.__context__, getattr(exc, "reason", None), *exc.args[:1]]
        nested = next((c for c in candidates if isinstance(c, BaseException)), None)
        if nested is None:
            break
        exc = nested
    return exc


def _reason(exc: BaseException) -> str:
    cause = _root_cause(exc)
    if isinstance(cause, ConnectionRefusedError):
        return "connection refused"
    if isinstance(cause, FileNotFoundError):
        return "no such socket"
    if isinstance(cause, PermissionError):
        return "permission denied"
    if isinstance(cause, TimeoutError):
        return "timed out"
    text = " ".join(str(cause).split()) or type(cause).__name__
    return text[:160]


def _advice(exc: BaseException) -> str:
    if isinstance(_root_cause(exc), PermissionError):
        return "run as root, add your user to the docker group, or set DOCKER_HOST"
    return "start dockerd or set DOCKER_HOST"
