"""The local runtime: task checkouts on this machine for hosts without Docker, graded where Docker is."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from atlas_agent.errors import AtlasError
from atlas_agent.runtime.local_workspace import LocalWorkspace, checkout_source
from atlas_agent.tasks import MINI_SUITE_DIR, Task, load_tasks
from helpers import ATLAS, SCAFFOLD_CASES, SCAFFOLD_REPLAYS, atlas, one_line_error


@pytest.fixture(scope="module")
def mini_tasks() -> list[Task]:
    return load_tasks("atlas-mini")


def workspace_for(task: Task, root: Path) -> LocalWorkspace:
    source = checkout_source(MINI_SUITE_DIR, task.repo)
    return LocalWorkspace(source, run_id="test-local", instance_id=task.instance_id, root=root)


def test_checkout_is_the_task_base_commit(tmp_path: Path, mini_tasks: list[Task]) -> None:
    """Same files, same identity and date as the suite's images: the very commit the task names."""
    for task in {t.repo: t for t in mini_tasks}.values():
        with workspace_for(task, tmp_path) as workspace:
            assert workspace.base == task.base_commit
            assert workspace.run("git status --porcelain").output == ""


def test_files_commands_and_diff(tmp_path: Path, mini_tasks: list[Task]) -> None:
    task = mini_tasks[0]
    with workspace_for(task, tmp_path) as workspace:
        assert workspace.run("pwd").output.strip() == workspace.workdir
        workspace.write_file("pkg/new/deep.py", "VALUE = 1\n")
        assert workspace.read_file("pkg/new/deep.py") == b"VALUE = 1\n"
        assert workspace.run("cat pkg/new/deep.py").output == "VALUE = 1\n"
        with pytest.raises(FileNotFoundError):
            workspace.read_file("missing.txt")
        with pytest.raises(IsADirectoryError):
            workspace.read_file("pkg")
        workspace.run(f"git apply - <<'EOF'\n{task.patch}EOF")
        patch = workspace.diff(task.base_commit)
        assert "+VALUE = 1" in patch and "new file mode 100644" in patch
        assert patch.count("diff --git") == task.patch.count("diff --git") + 1
        assert workspace.run("python -m pytest -q -p no:cacheprovider 2>&1 | tail -1").exit_code == 0


def test_remove_kills_background_jobs_and_deletes_the_checkout(tmp_path: Path, mini_tasks: list[Task]) -> None:
    workspace = workspace_for(mini_tasks[0], tmp_path)
    workspace.start()
    pid = int(workspace.run("sleep 300 >/dev/null & echo $!").output)
    folder = Path(workspace.workdir).parent
    workspace.remove()
    workspace.remove()  # idempotent
    assert not folder.exists()
    deadline = time.monotonic() + 5
    while Path(f"/proc/{pid}").exists() and _state(pid) != "Z":
        assert time.monotonic() < deadline, "the background job outlived its workspace"
        time.sleep(0.05)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return "gone"


def test_dataset_without_sources_is_refused_in_one_line(tmp_path: Path, mini_tasks: list[Task]) -> None:
    with pytest.raises(AtlasError, match="use --runtime docker"):
        checkout_source(None, "astropy/astropy")
    rows = [task.model_dump(mode="json") for task in mini_tasks[:1]]
    dataset = tmp_path / "tasks.jsonl"
    dataset.write_text("".join(json.dumps(row) + "\n" for row in rows))
    args = ["run", "--dataset", str(dataset), "--runtime", "local", "--model", "replay:atlas-mini-demo"]
    result = atlas(*args, cwd=tmp_path)
    assert "needs the source of" in one_line_error(result)


@pytest.mark.docker
def test_local_run_is_graded_by_the_official_harness(tmp_path: Path, mini_tasks: list[Task], docker_client) -> None:
    """The demo agent works the suite on this machine; `atlas eval` grades its predictions in task images."""
    from atlas_agent.runtime.task_images import prepare_images

    prepare_images(docker_client, mini_tasks, MINI_SUITE_DIR)
    env = {"TMPDIR": str(tmp_path)}
    args = ["run", "--runtime", "local", "--model", "replay:atlas-mini-demo", "--run-id", "local", "--workers", "2"]
    result = atlas(*args, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert "without isolation" in result.stderr
    assert not list(tmp_path.glob("atlas-local-*")), "every checkout is removed"
    config = yaml.safe_load((tmp_path / "runs" / "local" / "run.yaml").read_text())["config"]
    assert config["runtime"] == {"type": "local"}
    graded = atlas("eval", str(tmp_path / "runs" / "local"), "--workers", "2", cwd=tmp_path)
    assert graded.returncode == 0, graded.stderr
    report = json.loads((tmp_path / "runs" / "local" / "report.json").read_text())
    assert report["resolved_ids"] == ["atlas__semverkit-3", "atlas__tally-2", "atlas__textkit-2"]


def test_sigterm_removes_checkouts_and_their_processes(tmp_path: Path, mini_tasks: list[Task]) -> None:
    script = tmp_path / "slow.yaml"
    script.write_text(yaml.safe_dump({"default": [{"bash": "echo $$ > ../shell.pid; sleep 300"}, "submit"]}))
    run = subprocess.Popen(
        [ATLAS, "run", "--runtime", "local", "-i", mini_tasks[0].instance_id, "--model", f"replay:{script}"]
        + ["--run-id", "stopped", "-c", "command_timeout=600"],
        cwd=tmp_path,
        env={**os.environ, "TMPDIR": str(tmp_path)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob("atlas-stopped-*/shell.pid")):
        assert run.poll() is None and time.monotonic() < deadline, "the run never started its command"
        time.sleep(0.1)
    [pid_file] = tmp_path.glob("atlas-stopped-*/shell.pid")
    while not pid_file.read_text().strip():  # created before its pid is written
        assert time.monotonic() < deadline, "the command never wrote its pid"
        time.sleep(0.05)
    shell_pid = int(pid_file.read_text())
    run.send_signal(signal.SIGTERM)
    _, stderr = run.communicate(timeout=60)
    assert run.returncode != 0 and b"Traceback" not in stderr
    assert not list(tmp_path.glob("atlas-stopped-*")), "the checkout is deleted"
    assert _state(shell_pid) in ("gone", "Z"), "the agent's shell is killed"


@pytest.mark.docker
@pytest.mark.parametrize("scaffold", sorted(SCAFFOLD_CASES))
def test_every_scaffold_resolves_its_task_on_the_local_runtime(tmp_path: Path, scaffold: str, docker_client) -> None:
    """Several workspaces per instance (best-of-k), resets and candidate patches (agentless) work on
    host checkouts too; the patches resolve in the task image; nothing is left in the shared /tmp."""
    from atlas_agent.runtime.task_images import prepare_images

    task = next(t for t in load_tasks("atlas-mini") if t.instance_id == SCAFFOLD_CASES[scaffold])
    prepare_images(docker_client, [task], MINI_SUITE_DIR)
    before = set(Path("/tmp").glob(".atlas-*"))
    args = ["run", "--runtime", "local", "--scaffold", scaffold, "-i", task.instance_id, "--run-id", scaffold]
    result = atlas(*args, "--model", f"replay:{SCAFFOLD_REPLAYS / scaffold}.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert set(Path("/tmp").glob(".atlas-*")) <= before, "temporary files of the run were removed"
    graded = atlas("eval", str(tmp_path / "runs" / scaffold), cwd=tmp_path)
    assert graded.returncode == 0, graded.stderr
    report = json.loads((tmp_path / "runs" / scaffold / "report.json").read_text())
    assert report["resolved_ids"] == [task.instance_id]
