"""run_tests in an atlas-mini task image: a failing and a passing node id, and the task's own
test command taken from its eval script, read with the parser its row names."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from atlas_agent.runtime.container import TaskContainer
from atlas_agent.runtime.task_images import prepare_images
from atlas_agent.tasks import MINI_SUITE_DIR, Task, load_tasks
from atlas_agent.tools.run_tests import RunTestsTool
from atlas_agent.tools.test_runner import TestRunner

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def task(docker_client) -> Task:
    task = next(t for t in load_tasks("atlas-mini") if t.instance_id == "atlas__semverkit-1")
    prepare_images(docker_client, [task], MINI_SUITE_DIR)
    return task


@pytest.fixture(scope="module")
def box(docker_client, task: Task) -> Iterator[TaskContainer]:
    with TaskContainer(
        docker_client, task.image, run_id="test-tools", instance_id=task.instance_id, eval_script=task.eval_script
    ) as container:
        container.write_file("/tmp/test.patch", task.test_patch)
        result = container.run("git apply /tmp/test.patch")
        assert result.exit_code == 0, result.output
        yield container


def run(tool: RunTestsTool, box: TaskContainer, target: str | None = None) -> str:
    observation = tool.run(tool.parse({"target": target} if target else {}), box)
    return observation.output


def tool_for(task: Task, timeout: float = 120) -> RunTestsTool:
    return RunTestsTool(TestRunner.for_task(task), timeout=timeout)


def test_a_failing_node_id(box: TaskContainer, task: Task) -> None:
    node = task.FAIL_TO_PASS[0]
    out = run(tool_for(task), box, node).splitlines()
    assert out[0].endswith(f"pytest -rA -p no:cacheprovider {node}")
    assert out[1] == "exit code 1: 1 failed (read by parse_log_pytest, as grading reads it)"
    assert out[2] == f"failed (1): {node}"
    assert "AssertionError" in "\n".join(out[3:])


def test_a_passing_node_id(box: TaskContainer, task: Task) -> None:
    node = task.PASS_TO_PASS[-1]
    out = run(tool_for(task), box, node).splitlines()
    assert out[1].startswith("exit code 0: 1 passed (") and out[2] == f"passed (1): {node}"


def test_the_task_command_from_its_eval_script(box: TaskContainer, task: Task) -> None:
    tool = tool_for(task)
    out = run(tool, box).splitlines()
    assert out[0] == f"$ {tool.command(None)}" and "tests/test_version.py" in out[0]
    assert out[1].startswith("exit code 1: 2 failed, 16 passed (")
    assert out[2] == f"failed (2): {', '.join(task.FAIL_TO_PASS)}"
    assert out[3] == f"passed (16): {', '.join(task.PASS_TO_PASS)}"


def test_a_missing_target_and_a_timeout(box: TaskContainer, task: Task) -> None:
    out = run(tool_for(task), box, "tests/nope.py")
    assert out.splitlines()[1].startswith("exit code 4: no test results found (") and "not found" in out
    box.write_file("tests/test_slow.py", "import time\n\ndef test_slow():\n    time.sleep(30)\n")
    try:
        observation = tool_for(task, timeout=2).run(RunTestsTool.Args(target="tests/test_slow.py"), box)
    finally:
        box.run("rm -f tests/test_slow.py")
    assert observation.timed_out and observation.output.endswith("[the tests timed out after 2 s and were killed]")
