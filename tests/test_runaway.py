"""Commands that try to outlive their timeout: a fork bomb, a detached daemon. Whatever they start is
stopped when the command overruns, and the next command runs at full speed in the same files."""

from __future__ import annotations

import time

import pytest

from atlas_agent.runtime.container import ContainerLimits, TaskContainer

pytestmark = [pytest.mark.docker, pytest.mark.faults]

FORK_BOMB = "f(){ f | f & }; f"


def process_count(docker_client, box: TaskContainer) -> int:
    return len(docker_client.api.top(box.id)["Processes"] or [])


@pytest.fixture
def box(docker_client, base_image: str):
    limits = ContainerLimits(memory="512m", cpus=1.0, pids=256)
    with TaskContainer(docker_client, base_image, run_id="test-runaway", instance_id="bomb", limits=limits) as box:
        yield box


def test_a_fork_bomb_is_stopped_when_its_command_times_out(docker_client, box: TaskContainer) -> None:
    box.run("mkdir -p /testbed && echo kept > /testbed/note.txt && export MARK=1")
    bombed = box.run(FORK_BOMB + "; sleep 60", timeout=3)
    assert bombed.timed_out and bombed.exit_code == 137
    assert "restarted" in bombed.output, bombed.output
    started = time.monotonic()
    after = box.run("cat /testbed/note.txt; echo ${MARK:-unset}")
    assert time.monotonic() - started < 5, "the bomb's processes still hold the pids and CPUs"
    assert after.output.split() == ["kept", "unset"], "files survive; the shell's variables are said to be lost"
    # init, the idle process and the shell (plus a pipe stage at most): nothing of the bomb
    assert process_count(docker_client, box) <= 4


def test_a_daemon_that_detached_from_a_timed_out_command_is_stopped(docker_client, box: TaskContainer) -> None:
    result = box.run("setsid sleep 4321 & disown; sleep 60", timeout=2)
    assert result.timed_out
    rows = docker_client.api.top(box.id)["Processes"] or []
    assert not any("4321" in " ".join(row) for row in rows), rows
    assert box.run("echo alive").output.strip() == "alive"
