"""Replay agents on atlas-mini tasks in real containers, then grade with the official harness."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from atlas_agent.runtime.orphans import list_containers
from atlas_agent.runtime.task_images import prepare_images
from atlas_agent.tasks import MINI_SUITE_DIR, Task, load_tasks
from helpers import ATLAS, atlas

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def mini_tasks(docker_client) -> list[Task]:
    tasks = load_tasks("atlas-mini")
    prepare_images(docker_client, tasks, MINI_SUITE_DIR)
    return tasks


def first_source_file(patch: str) -> str:
    match = re.search(r"^\+\+\+ b/(\S+)", patch, re.M)
    assert match, patch
    return match.group(1)


def replay_script(solved: Task, wrong: Task, empty: Task) -> dict:
    """A realistic-looking scripted agent: explore, edit through the shell, test, submit."""
    return {
        "instances": {
            solved.instance_id: [
                {"thought": "Look around first.", "bash": "git status && ls"},
                {"bash": f"cat > /tmp/fix.patch <<'ATLAS_EOF'\n{solved.patch}ATLAS_EOF"},
                {"thought": "Apply my edit.", "bash": "git apply /tmp/fix.patch && git diff --stat"},
                {"bash": "python -m pytest -q -p no:cacheprovider 2>&1 | tail -3"},
                "submit",
            ],
            wrong.instance_id: [
                {"bash": f"echo '# looked at this' >> {first_source_file(wrong.patch)}"},
                "submit",
            ],
            empty.instance_id: ["submit"],
        }
    }


def test_replayed_run_is_graded_by_the_official_harness(tmp_path: Path, mini_tasks: list[Task], docker_client) -> None:
    solved, wrong, empty = mini_tasks[0], mini_tasks[3], mini_tasks[6]
    script = tmp_path / "script.yaml"
    script.write_text(yaml.safe_dump(replay_script(solved, wrong, empty), sort_keys=False))
    ids = ",".join(t.instance_id for t in (solved, wrong, empty))
    run_args = ["run", "--dataset", "atlas-mini", "--instances", ids, "--model", f"replay:{script}", "--run-id", "e2e"]
    result = atlas(*run_args, "--workers", "2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    run_dir = tmp_path / "runs" / "e2e"
    for task in (solved, wrong, empty):
        folder = run_dir / "instances" / task.instance_id
        status = json.loads((folder / "status.json").read_text())
        assert status["state"] == "done" and status["stop_reason"] == "submitted"
        trajectory = json.loads((folder / "trajectory.json").read_text())
        assert trajectory["steps"][-1]["tool_calls"][0]["name"] == "submit"
    preds = [json.loads(line) for line in (run_dir / "preds.jsonl").read_text().splitlines()]
    assert {p["instance_id"] for p in preds} == {solved.instance_id, wrong.instance_id, empty.instance_id}
    assert (run_dir / "instances" / solved.instance_id / "patch.diff").read_text().strip()

    graded = atlas("eval", str(run_dir), "--workers", "2", cwd=tmp_path)
    assert graded.returncode == 0, graded.stderr
    report = json.loads((run_dir / "report.json").read_text())
    assert report["total"] == 3
    assert report["resolved_ids"] == [solved.instance_id]
    assert report["unresolved_ids"] == [wrong.instance_id]
    assert report["empty_patch_ids"] == [empty.instance_id]
    assert report["error_ids"] == [] and report["infra_failure_ids"] == []
    assert "resolved: **1 / 3**" in (run_dir / "report.md").read_text()
    assert (run_dir / "eval" / "e2e").is_dir(), "official logs live in the run directory"

    resumed = atlas(*run_args, cwd=tmp_path)
    assert resumed.returncode == 0 and "3 already done" in resumed.stderr
    assert not list_containers(docker_client, run_id="e2e")


def test_validate_mini_suite(tmp_path: Path, mini_tasks: list[Task], docker_client) -> None:
    result = atlas("validate", "--dataset", "atlas-mini", "--workers", "2", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"all {len(mini_tasks)} tasks valid" in result.stderr
    assert result.stdout.count("ok") >= len(mini_tasks)
    assert not list_containers(docker_client, run_id="gold") and not list_containers(docker_client, run_id="empty")


def start_slow_run(tmp_path: Path, task: Task, run_id: str) -> subprocess.Popen[bytes]:
    script = tmp_path / "slow.yaml"
    script.write_text(yaml.safe_dump({"default": [{"bash": "sleep 300"}, "submit"]}))
    return subprocess.Popen(
        [
            ATLAS,
            "run",
            "--dataset",
            "atlas-mini",
            "--instances",
            task.instance_id,
            "--model",
            f"replay:{script}",
            "--run-id",
            run_id,
            "-c",
            "command_timeout=600",
        ],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=os.environ.copy(),
        # a shell that starts a job in the background makes it ignore SIGINT, and children inherit
        # that: give the run the disposition a user's terminal would
        preexec_fn=restore_default_signals,
    )


def restore_default_signals() -> None:
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_DFL)


def wait_for_container(docker_client, run: subprocess.Popen[bytes], run_id: str) -> None:
    deadline = time.monotonic() + 120
    while not list_containers(docker_client, run_id=run_id):
        assert run.poll() is None and time.monotonic() < deadline, "the run never started its container"
        time.sleep(0.5)


def test_sigkilled_run_leaves_containers_that_gc_removes(tmp_path: Path, mini_tasks: list[Task], docker_client) -> None:
    run = start_slow_run(tmp_path, mini_tasks[1], "killed")
    wait_for_container(docker_client, run, "killed")
    run.send_signal(signal.SIGKILL)
    run.wait()
    assert list_containers(docker_client, run_id="killed", only_orphans=True), "SIGKILL cannot clean up"
    assert atlas("gc", cwd=tmp_path).returncode == 0
    assert not list_containers(docker_client, run_id="killed")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupted_run_removes_its_container_and_can_resume(
    tmp_path: Path, mini_tasks: list[Task], docker_client, signum: int
) -> None:
    run_id = f"interrupted-{signum}"
    run = start_slow_run(tmp_path, mini_tasks[2], run_id)
    wait_for_container(docker_client, run, run_id)
    run.send_signal(signum)
    _, stderr = run.communicate(timeout=60)
    assert run.returncode != 0
    assert b"Traceback" not in stderr
    assert not list_containers(docker_client, run_id=run_id)
    status = json.loads(
        (tmp_path / "runs" / run_id / "instances" / mini_tasks[2].instance_id / "status.json").read_text()
    )
    assert status["state"] == "error", "an interrupted instance is retried when the run resumes"


def test_demo_replay_resolves_its_three_scripted_fixes(tmp_path: Path, mini_tasks: list[Task]) -> None:
    """The bundled demo agent over the whole suite, graded."""
    result = atlas(
        "run", "--dataset", "atlas-mini", "--model", "replay:atlas-mini-demo", "--run-id", "demo",
        "--workers", "2", "--eval", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "runs" / "demo" / "report.json").read_text())
    assert report["total"] == len(mini_tasks)
    assert report["resolved_ids"] == ["atlas__semverkit-3", "atlas__tally-2", "atlas__textkit-2"]
    assert sorted(report["empty_patch_ids"] + report["resolved_ids"]) == sorted(t.instance_id for t in mini_tasks)


def test_readme_main_command_runs_the_bundled_tiny_model_and_grades_it(tmp_path: Path, mini_tasks: list[Task]) -> None:
    """The `atlas run` line of scripts/quickstart.sh (README's first command), exactly as written there."""
    quickstart = (Path(__file__).parents[1] / "scripts" / "quickstart.sh").read_text()
    [line] = [line for line in quickstart.splitlines() if line.startswith(".venv/bin/atlas run ")]
    args = shlex.split(line)[1:]
    result = atlas(*args, cwd=tmp_path, timeout=1800)
    assert result.returncode == 0, result.stderr
    run_dir = tmp_path / "runs" / "quickstart"
    config = yaml.safe_load((run_dir / "run.yaml").read_text())["config"]
    assert config["model"] == "local:smollm2", "the default model is the bundled tiny model"
    report = json.loads((run_dir / "report.json").read_text())
    assert report["total"] == len(mini_tasks) and not report["incomplete_ids"]
    for task in mini_tasks:
        status = json.loads((run_dir / "instances" / task.instance_id / "status.json").read_text())
        assert status["state"] == "done" and status["usage"]["output_tokens"] > 0
