"""run_tests in an atlas-mini task image: a failing and a passing node id, and the task's own
test command taken from its eval script."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from atlas_agent.runtime.container import TaskContainer
from atlas_agent.runtime.prepare import prepare_images
from atlas_agent.tasks import MINI_SUITE_DIR, Task, load_tasks
from atlas_agent.tools.run_tests import RunTestsTool, test_command_from_eval_script

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def task(docker_client) -> Task:
    task = next(t for t in load_tasks("atlas-mini") if t.instance_id == "atlas__semverkit-1")
    prepare_images(docker_client, [task], MINI_SUITE_DIR)
    return task


@pytest.fixture(scope="module")
def box(docker_client, task: Task) -> Iterator[TaskContainer]:
    with TaskContainer(docker_client, task.image, run_id="test-tools", instance_id=task.instance_id) as container:
        container.write_file("/tmp/test.patch", task.test_patch)
        result = container.run("git apply /tmp/test.patch")
        assert result.exit_code == 0, result.output
        yield container


def run(tool: RunTestsTool, box: TaskContainer, target: str | None = None) -> str:
    observation = tool.run(tool.parse({"target": target} if target else {}), box)
    return observation.output


def test_a_failing_node_id(box: TaskContainer, task: Task) -> None:
    node = task.FAIL_TO_PASS[0]
    out = run(RunTestsTool(None, timeout=120), box, node).splitlines()
    assert out[0] == f"$ python -m pytest -rA -p no:cacheprovider -q {node}"
    assert out[1].startswith("exit code 1: 1 failed in ")
    assert out[2] == f"failed (1): {node}"
    assert "AssertionError" in "\n".join(out[3:])


def test_a_passing_node_id(box: TaskContainer, task: Task) -> None:
    node = task.PASS_TO_PASS[-1]
    out = run(RunTestsTool(None, timeout=120), box, node).splitlines()
    assert out[1].startswith("exit code 0: 1 passed in ") and out[2] == f"passed (1): {node}"


def test_the_task_command_from_its_eval_script(box: TaskContainer, task: Task) -> None:
    command = test_command_from_eval_script((MINI_SUITE_DIR / "tasks" / task.instance_id / "eval.sh").read_text())
    tool = RunTestsTool(command, timeout=120)
    out = run(tool, box).splitlines()
    assert out[0] == f"$ {command}"
    assert out[1].startswith("exit code 1: 2 failed, 16 passed in ")
    assert out[2] == f"failed (2): {', '.join(task.FAIL_TO_PASS)}"
    assert out[3] == f"passed (16): {', '.join(task.PASS_TO_PASS)}"


def test_a_missing_target_and_a_timeout(box: TaskContainer) -> None:
    out = run(RunTestsTool(None, timeout=120), box, "tests/nope.py")
    assert out.splitlines()[1].startswith("exit code 4: no tests ran in ") and "not found" in out
    box.write_file("tests/test_slow.py", "import time\n\ndef test_slow():\n    time.sleep(30)\n")
    try:
        observation = RunTestsTool(None, timeout=2).run(RunTestsTool.Args(target="tests/test_slow.py"), box)
    finally:
        box.run("rm -f tests/test_slow.py")
    assert observation.timed_out and observation.output.endswith("[the tests timed out after 2 s and were killed]")
