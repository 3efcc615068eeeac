"""Run files changed or broken after an instance finished are never taken silently: a damaged
trajectory makes its instance run again, an edited patch.diff is named, and containers that a killed
process of the run left behind are removed when it resumes."""

from __future__ import annotations

import contextlib
import json
import socket
from pathlib import Path

import pytest
import yaml
from docker.errors import NotFound

from atlas_agent.runtime.orphans import HOST_LABEL, MANAGED_LABEL, PID_LABEL, RUN_ID_LABEL, list_containers
from atlas_agent.runtime.task_images import prepare_images
from atlas_agent.tasks import MINI_SUITE_DIR, load_tasks
from helpers import atlas

pytestmark = [pytest.mark.docker, pytest.mark.faults]

TASK = "atlas__tally-1"


@pytest.fixture
def finished_run(tmp_path: Path, docker_client) -> list[str]:
    """A run whose one instance finished with a two-line new file as its patch; the command that made it."""
    prepare_images(docker_client, [t for t in load_tasks("atlas-mini") if t.instance_id == TASK], MINI_SUITE_DIR)
    script = tmp_path / "script.yaml"
    script.write_text(yaml.safe_dump({"default": [{"bash": "printf 'a\\nb\\n' > NOTES.txt"}, "submit"]}))
    args = ["run", "--instances", TASK, "--model", f"replay:{script}", "--run-id", "r1"]
    assert atlas(*args, cwd=tmp_path).returncode == 0
    return args


def instance(tmp_path: Path) -> Path:
    return tmp_path / "runs" / "r1" / "instances" / TASK


def test_an_edited_patch_is_named_and_used_as_it_is(tmp_path: Path, finished_run: list[str]) -> None:
    patch = instance(tmp_path) / "patch.diff"
    recorded = json.loads((instance(tmp_path) / "status.json").read_text())["patch_lines"]
    assert recorded == patch.read_text().count("\n") > 0
    patch.write_text("")
    rerun = atlas(*finished_run, cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    assert f"patch.diff has 0 line(s) but the instance ended with {recorded}" in rerun.stderr
    assert "1 already done" in rerun.stderr, "an edit is the user's to make: the instance does not rerun"
    [pred] = [json.loads(line) for line in (tmp_path / "runs" / "r1" / "preds.jsonl").read_text().splitlines()]
    assert pred["model_patch"] == ""


@pytest.mark.parametrize("damage", ["truncated", "missing"])
def test_a_damaged_trajectory_makes_its_instance_run_again(
    tmp_path: Path, finished_run: list[str], damage: str
) -> None:
    trajectory = instance(tmp_path) / "trajectory.json"
    if damage == "truncated":
        trajectory.write_text(trajectory.read_text()[:100])
    else:
        trajectory.unlink()
    rerun = atlas(*finished_run, cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    shown = trajectory.relative_to(tmp_path)
    assert f"warning: {shown} is damaged: its instance runs again" in rerun.stderr
    assert "0 already done" in rerun.stderr
    assert json.loads(trajectory.read_text())["instance_id"] == TASK


def test_a_resumed_run_first_removes_the_containers_its_killed_process_left(
    tmp_path: Path, finished_run: list[str], docker_client, base_image: str
) -> None:
    labels = {MANAGED_LABEL: "1", RUN_ID_LABEL: "r1", PID_LABEL: "999999999", HOST_LABEL: socket.gethostname()}
    left = docker_client.containers.run(base_image, "sleep infinity", detach=True, labels=labels, network_mode="none")
    other = docker_client.containers.run(
        base_image, "sleep infinity", detach=True, labels={**labels, RUN_ID_LABEL: "another-run"}, network_mode="none"
    )
    try:
        rerun = atlas(*finished_run, cwd=tmp_path)
        assert rerun.returncode == 0, rerun.stderr
        assert "removed 1 container(s) that a killed earlier process of this run left behind" in rerun.stderr
        assert not list_containers(docker_client, run_id="r1")
        assert list_containers(docker_client, run_id="another-run"), "another run's containers are its own business"
    finally:
        for container in (left, other):
            with contextlib.suppress(NotFound):
                container.remove(force=True)
