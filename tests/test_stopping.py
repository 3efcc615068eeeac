"""A run told to stop (SIGTERM, Ctrl-C) stops within seconds, whatever its workers are doing: a
long command, a model call that takes minutes. Queued instances never start, busy ones are recorded
as interrupted with what they did, no container is left, and a rerun resumes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from test_openai_client import serve_script

from atlas_agent.runtime.orphans import list_containers
from atlas_agent.runtime.task_images import prepare_images
from atlas_agent.tasks import MINI_SUITE_DIR, Task, load_tasks
from helpers import ATLAS

pytestmark = [pytest.mark.docker, pytest.mark.faults]

# Stopping ends the run within this many seconds (a command's timeout here is 600 s, a model call 300 s).
PROMPT_EXIT_S = 20
CAUSES = {signal.SIGTERM: "SIGTERM", signal.SIGINT: "Ctrl-C"}


@pytest.fixture(scope="module")
def three_tasks(docker_client) -> list[Task]:
    tasks = [t for t in load_tasks("atlas-mini") if t.instance_id.startswith("atlas__tally-")]
    prepare_images(docker_client, tasks, MINI_SUITE_DIR)
    return sorted(tasks, key=lambda t: t.instance_id)


def start_run(tmp_path: Path, run_id: str, tasks: list[Task], model: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [ATLAS, "run", "--instances", ",".join(t.instance_id for t in tasks), "--model", model]
        + ["--run-id", run_id, "--workers", "2", "-c", "command_timeout=600"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
        # started from a background job, a child inherits SIGINT ignored: give it a terminal's defaults
        preexec_fn=lambda: [signal.signal(s, signal.SIG_DFL) for s in (signal.SIGINT, signal.SIGTERM)],
    )


def wait_for(condition, run: subprocess.Popen[str], what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert run.poll() is None, f"the run ended before {what}: {run.communicate()}"
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.2)


def stop_and_check(run: subprocess.Popen[str], signum: int, docker_client, run_id: str) -> str:
    """Signals the run; asserts it ended promptly with no traceback and no container; its stderr."""
    sent = time.monotonic()
    run.send_signal(signum)
    _, stderr = run.communicate(timeout=120)
    assert time.monotonic() - sent < PROMPT_EXIT_S, f"took {time.monotonic() - sent:.0f} s to stop"
    assert run.returncode != 0 and "Traceback" not in stderr, stderr
    assert not list_containers(docker_client, run_id=run_id)
    return stderr


def statuses(tmp_path: Path, run_id: str) -> dict[str, dict]:
    folder = tmp_path / "runs" / run_id / "instances"
    return {p.parent.name: json.loads(p.read_text()) for p in folder.glob("*/status.json")}


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "ctrl-c"])
def test_a_stop_ends_busy_commands_at_once_and_starts_nothing_queued(
    tmp_path: Path, docker_client, three_tasks: list[Task], signum: int
) -> None:
    script = tmp_path / "slow.yaml"
    script.write_text(yaml.safe_dump({"default": [{"bash": "sleep 300"}, "submit"]}))
    run_id = f"stop-{signum}"
    run = start_run(tmp_path, run_id, three_tasks, f"replay:{script}")
    wait_for(lambda: len(list_containers(docker_client, run_id=run_id)) == 2, run, "both workers are busy")
    time.sleep(1)  # both commands are running
    stop_and_check(run, signum, docker_client, run_id)
    found = statuses(tmp_path, run_id)
    busy, queued = three_tasks[:2], three_tasks[2]
    assert sorted(found) == [t.instance_id for t in busy], "the queued instance must never start"
    assert not (tmp_path / "runs" / run_id / "instances" / queued.instance_id).exists()
    for status in found.values():
        assert status["state"] == "error" and status["stop_reason"] == "interrupted", status
        assert status["error"].startswith(f"interrupted ({CAUSES[signum]})"), status
    preds = (tmp_path / "runs" / run_id / "preds.jsonl").read_text()
    assert preds == "", "an interrupted instance is no prediction"


def test_a_stop_does_not_wait_for_a_model_call_in_flight(
    tmp_path: Path, docker_client, three_tasks: list[Task]
) -> None:
    """A model that takes five minutes to answer: the run still stops in seconds, and the instances
    it was answering are recorded as interrupted, to run again on resume."""
    script = tmp_path / "stalled.yaml"
    script.write_text(yaml.safe_dump({"turns": [{"delay_s": 300, "content": "late"}] * 2}))
    run_id = "stop-model"
    with serve_script(tmp_path, script) as (port, log):
        model = f"openai:http://127.0.0.1:{port}/v1/test-model"
        run = start_run(tmp_path, run_id, three_tasks, model)
        wait_for(lambda: log.is_file() and len(log.read_text().splitlines()) == 2, run, "both workers ask the model")
        stop_and_check(run, signal.SIGTERM, docker_client, run_id)
    found = statuses(tmp_path, run_id)
    assert sorted(found) == [t.instance_id for t in three_tasks[:2]]
    assert all(s["stop_reason"] == "interrupted" and s["state"] == "error" for s in found.values()), found
