"""Shared fixtures. Docker tests run wherever an engine answers; in CI a missing engine is a failure, not a skip."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from atlas_agent.runtime.container import TaskContainer

# second_engine, second_engine_image: a second dockerd that fault-injection tests may stop, kill and restart
pytest_plugins = ["second_engine"]


@pytest.fixture(scope="session")
def docker_client():
    from atlas_agent.errors import DockerUnavailable
    from atlas_agent.runtime.docker_client import connect

    try:
        return connect()
    except DockerUnavailable as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no Docker engine: {exc}")


@pytest.fixture(scope="session")
def base_image(docker_client) -> str:
    """A bare Debian image with python3, git and bash (built offline by Atlas's image builder)."""
    from atlas_agent.runtime.images import ensure_base_image

    return ensure_base_image(docker_client)


@pytest.fixture(scope="module")
def container(docker_client, base_image: str, request: pytest.FixtureRequest) -> Iterator[TaskContainer]:
    """A bare task container shared by one test module: run `test-<module>`, instance `org__repo-1`."""
    from atlas_agent.runtime.container import TaskContainer

    name = request.module.__name__.rpartition(".")[2].removeprefix("test_").replace("_", "-")
    with TaskContainer(docker_client, base_image, run_id=f"test-{name}", instance_id="org__repo-1") as box:
        yield box


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """After the whole suite no Atlas container may exist: every exit path must clean up."""
    try:
        from atlas_agent.runtime.docker_client import connect
        from atlas_agent.runtime.orphans import PID_LABEL, is_orphan, list_containers

        # Ours (made in this process) or nobody's (their owner, e.g. an `atlas` subprocess, is gone);
        # containers of other live processes on the same engine are not this suite's business.
        leftovers = [
            container
            for container in list_containers(connect())
            if container.labels.get(PID_LABEL) == str(os.getpid()) or is_orphan(container.labels)
        ]
    except Exception:  # no engine, nothing to check
        return
    if leftovers:
        names = ", ".join(container.name for container in leftovers)
        session.config.get_terminal_writer().line(f"Atlas containers left behind: {names}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
