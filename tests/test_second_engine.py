"""The second Docker engine: stopped, restarted and killed under running containers, without touching the main one."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import docker
import pytest
from docker.models.containers import Container
from second_engine import SecondEngine, fail_on_leftovers

pytestmark = [pytest.mark.docker, pytest.mark.faults]

RESTART_TIMEOUT_S = 120


def sleeper(client: docker.DockerClient, image: str, name: str) -> Container:
    """A running container, its attributes read after it started."""
    box = client.containers.run(image, entrypoint=["sleep", "infinity"], network_mode="none", name=name, detach=True)
    box.reload()
    return box


@pytest.fixture
def main_sentinel(docker_client: docker.DockerClient, second_engine_image: str) -> Iterator[Container]:
    """A running container on the main engine, which nothing done to the second engine may disturb."""
    box = sleeper(docker_client, second_engine_image, f"atlas-test-second-engine-sentinel-{os.getpid()}")
    try:
        yield box
    finally:
        box.remove(force=True)


def test_a_stopped_engine_stops_its_containers_and_keeps_them_and_its_images(
    second_engine: SecondEngine, second_engine_image: str
) -> None:
    with closing(second_engine.client()) as client:
        box = sleeper(client, second_engine_image, "stopped-with-engine")
        assert box.attrs["State"]["Running"]
    second_engine.stop()
    assert not second_engine.answers
    second_engine.start()
    with closing(second_engine.client()) as client:
        state = client.containers.get("stopped-with-engine").attrs["State"]
        # without live-restore dockerd stops every container on SIGTERM, with the image's SIGKILL
        assert (state["Status"], state["ExitCode"]) == ("exited", 137)
        assert client.images.get(second_engine_image).tags == [second_engine_image]
        client.containers.get("stopped-with-engine").remove()


def test_a_background_restart_leaves_the_main_engine_alone(
    second_engine: SecondEngine, second_engine_image: str, docker_client: docker.DockerClient, main_sentinel: Container
) -> None:
    main_image_id = docker_client.images.get(second_engine_image).id
    main_started_at = main_sentinel.attrs["State"]["StartedAt"]
    with closing(second_engine.client()) as client:
        box = sleeper(client, second_engine_image, "restarted-under")
    restart = second_engine.restart(down_for_s=2)
    deadline = time.monotonic() + RESTART_TIMEOUT_S
    while second_engine.answers and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not second_engine.answers, "the engine never went down"
    restart.result(timeout=RESTART_TIMEOUT_S)
    with closing(second_engine.client()) as client:
        assert client.containers.get(box.id).attrs["State"]["ExitCode"] == 137
        assert main_sentinel.name not in [c.name for c in client.containers.list(all=True)]
        client.containers.get(box.id).remove()
    main_sentinel.reload()
    assert main_sentinel.attrs["State"]["Running"]
    assert main_sentinel.attrs["State"]["StartedAt"] == main_started_at, "the main engine's container restarted"
    assert docker_client.images.get(second_engine_image).id == main_image_id
    assert box.id not in [c.id for c in docker_client.containers.list(all=True)]


def test_a_killed_engine_leaves_its_containers_running_until_it_starts_again(
    second_engine: SecondEngine, second_engine_image: str
) -> None:
    with closing(second_engine.client()) as client:
        box = sleeper(client, second_engine_image, "outlives-a-crash")
    pid = box.attrs["State"]["Pid"]
    second_engine.kill()
    assert not second_engine.answers
    assert Path(f"/proc/{pid}").exists(), "the container died with dockerd"
    second_engine.start()
    with closing(second_engine.client()) as client:
        state = client.containers.get(box.id).attrs["State"]
        # restoring without live-restore, dockerd kills the containers it finds still running
        assert (state["Status"], state["ExitCode"]) == ("exited", 137)
        client.containers.get(box.id).remove()
    assert not Path(f"/proc/{pid}").exists()


def test_a_container_left_behind_is_named_in_a_failure_and_removed(
    second_engine: SecondEngine, second_engine_image: str
) -> None:
    with closing(second_engine.client()) as client:
        sleeper(client, second_engine_image, "forgotten")
        client.containers.create(second_engine_image, ["true"], name="never-started", network_mode="none")
    with pytest.raises(pytest.fail.Exception, match="forgotten, never-started"):
        fail_on_leftovers(second_engine)
    with closing(second_engine.client()) as client:
        assert client.containers.list(all=True) == []


def test_closing_a_crashed_engine_leaves_no_mount_process_or_directory(
    second_engine_image: str, docker_client: docker.DockerClient
) -> None:
    engine = SecondEngine.create()
    try:
        engine.start()
        engine.load_image(second_engine_image, docker_client)
        with closing(engine.client()) as client:
            pid = sleeper(client, second_engine_image, "running-at-crash").attrs["State"]["Pid"]
        engine.kill()  # the worst case: a container, its shim, overlay and netns mounts all still up
    finally:
        engine.close()
    assert not engine.root.exists()
    assert str(engine.root) not in Path("/proc/self/mountinfo").read_text()
    assert not Path(f"/proc/{pid}").exists()
