"""The agent's shell runs in the environment the task's tests are graded in.

atlas-mini images have the official layout: a base interpreter without the repository's
dependencies first on PATH, the test environment /opt/miniconda3/envs/testbed activated only by
/root/.bashrc and the eval script's own `source .../activate` + `conda activate testbed`. A bare
non-interactive bash gets the base interpreter; an agent episode must get the testbed, in docker
and in local workspaces alike.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

from atlas_agent.runtime.container import TaskContainer
from atlas_agent.runtime.images import CONDA_PREFIX, ENV_REQUIREMENTS, TESTBED_INSTALLER, wheelhouse
from atlas_agent.runtime.task_images import prepare_images
from atlas_agent.tasks import MINI_SUITE_DIR, Task, load_tasks
from helpers import atlas

TESTBED = f"{CONDA_PREFIX}/envs/testbed"
INSTANCE = "atlas__tally-2"
PROBE = "python -c 'import sys; print(sys.prefix)'; command -v pytest; python -c 'import tally; print(tally.__file__)'"


@pytest.fixture(scope="module")
def task() -> Task:
    return next(t for t in load_tasks("atlas-mini") if t.instance_id == INSTANCE)


@pytest.fixture(scope="module")
def image(docker_client, task: Task) -> str:
    prepare_images(docker_client, [task], MINI_SUITE_DIR)
    return task.image


@pytest.mark.docker
def test_a_bare_shell_in_the_image_gets_the_base_interpreter(docker_client, image: str) -> None:
    """The layout itself: without activation, `python` has none of the repository's dependencies."""
    script = "python -c 'import sys; print(sys.prefix)'; command -v pytest || echo no-pytest"
    output = docker_client.containers.run(
        image, ["bash", "--noprofile", "--norc", "-c", script], remove=True, network_mode="none"
    ).decode()
    assert output.split() == [CONDA_PREFIX, "no-pytest"]


@pytest.mark.docker
def test_the_task_shell_is_activated_and_stays_so_after_a_restart(docker_client, image: str, task: Task) -> None:
    with TaskContainer(
        docker_client, image, run_id="test-env", instance_id=INSTANCE, eval_script=task.eval_script
    ) as box:
        prefix, pytest_path, module = box.run(PROBE).output.split()
        assert (prefix, pytest_path, module) == (TESTBED, f"{TESTBED}/bin/pytest", "/testbed/tally/__init__.py")
        environment = box.environment
        assert environment is not None and environment.python == f"{TESTBED}/bin/python"
        assert environment.python_prefix == TESTBED and not environment.failed
        commands = [step.command for step in environment.steps]
        assert "source /root/.bashrc" in commands and "conda activate testbed" in commands
        assert not any(command.startswith(("git", "set")) for command in commands)
        assert box.run("pwd").output.strip() == "/testbed"
        box.run("cd tally")
        box.run("exit 3")  # the shell ends; a fresh one starts where it was, activated again
        assert box.run(PROBE).output.split()[0] == TESTBED
        assert box.run("pwd").output.strip() == "/testbed/tally"


WHERE_TEST = f"import sys\n\n\ndef test_where():\n    assert sys.prefix == {TESTBED!r}\n"


def run_episode(tmp_path: Path, runtime: str, env: dict[str, str] | None = None) -> dict:
    """One scripted episode through the CLI: probe the shell, write a test that checks its own
    interpreter, run it with run_tests, then run the task's tests."""
    steps = [
        {"bash": f"printf %s {shlex.quote(WHERE_TEST)} > tests/test_where.py; {PROBE}"},
        {"run_tests": {"target": "tests/test_where.py"}},
        {"run_tests": {}},
        "submit",
    ]
    script = tmp_path / "probe.yaml"
    script.write_text(yaml.safe_dump({"instances": {INSTANCE: steps}}))
    args = ["run", "-i", INSTANCE, "--scaffold", "tools", "--model", f"replay:{script}", "--run-id", runtime]
    result = atlas(*args, "--runtime", runtime, "--no-eval", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads((tmp_path / "runs" / runtime / "instances" / INSTANCE / "trajectory.json").read_text())


def assert_episode_used_the_testbed(trajectory: dict, workdir_module: str) -> None:
    outputs = [step["results"][0]["observation"]["output"] for step in trajectory["steps"][:3]]
    probe = outputs[0].split()
    assert probe[0] == TESTBED and probe[1] == f"{TESTBED}/bin/pytest" and probe[2].endswith(workdir_module)
    targeted, whole = outputs[1], outputs[2]
    assert targeted.splitlines()[0].endswith("pytest -rA -p no:cacheprovider tests/test_where.py"), targeted
    assert "passed (1): tests/test_where.py::test_where" in targeted
    assert whole.splitlines()[1].startswith("exit code 0: 7 passed (read by parse_log_pytest"), whole
    environment = trajectory["environment"]
    assert environment["python_prefix"] == TESTBED and "conda activate testbed" in [
        step["command"] for step in environment["steps"]
    ]


@pytest.mark.docker
def test_an_episode_in_a_task_container_uses_the_testbed(tmp_path: Path, image: str) -> None:
    trajectory = run_episode(tmp_path, "docker")
    assert_episode_used_the_testbed(trajectory, "/testbed/tally/__init__.py")


@pytest.fixture(scope="module")
def host_testbed() -> str:
    """The same layout on this machine, as a GPU host running the local runtime would have it."""
    marker = Path(CONDA_PREFIX) / ".atlas-testbed"
    if Path(CONDA_PREFIX).exists() and not marker.is_file():
        pytest.skip(f"{CONDA_PREFIX} exists and is not an Atlas test layout: not touching it")
    if not marker.is_file():
        if os.geteuid() != 0:
            pytest.skip(f"installing the test layout at {CONDA_PREFIX} needs root")
        command = ["bash", str(TESTBED_INSTALLER), CONDA_PREFIX, str(wheelhouse()), *ENV_REQUIREMENTS]
        subprocess.run(command, check=True, capture_output=True)
    return CONDA_PREFIX


def test_an_episode_in_a_local_workspace_uses_the_testbed(tmp_path: Path, host_testbed: str) -> None:
    trajectory = run_episode(tmp_path, "local", env={"TMPDIR": str(tmp_path)})
    assert_episode_used_the_testbed(trajectory, "/testbed/tally/__init__.py")
