"""What a hostile or careless command in a task container cannot do: take the host's memory, reach
a service on the host's loopback or a name server, or make a killed run lose or repeat work."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from atlas_agent.runtime.container import ContainerLimits, TaskContainer
from atlas_agent.runtime.task_images import prepare_images
from atlas_agent.tasks import MINI_SUITE_DIR, load_tasks
from helpers import ATLAS, atlas

pytestmark = [pytest.mark.docker, pytest.mark.faults]


def test_a_memory_hog_is_killed_inside_its_limit_and_the_session_goes_on(docker_client, base_image: str) -> None:
    limits = ContainerLimits(memory="256m", cpus=1.0, pids=256)
    with TaskContainer(docker_client, base_image, run_id="test-containment", instance_id="hog", limits=limits) as box:
        hog = box.run("python3 -c 'x = bytearray(2 << 30); print(len(x))'", timeout=60)
        assert hog.exit_code == 137 and str(2 << 30) not in hog.output
        assert box.run("echo alive").output == "alive\n"


def test_the_hosts_loopback_and_name_servers_are_out_of_reach(container: TaskContainer) -> None:
    # listening on the host's loopback: a connection would complete even before any accept()
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        probe = container.run(
            f"python3 -c \"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=3)\"", timeout=30
        )
    assert probe.exit_code != 0 and "ConnectionRefusedError" in probe.output, probe.output
    names = container.run("getent hosts pypi.org || echo unresolved", timeout=30)
    assert names.output.strip().endswith("unresolved")


def test_a_run_sigkilled_twice_loses_and_repeats_nothing(tmp_path: Path, docker_client) -> None:
    tasks = [t for t in load_tasks("atlas-mini") if t.repo.endswith("tally") or t.repo.endswith("textkit")]
    prepare_images(docker_client, tasks, MINI_SUITE_DIR)
    script = tmp_path / "script.yaml"
    script.write_text(yaml.safe_dump({"default": [{"bash": "sleep 2 && echo done > DONE.txt"}, "submit"]}))
    ids = ",".join(t.instance_id for t in tasks)
    args = ["run", "--instances", ids, "--model", f"replay:{script}", "--run-id", "killed", "--workers", "2"]
    instances = tmp_path / "runs" / "killed" / "instances"
    first_done: dict[str, bytes] = {}
    for _ in range(2):
        run = subprocess.Popen([ATLAS, *args], cwd=tmp_path, stderr=subprocess.DEVNULL, env=os.environ.copy())
        done_before = len(list(instances.glob("*/status.json")))
        deadline = time.monotonic() + 120
        while len(list(instances.glob("*/status.json"))) <= done_before:
            assert run.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        run.send_signal(signal.SIGKILL)
        run.wait()
        if not first_done:
            folder = next(p.parent for p in instances.glob("*/status.json"))
            first_done = {f.name: f.read_bytes() for f in folder.iterdir()}
            first_folder = folder
    assert atlas(*args, cwd=tmp_path).returncode == 0
    preds = [json.loads(line) for line in (tmp_path / "runs" / "killed" / "preds.jsonl").read_text().splitlines()]
    assert sorted(p["instance_id"] for p in preds) == sorted(t.instance_id for t in tasks), "each exactly once"
    assert {f.name: f.read_bytes() for f in first_folder.iterdir()} == first_done, "finished work is never redone"
