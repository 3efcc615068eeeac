"""On atlas-mini's Django-style repository, `run_tests` reads the same tests as passing and failing
as the official parser reads from the official harness's grading log of the same repository state."""

from __future__ import annotations

from pathlib import Path

import pytest

from atlas_agent.grading.harness import grade, instance_log_dir
from atlas_agent.runtime.container import TaskContainer
from atlas_agent.runtime.task_images import prepare_images
from atlas_agent.tasks import MINI_SUITE_DIR, load_tasks
from atlas_agent.tools.run_tests import RunTestsTool
from atlas_agent.tools.test_runner import TestRunner, official_parser

pytestmark = pytest.mark.docker

INSTANCE = "atlas__hoard-1"


def test_run_tests_agrees_with_the_grading_log(docker_client, tmp_path: Path) -> None:
    task = next(t for t in load_tasks("atlas-mini") if t.instance_id == INSTANCE)
    assert task.log_parser == "parse_log_django"
    prepare_images(docker_client, [task], MINI_SUITE_DIR)
    # the suite's naive fix: the tests pass, an existing one breaks — both kinds in one state
    patch = (MINI_SUITE_DIR / "tasks" / INSTANCE / "naive.patch").read_text()
    prediction = {"instance_id": INSTANCE, "model_name_or_path": "probe", "model_patch": patch}
    grade(docker_client, {INSTANCE: task.harness_row()}, {INSTANCE: prediction}, log_dir=tmp_path, run_id="same")
    log = (instance_log_dir(tmp_path, "same", "probe", INSTANCE) / "test_output.txt").read_text()
    parser = official_parser(task.log_parser)
    assert parser is not None
    graded = parser(log, None)
    assert "FAILED" in graded.values() and "PASSED" in graded.values()

    runner = TestRunner.for_task(task)
    with TaskContainer(
        docker_client, task.image, run_id="test-same", instance_id=INSTANCE, eval_script=task.eval_script
    ) as box:
        for name, text in (("model", patch), ("tests", task.test_patch)):
            box.write_file(f"/tmp/{name}.patch", text)
            assert box.run(f"git apply /tmp/{name}.patch").exit_code == 0
        episode = runner.run(box, runner.command.render(), timeout=300)
        observation = RunTestsTool(runner).run(RunTestsTool.Args(), box).output

    assert episode.statuses == graded
    failed = {name for name, status in graded.items() if status == "FAILED"}
    line = next(line for line in observation.splitlines() if line.startswith("failed ("))
    assert line.startswith(f"failed ({len(failed)}): ") and set(line.split(": ", 1)[1].split(", ")) == failed
