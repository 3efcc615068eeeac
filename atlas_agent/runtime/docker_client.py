"""The one way Atlas talks to Docker: a client that is known to answer, or a one-line error; and the
wait for an engine that went away mid-run."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import docker

from atlas_agent.errors import DockerUnavailable

DEFAULT_HOST = "unix:///var/run/docker.sock"
# the longest pause between two pings of an engine that went away
MAX_ENGINE_WAIT_S = 30.0


def connect(timeout: int = 120) -> docker.DockerClient:
    """A client for the engine at DOCKER_HOST (or the default socket) that has answered a ping."""
    host = os.environ.get("DOCKER_HOST") or DEFAULT_HOST
    try:
        # from_env already contacts the engine to negotiate the API version; ping covers pinned versions.
        client = docker.from_env(timeout=timeout)
        client.ping()
    except Exception as exc:
        reason = engine_reason(exc)
        raise DockerUnavailable(f"cannot reach the Docker engine at {host} ({reason}): {_advice(exc)}") from None
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


def engine_reason(exc: BaseException) -> str:
    """Why a connection to the engine failed, in a few words."""
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


def await_engine(
    client: docker.DockerClient,
    notice: Callable[[str], None],
    *,
    settle: Callable[[], object] = lambda: None,
    budget_s: float = 300.0,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Returns once the engine answers again and `settle` (the clean-up of what it went away from)
    went through, saying on `notice` how long it has been waiting; DockerUnavailable (one line) when
    it stays silent for `budget_s`. An engine that is still going down may answer once more: only
    a `settle` that succeeds shows it is back for good."""
    started, wait = time.monotonic(), 1.0
    while True:
        try:
            client.ping()
            settle()
            return
        except Exception as exc:
            down = time.monotonic() - started
            where, reason = client.api.base_url, engine_reason(exc)
            if down >= budget_s:
                raise DockerUnavailable(
                    f"the Docker engine at {where} has not answered for {down:.0f} s ({reason}): start it and rerun"
                    " the same command; finished instances are kept"
                ) from None
            notice(
                f"Docker engine at {where} unreachable ({reason}): retrying in {wait:.0f} s"
                f" (down {down:.0f} s, gives up after {budget_s:.0f} s)"
            )
            sleep(min(wait, budget_s - down))
            wait = min(wait * 2, MAX_ENGINE_WAIT_S)
