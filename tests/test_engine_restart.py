"""The Docker engine restarts in the middle of a run (a service restart, an upgrade): the episode it
cut short is an infrastructure failure, not the model's; Atlas waits for the engine, runs that
instance again, burns no queued instance, and leaves no container behind."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from second_engine import SecondEngine

from atlas_agent.tasks import load_tasks
from helpers import ATLAS

pytestmark = [pytest.mark.docker, pytest.mark.faults]

COPIES = ("atlas__tally-1", "atlas__tally-81", "atlas__tally-82")


def dataset_of_copies(tmp_path: Path, image: str) -> Path:
    """Three rows that share the one image the second engine holds (it cannot build images)."""
    [row] = [t for t in load_tasks("atlas-mini") if t.instance_id == COPIES[0]]
    path = tmp_path / "copies.jsonl"
    rows = [row.model_dump(mode="json") | {"instance_id": iid, "image": image} for iid in COPIES]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_an_engine_restart_mid_episode_is_waited_out_and_the_instance_rerun(
    tmp_path: Path, second_engine: SecondEngine, second_engine_image: str
) -> None:
    script = tmp_path / "script.yaml"
    script.write_text(yaml.safe_dump({"default": [{"bash": "sleep 8"}, "submit"]}))
    dataset = dataset_of_copies(tmp_path, second_engine_image)
    run = subprocess.Popen(
        [ATLAS, "run", "--dataset", str(dataset), "--model", f"replay:{script}", "--run-id", "eng"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "DOCKER_HOST": second_engine.docker_host},
    )
    client = second_engine.client()
    deadline = time.monotonic() + 120
    while not client.containers.list():
        assert run.poll() is None and time.monotonic() < deadline, run.communicate()
        time.sleep(0.2)
    time.sleep(1)  # its command is running
    restarted = second_engine.restart(down_for_s=6)
    _, stderr = run.communicate(timeout=300)
    restarted.result()
    assert run.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert "the Docker engine went away mid-episode" in stderr and "unreachable" in stderr, stderr
    instances = tmp_path / "runs" / "eng" / "instances"
    for iid in COPIES:
        status = json.loads((instances / iid / "status.json").read_text())
        assert status["state"] == "done" and status["stop_reason"] == "submitted", status
    preds = (tmp_path / "runs" / "eng" / "preds.jsonl").read_text().splitlines()
    assert len(preds) == len(COPIES)
    assert not client.containers.list(all=True), "no container is left on the engine that restarted"
